"""Hooks plug into the training loop: logging, early stopping, deadlines, progress."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from researchgym.errors import ResearchGymError

__all__ = [
    "Deadline",
    "EarlyStopping",
    "Hook",
    "LambdaHook",
    "TrainingState",
    "TrainingTimeout",
]


class TrainingTimeout(ResearchGymError, RuntimeError):
    """Training ran past its wall-clock budget."""


@dataclass
class TrainingState:
    """What hooks see and may change while a model trains."""

    metaprogram: dict[str, Any]
    epochs: int
    epoch: int = 0
    curve: list[dict[str, float]] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    stop: bool = False  # set by a hook to end training after this epoch


class Hook:
    """Base hook: override any of the callbacks; all default to doing nothing."""

    def on_train_start(self, state: TrainingState) -> None: ...

    def on_epoch_end(self, state: TrainingState) -> None: ...

    def on_train_end(self, state: TrainingState) -> None: ...


class LambdaHook(Hook):
    """A hook from a function called at the end of every epoch."""

    def __init__(self, on_epoch_end: Callable[[TrainingState], None]):
        self._fn = on_epoch_end

    def on_epoch_end(self, state: TrainingState) -> None:
        self._fn(state)


class EarlyStopping(Hook):
    """Stop when the validation score has not improved for ``patience`` epochs.

    A run continued from a checkpoint starts with its saved curve, which this hook
    reads at the start, so it stops where the uninterrupted run would have.
    """

    def __init__(self, patience: int):
        self.patience = patience
        self._best = -math.inf
        self._since_best = 0

    def on_train_start(self, state: TrainingState) -> None:
        self._best, self._since_best = -math.inf, 0
        for entry in state.curve:
            self._observe(entry["val_score"], state)

    def on_epoch_end(self, state: TrainingState) -> None:
        self._observe(state.curve[-1]["val_score"], state)

    def _observe(self, score: float, state: TrainingState) -> None:
        if score > self._best:
            self._best, self._since_best = score, 0
        else:
            self._since_best += 1
            if self._since_best >= self.patience:
                state.stop = True


class Deadline(Hook):
    """Raise :class:`TrainingTimeout` once training has run for ``seconds``."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def on_epoch_end(self, state: TrainingState) -> None:
        elapsed = time.perf_counter() - state.started
        if elapsed > self.seconds:
            raise TrainingTimeout(
                f"training ran {elapsed:.2f}s, past its {self.seconds:g}s budget "
                f"(stopped after epoch {state.epoch + 1} of {state.epochs})"
            )
