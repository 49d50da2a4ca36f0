"""``TaskSplits``: a dataset's fixed train/validation/test arrays, before they become tensors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TaskSplits"]


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
