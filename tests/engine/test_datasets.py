"""The dataset catalog: shipped task infos agree with the data they describe."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from researchgym.engine import TaskRef, load_task_data, task_info
from researchgym.engine.datasets import _shipped_task_info
from researchgym.envs.suites import SUITES

BUILT_IN = sorted({t for s in SUITES.values() if not s.reads_files for t in s.all_tasks})


def test_every_built_in_task_has_a_shipped_info():
    assert sorted(_shipped_task_info()) == BUILT_IN, (
        "regenerate with researchgym.engine.datasets.write_task_info(tasks)"
    )


@pytest.mark.slow
@pytest.mark.parametrize("task", BUILT_IN)
def test_shipped_info_is_the_info_of_the_data(task):
    assert asdict(task_info(task)) == asdict(load_task_data(task).info)


def test_tasks_without_a_shipped_info_are_described_from_their_data():
    task = "synth_cls?seed=77"
    assert task not in _shipped_task_info()
    assert task_info(TaskRef(task)) == load_task_data(task).info
