"""``TaskSplits``: a dataset's fixed train/validation/test arrays, before they become tensors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from researchgym.engine.tasks import TaskError
from researchgym.errors import shorten

__all__ = ["TaskSplits", "int_params"]


def int_params(
    name: str,
    params: Mapping[str, Any],
    defaults: Mapping[str, int],
    limits: Mapping[str, tuple[int, int]],
) -> dict[str, int]:
    """A generated dataset's parameters (from a task name's query) as integers, defaults filled.

    Raises:
        TaskError: an unknown parameter, a value that is not an integer, or one
            outside its ``[low, high]`` limits; the message names the dataset.
    """
    out = dict(defaults)
    for key, raw in params.items():
        if key not in defaults:
            raise TaskError(
                f"{name}: unknown parameter {shorten(key)}; known parameters: {', '.join(defaults)}"
            )
        try:
            value = int(raw)
        except (TypeError, ValueError):
            raise TaskError(f"{name}: {key}={shorten(raw)} is not an integer") from None
        low, high = limits[key]
        if not low <= value <= high:
            raise TaskError(f"{name}: {key}={value} is outside [{low}, {high}]")
        out[key] = value
    return out


@dataclass(frozen=True)
class TaskSplits:
    """A dataset's three splits as numpy arrays, plus what a model needs to know.

    Attributes:
        n_classes: classes, or for token sequences the vocabulary size (inputs
            and targets are both tokens of it).
        chance: the score of guessing (accuracy of a uniform guess among the
            possible answers, or the score of uniform next-token guessing).
        description: one line for planners.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    chance: float
    description: str = ""
