"""Training jobs: what a job produced (:class:`Result`) and what runs jobs (:class:`Executor`).

Neither needs torch, so envs that answer steps without training (replay,
surrogate) define executors without importing it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Self

from researchgym.engine.tasks import TaskRef

__all__ = ["Executor", "Result"]


@dataclass
class Result:
    """What one training job produced.

    ``val_metrics`` drive rewards; ``test_metrics`` are for evaluation only. Both
    hold the raw metrics (``loss``, ``accuracy``, ``r2``, ``bpc``, ...) and
    ``score``, the task's primary metric clipped to [-1, 1] (accuracy, R² below -1
    counted as -1, 1 - bits per character / 8).
    ``status`` is ``"ok"`` or a failure (``"diverged"``, ``"error"``,
    ``"timeout"``, ``"oom"``, ``"invalid_action"``) with ``error`` saying why.
    ``answered_by`` is set by executors that answer without training the requested
    metaprogram: a JSON-able dict saying what produced the metrics instead (Replay-v0:
    the recorded run, see ``researchgym.envs.replay``); ``None`` otherwise.
    """

    status: str
    val_metrics: dict[str, float] = field(default_factory=dict)
    test_metrics: dict[str, float] = field(default_factory=dict)
    curve: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    samples: int = 0
    n_params: int = 0
    device: str = "cpu"
    error: str | None = None
    answered_by: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def score(self) -> float | None:
        """Primary validation metric, clipped to [-1, 1] (higher is better), when training
        finished."""
        return self.val_metrics.get("score") if self.ok else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Executor:
    """Runs training jobs. Subclasses implement :meth:`run`."""

    def run(self, metaprogram: Mapping[str, Any], *, task: TaskRef, seed: int) -> Result:
        """Train and return a result; never raises for a failed job.

        Args:
            metaprogram: validated settings with defaults filled.
            task: the task to train on (its name and, for file datasets, their directory).
            seed: seeds the job.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release workers and other resources."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
