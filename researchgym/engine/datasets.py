"""The dataset catalog: every dataset by name, and task names parsed and checked.

Declarations only: data is loaded (and scikit-learn imported) by a dataset's
``load`` when ``researchgym.engine.data`` builds a task's tensors, so naming and
checking tasks needs neither torch nor scikit-learn.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np

from researchgym.engine import charlm, file_datasets, sequence_tasks, synthetic_tables
from researchgym.engine.tasks import TaskError, TaskRef
from researchgym.errors import shorten

__all__ = [
    "DATASETS",
    "TASK_INFO_FILE",
    "DatasetSpec",
    "TaskInfo",
    "check_task",
    "loader_arguments",
    "parse_task",
    "shipped_task_info",
    "task_name",
]


@dataclass(frozen=True)
class DatasetSpec:
    """How to load one dataset and what kind of problem it is.

    Attributes:
        name: dataset name (the part of a task name before ``?``).
        load: ``(**params) -> (x, y)``, split here at random; or, with ``fixed_splits``,
            ``(**params) -> TaskSplits`` with the dataset's own splits.
        kind: ``"classification"``, ``"regression"``, ``"sequence"`` or ``"language"``.
        image_shape: ``(channels, height, width)`` of image datasets.
        description: one line for planners.
        params: parameters a task name may set (``"mqar?n_pairs=16"``).
        fixed_splits: see ``load``.
        check: ``(**params) -> None``, a cheap check run before loading
            (parameters in range, files present); raises ``ValueError`` or
            ``FileNotFoundError``.
        data_dir_var: for datasets read from files: the environment variable
            naming their directory when the task reference gives none. Their
            ``load`` and ``check`` also take the directory as ``data_dir``.
    """

    name: str
    load: Callable[..., Any]
    kind: str
    image_shape: tuple[int, int, int] | None = None
    description: str = ""
    params: tuple[str, ...] = ()
    fixed_splits: bool = False
    check: Callable[..., Any] | None = None
    data_dir_var: str | None = None


def _sklearn(loader: str, scale: float = 1.0) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    """Loads ``sklearn.datasets.<loader>``, importing scikit-learn only then."""

    def load() -> tuple[np.ndarray, np.ndarray]:
        from sklearn import datasets

        x, y = getattr(datasets, loader)(return_X_y=True)
        return x / scale, y

    return load


def _sequence_spec(task: sequence_tasks.SequenceTask) -> DatasetSpec:
    return DatasetSpec(
        task.name,
        functools.partial(sequence_tasks.generate_splits, task.name),
        "sequence",
        description=task.description.format(**task.defaults),
        params=tuple(task.defaults) + tuple(sequence_tasks.SPLIT_DEFAULTS),
        fixed_splits=True,
        check=functools.partial(sequence_tasks.validate_params, task.name),
    )


def _synthetic_spec(name: str, kind: str) -> DatasetSpec:
    return DatasetSpec(
        name,
        functools.partial(synthetic_tables.generate, name),
        kind,
        description=f"synthetic {kind} table whose size, columns and noise are drawn from the seed",
        params=tuple(synthetic_tables.DEFAULTS),
        check=functools.partial(synthetic_tables.validate_params, name),
    )


def _corpus_spec(corpus: str) -> DatasetSpec:
    return DatasetSpec(
        corpus,
        functools.partial(charlm.char_splits, corpus),
        "language",
        description=(
            f"character language model of {charlm.CORPORA[corpus][1]}; "
            "score = 1 - bits per character / 8"
        ),
        params=tuple(charlm.DEFAULTS),
        fixed_splits=True,
        check=functools.partial(charlm.validate_params, corpus),
    )


def _file_spec(
    dataset: file_datasets.FileDataset, image_shape: tuple[int, int, int]
) -> DatasetSpec:
    def check(data_dir: str | None = None, n_train: str | None = None) -> None:
        file_datasets.check_files(dataset.name, data_dir)

    return DatasetSpec(
        dataset.name,
        functools.partial(file_datasets.load_file_dataset, dataset.name),
        "classification",
        image_shape,
        f"{dataset.title} image classification, 10 classes (files from a user-given directory)",
        params=("n_train",),
        fixed_splits=True,
        check=check,
        data_dir_var=dataset.env_var,
    )


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec(
            "digits",
            _sklearn("load_digits", scale=16.0),
            "classification",
            (1, 8, 8),
            "8x8 handwritten digits, 10 classes",
        ),
        DatasetSpec(
            "wine",
            _sklearn("load_wine"),
            "classification",
            None,
            "wine cultivars from 13 chemical measurements, 3 classes",
        ),
        DatasetSpec(
            "breast_cancer",
            _sklearn("load_breast_cancer"),
            "classification",
            None,
            "malignant vs benign tumours from 30 cell features",
        ),
        DatasetSpec(
            "iris",
            _sklearn("load_iris"),
            "classification",
            None,
            "iris species from 4 flower measurements, 3 classes",
        ),
        DatasetSpec(
            "diabetes",
            _sklearn("load_diabetes"),
            "regression",
            None,
            "disease progression from 10 baseline variables",
        ),
        *(_synthetic_spec(name, kind) for name, kind in synthetic_tables.SYNTHETIC_KINDS.items()),
        *(_sequence_spec(task) for task in sequence_tasks.SEQUENCE_TASKS.values()),
        *(_corpus_spec(corpus) for corpus in charlm.CORPORA),
        _file_spec(file_datasets.MNIST, (1, 28, 28)),
        _file_spec(file_datasets.CIFAR10, (3, 32, 32)),
    ]
}


def task_name(dataset: str, **params: Any) -> str:
    """A task name from a dataset name and parameters: ``task_name("mqar", n_pairs=8)``."""
    if not params:
        return dataset
    return f"{dataset}?{urlencode({k: str(v) for k, v in params.items()})}"


def parse_task(task: TaskRef | str) -> tuple[DatasetSpec, dict[str, str]]:
    """The dataset and parameters a task name stands for (the directory not included).

    Raises:
        TaskError: an unknown dataset, a malformed query, or a parameter the
            dataset does not take.
    """
    ref = TaskRef.of(task)
    spec = DATASETS.get(ref.dataset)
    if spec is None:
        raise TaskError(f"unknown dataset {shorten(ref.dataset)}; choose one of {sorted(DATASETS)}")
    params = ref.params
    for key in params:
        if key == "data_dir" and spec.data_dir_var is not None:
            raise TaskError(
                f"task {shorten(ref.name)} names a directory, which is configuration and not "
                "part of the task: give it as data_dir=... (gym.make(..., data_dir=...) or "
                "TaskRef(name, data_dir=...))"
            )
        if key not in spec.params:
            known = ", ".join(spec.params) if spec.params else "none"
            raise TaskError(
                f"task {shorten(ref.name)}: dataset {spec.name!r} has no parameter "
                f"{shorten(key)} (parameters: {known})"
            )
    return spec, params


def loader_arguments(task: TaskRef) -> tuple[DatasetSpec, dict[str, str]]:
    """The dataset of a task and the keyword arguments of its ``load`` and ``check``."""
    spec, params = parse_task(task)
    if task.data_dir is not None:
        if spec.data_dir_var is None:
            raise TaskError(
                f"task {shorten(task.name)} reads no files, but the reference gives "
                f"data_dir={os.fspath(task.data_dir)!r}; drop data_dir"
            )
        params["data_dir"] = os.fspath(task.data_dir)
    return spec, params


def check_task(task: TaskRef | str) -> DatasetSpec:
    """Check that a task can be loaded (name, parameters, files) without loading it."""
    spec, params = loader_arguments(TaskRef.of(task))
    if spec.check is not None:
        spec.check(**params)
    return spec


@dataclass(frozen=True)
class TaskInfo:
    """What an agent is told about a task, and the score of guessing (for normalized rewards)."""

    description: str
    features: dict[str, float]
    chance: float


#: Infos of the built-in tasks, computed from their data by ``researchgym.engine.data.write_task_info`` and
#: shipped as package data, so that envs that answer steps without training describe
#: their tasks without loading any data (a test checks them against the data).
TASK_INFO_FILE = Path(str(importlib.resources.files("researchgym") / "reference" / "tasks.json"))


@functools.cache
def _shipped_task_info() -> dict[str, TaskInfo]:
    return {name: TaskInfo(**info) for name, info in json.loads(TASK_INFO_FILE.read_text()).items()}


def shipped_task_info(task: TaskRef | str) -> TaskInfo | None:
    """The shipped info of a built-in task (``None`` for other tasks and tasks read from files)."""
    ref = TaskRef.of(task)
    return _shipped_task_info().get(ref.name) if ref.data_dir is None else None
