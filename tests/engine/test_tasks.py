"""TaskRef: a task's name and its files' directory, accepted wherever a task is."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from researchgym.engine import TaskError, TaskRef, check_task, load_task_data, parse_task
from researchgym.errors import ResearchGymError


def test_a_reference_parses_its_name():
    ref = TaskRef("mqar?n_pairs=16&vocab=64")
    assert (ref.dataset, ref.params) == ("mqar", {"n_pairs": "16", "vocab": "64"})
    assert TaskRef("digits").params == {} and TaskRef("digits").data_dir is None


def test_of_accepts_a_reference_or_a_name():
    ref = TaskRef("wine")
    assert TaskRef.of(ref) is ref
    assert TaskRef.of("wine") == ref


def test_a_reference_is_frozen_hashable_and_pickles():
    ref = TaskRef("mnist?n_train=10", data_dir="~/data")
    assert ref.data_dir == Path("~/data").expanduser()
    assert pickle.loads(pickle.dumps(ref)) == ref and hash(ref) == hash(
        TaskRef(ref.name, ref.data_dir)
    )
    with pytest.raises(AttributeError):
        ref.name = "digits"


@pytest.mark.parametrize(
    "name, data_dir, message",
    [
        ("", None, "must be a task name"),
        (3, None, "must be a task name"),
        ("wine", 3, "data_dir=3 must be a directory path"),
    ],
)
def test_malformed_references_are_clear_errors(name, data_dir, message):
    with pytest.raises(TaskError, match=message) as err:
        TaskRef(name, data_dir=data_dir)
    assert isinstance(err.value, ResearchGymError) and isinstance(err.value, ValueError)


@pytest.mark.parametrize(
    "ref, message",
    [
        (TaskRef("mqar?n_pairs"), "key=value"),
        (TaskRef("mqar?n_pairs=8&n_pairs=9"), "given twice"),
        (TaskRef("mnist?data_dir=/data"), "give it as data_dir="),
        (TaskRef("wine", data_dir="/data"), "reads no files"),
    ],
)
def test_tasks_that_cannot_load_are_clear_errors(ref, message):
    with pytest.raises(TaskError, match=message):
        check_task(ref)


def test_a_name_and_its_reference_load_the_same_data():
    data = load_task_data("iris")
    assert load_task_data(TaskRef("iris")) is data
    assert data.name == "iris"
    assert parse_task("iris") == parse_task(TaskRef("iris"))
