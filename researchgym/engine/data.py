"""Offline datasets: fixed, seeded splits held as tensors on the training device.

Nothing is downloaded. Datasets come from data bundled with scikit-learn,
seeded synthetic tables (``researchgym.engine.synthetic_tables``), seeded
sequence-task generators (``researchgym.engine.sequence_tasks``), text
that ships with Python (``researchgym.engine.charlm``), and standard files in a
user-given directory (``researchgym.engine.file_datasets``). Splits are fixed
per dataset (they never depend on the training seed) so that runs with
different seeds are compared on the same examples.

A task is named by a string: a dataset name, optionally followed by parameters
in URL query form, e.g. ``"mqar?n_pairs=16&vocab=64"`` (see ``researchgym.engine.datasets``);
a :class:`~researchgym.engine.tasks.TaskRef` adds the directory of datasets read
from files.

Kinds of dataset:

* ``classification`` / ``regression``: one target per example;
* ``sequence``: token sequences, a class target per position, :data:`IGNORE`
  where nothing is scored; the score is accuracy over scored positions;
* ``language``: next-character prediction; the score is ``1 - bpc / 8`` clipped
  to ``[-1, 1]`` (see ``researchgym.engine.charlm``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from researchgym.engine import sequence_tasks
from researchgym.engine.datasets import TASK_INFO_FILE, DatasetSpec, TaskInfo, loader_arguments
from researchgym.engine.splits import TaskSplits
from researchgym.engine.tasks import TaskRef
from researchgym.errors import shorten
from researchgym.spaces import SettingError

__all__ = [
    "IGNORE",
    "SEQUENCE_KINDS",
    "TaskData",
    "augment_images",
    "load_task_data",
    "write_task_info",
]

IGNORE = sequence_tasks.IGNORE  # target of positions that are not scored
SEQUENCE_KINDS = ("sequence", "language")

SPLIT_SEED = 20240601
VAL_FRACTION = 0.2
TEST_FRACTION = 0.2


@dataclass(frozen=True)
class TaskData:
    """A dataset's three splits as tensors on one device (never modified in place)."""

    name: str
    kind: str
    n_classes: int
    input_shape: tuple[int, ...]
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    chance_score: float | None = None
    description: str = ""

    @property
    def n_outputs(self) -> int:
        return 1 if self.kind == "regression" else self.n_classes

    @property
    def chance(self) -> float:
        """The score of guessing, for normalized rewards."""
        if self.chance_score is not None:
            return self.chance_score
        return 1.0 / self.n_classes if self.kind == "classification" else 0.0

    def features(self) -> dict[str, float]:
        """Numbers that describe the task to a planner."""
        return {
            "n_train": float(len(self.x_train)),
            "n_features": float(np.prod(self.input_shape)),
            "n_classes": float(self.n_classes),
            "is_regression": float(self.kind == "regression"),
            "is_image": float(len(self.input_shape) == 3),
        }

    @property
    def info(self) -> TaskInfo:
        """The task's description, features and chance score."""
        return TaskInfo(self.description, self.features(), self.chance)


def _split(x: np.ndarray, y: np.ndarray, kind: str):
    stratify = y if kind == "classification" else None
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=stratify
    )
    stratify = y_rest if kind == "classification" else None
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest,
        y_rest,
        test_size=VAL_FRACTION / (1 - TEST_FRACTION),
        random_state=SPLIT_SEED,
        stratify=stratify,
    )
    return x_train, y_train, x_val, y_val, x_test, y_test


def _scale(x_train: np.ndarray, others: list[np.ndarray], scaling: str) -> list[np.ndarray]:
    if scaling == "none":
        return [x_train, *others]
    if scaling == "standard":
        shift, scale = x_train.mean(axis=0), x_train.std(axis=0)
    elif scaling == "minmax":
        shift, scale = x_train.min(axis=0), x_train.max(axis=0) - x_train.min(axis=0)
    else:
        raise SettingError(f"scaling={shorten(scaling)} is not one of 'standard', 'minmax', 'none'")
    scale = np.where(scale > 0, scale, 1.0)
    return [(a - shift) / scale for a in [x_train, *others]]


