"""The dataset catalog: shipped task infos agree with the data they describe."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from researchgym.engine import TaskRef, load_task_data, shipped_task_info
from researchgym.engine.datasets import _shipped_task_info
from researchgym.envs.suites import SUITES

BUILT_IN = sorted({t for s in SUITES.values() if not s.reads_files for t in s.all_tasks})


def test_every_built_in_task_has_a_shipped_info():
    assert sorted(_shipped_task_info()) == BUILT_IN, (
        "regenerate with researchgym.engine.data.write_task_info(tasks)"
    )


@pytest.mark.slow
@pytest.mark.parametrize("task", BUILT_IN)
def test_shipped_info_is_the_info_of_the_data(task):
    assert asdict(shipped_task_info(task)) == asdict(load_task_data(task).info)


def test_only_built_in_tasks_without_files_have_a_shipped_info(tmp_path):
    assert shipped_task_info("synth_cls?seed=77") is None
    assert shipped_task_info(TaskRef("mnist", data_dir=tmp_path)) is None
    assert shipped_task_info(TaskRef("digits")) == load_task_data("digits").info
