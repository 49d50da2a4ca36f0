"""Offline datasets: fixed, seeded splits held as tensors on the training device.

Every dataset is built from data bundled with scikit-learn, so nothing is
downloaded. Splits are fixed per dataset (they never depend on the training
seed) so that runs with different seeds are compared on the same examples.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn import datasets as skdatasets
from sklearn.model_selection import train_test_split

from researchgym.spaces import Bool, Categorical, Setting

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "TaskData",
    "augment_images",
    "data_settings",
    "load_task_data",
]

SPLIT_SEED = 20240601
VAL_FRACTION = 0.2
TEST_FRACTION = 0.2


@dataclass(frozen=True)
class DatasetSpec:
    """How to load one dataset and what kind of problem it is."""

    name: str
    load: Callable[[], tuple[np.ndarray, np.ndarray]]
    kind: str  # "classification" or "regression"
    image_shape: tuple[int, int, int] | None = None  # (channels, height, width)
    description: str = ""


def _digits() -> tuple[np.ndarray, np.ndarray]:
    x, y = skdatasets.load_digits(return_X_y=True)
    return x / 16.0, y


def _sklearn(loader: Callable) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    return lambda: loader(return_X_y=True)


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec("digits", _digits, "classification", (1, 8, 8), "8x8 handwritten digits, 10 classes"),
        DatasetSpec("wine", _sklearn(skdatasets.load_wine), "classification", None, "wine cultivars from 13 chemical measurements, 3 classes"),
        DatasetSpec("breast_cancer", _sklearn(skdatasets.load_breast_cancer), "classification", None, "malignant vs benign tumours from 30 cell features"),
        DatasetSpec("iris", _sklearn(skdatasets.load_iris), "classification", None, "iris species from 4 flower measurements, 3 classes"),
        DatasetSpec("diabetes", _sklearn(skdatasets.load_diabetes), "regression", None, "disease progression from 10 baseline variables"),
    ]
}


def data_settings(images: bool) -> list[Setting]:
    """Preprocessing settings of a dataset component."""
    settings: list[Setting] = [
        Categorical(
            "data.scaling",
            "standard",
            choices=("standard", "minmax", "none"),
            help="feature scaling fitted on the training split",
        )
    ]
    if images:
        settings.append(
            Bool("data.augment", False, help="random one-pixel translations of training images")
        )
    return settings


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

    @property
    def n_outputs(self) -> int:
        return self.n_classes if self.kind == "classification" else 1

    def features(self) -> dict[str, float]:
        """Numbers that describe the task to a planner."""
        return {
            "n_train": float(len(self.x_train)),
            "n_features": float(np.prod(self.input_shape)),
            "n_classes": float(self.n_classes),
            "is_regression": float(self.kind == "regression"),
            "is_image": float(len(self.input_shape) == 3),
        }


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
        raise ValueError(f"scaling={scaling!r} is not one of 'standard', 'minmax', 'none'")
    scale = np.where(scale > 0, scale, 1.0)
    return [(a - shift) / scale for a in [x_train, *others]]


@functools.lru_cache(maxsize=32)
def load_task_data(name: str, scaling: str = "standard", device: str = "cpu") -> TaskData:
    """Load, split and scale a dataset onto ``device`` (cached: loaded once per process)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    spec = DATASETS[name]
    x, y = spec.load()
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
    )


def augment_images(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Translate a batch of images by the same random offset of up to one pixel."""
    h, w = x.shape[-2:]
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    shifts = torch.randint(0, 3, (2,), generator=generator, device=generator.device)
    dy, dx = int(shifts[0]), int(shifts[1])
    return padded[:, :, dy : dy + h, dx : dx + w]