def _fixed_task_data(
    spec: DatasetSpec, name: str, splits: TaskSplits, scaling: str, device: str
) -> TaskData:
    xs = [splits.x_train, splits.x_val, splits.x_test]
    ys = [splits.y_train, splits.y_val, splits.y_test]
    shape: tuple[int, ...]
    y_shape: tuple[int, ...]
    if spec.kind in SEQUENCE_KINDS:  # token ids in, a token per position out
        shape = (splits.x_train.shape[1],)
        x_dtype, y_dtype, y_shape = torch.long, torch.long, shape
    else:
        shape = spec.image_shape or (splits.x_train.shape[1],)
        flat = [np.asarray(a, dtype=np.float32).reshape(len(a), -1) for a in xs]
        xs = _scale(flat[0], flat[1:], scaling)
        x_dtype, y_shape = torch.float32, ()
        y_dtype = torch.float32 if spec.kind == "regression" else torch.long

    def tensor(a: np.ndarray, dtype: torch.dtype, feature_shape: tuple[int, ...]) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a), dtype=dtype).reshape(-1, *feature_shape).to(device)

    x_train, x_val, x_test = (tensor(a, x_dtype, shape) for a in xs)
    y_train, y_val, y_test = (tensor(a, y_dtype, y_shape) for a in ys)
    return TaskData(
        name=name,
        kind=spec.kind,
        n_classes=splits.n_classes,
        input_shape=shape,
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        chance_score=splits.chance,
        description=splits.description or spec.description,
    )


def load_task_data(task: TaskRef | str, scaling: str = "standard", device: str = "cpu") -> TaskData:
    """Load, split and scale a task's dataset onto ``device`` (cached: loaded once per process).

    Args:
        task: a task reference, or a task name: a dataset name, optionally with
            parameters (see :func:`parse_task`).
        scaling: feature scaling of tabular and image data (ignored for token sequences).
        device: where the tensors live.
    """
    return _load_task_data(TaskRef.of(task), scaling, device)


@functools.lru_cache(maxsize=32)
def _load_task_data(task: TaskRef, scaling: str, device: str) -> TaskData:
    spec, params = loader_arguments(task)
    name = task.name
    if spec.fixed_splits:
        return _fixed_task_data(spec, name, spec.load(**params), scaling, device)
    x, y = spec.load(**params)
    x = np.asarray(x, dtype=np.float64)
    x_train, y_train, x_val, y_val, x_test, y_test = _split(x, y, spec.kind)
    x_train, x_val, x_test = _scale(x_train, [x_val, x_test], scaling)
    if spec.kind == "regression":
        mean, std = y_train.mean(), y_train.std()
        y_train, y_val, y_test = [(t - mean) / std for t in (y_train, y_val, y_test)]
        n_classes, y_dtype = 0, torch.float32
    else:
        n_classes, y_dtype = int(np.max(y)) + 1, torch.long
    shape = spec.image_shape or (x.shape[1],)

    def tensor(a: np.ndarray, dtype=torch.float32, feature_shape=()) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a), dtype=dtype).reshape(-1, *feature_shape).to(device)

    return TaskData(
        name=name,
        kind=spec.kind,
        n_classes=n_classes,
        input_shape=shape,
        x_train=tensor(x_train, feature_shape=shape),
        y_train=tensor(y_train, y_dtype),
        x_val=tensor(x_val, feature_shape=shape),
        y_val=tensor(y_val, y_dtype),
        x_test=tensor(x_test, feature_shape=shape),
        y_test=tensor(y_test, y_dtype),
        description=spec.description,
    )


def augment_images(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Translate a batch of images by the same random offset of up to one pixel.

    The offset stays on the device: the pixels are gathered by index, so the step
    does not wait for the draw.
    """
    h, w = x.shape[-2:]
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    shifts = torch.randint(0, 3, (2,), generator=generator, device=generator.device)
    rows = shifts[0] + torch.arange(h, device=shifts.device)
    cols = shifts[1] + torch.arange(w, device=shifts.device)
    return padded[:, :, rows[:, None], cols]


def write_task_info(tasks: Iterable[str], path: str | Path = TASK_INFO_FILE) -> Path:
    """Compute the infos of ``tasks`` from their data and write them as JSON to ``path``
    (by default the file of built-in task infos that envs read instead of loading data)."""
    infos = {task: asdict(load_task_data(task).info) for task in sorted(set(tasks))}
    path = Path(path)
    path.write_text(json.dumps(infos, indent=1) + "\n")
    return path
