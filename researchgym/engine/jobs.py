"""Training jobs: where a job starts (:class:`Start`), what it produced (:class:`Result`)
and what runs jobs (:class:`Executor`).

Neither needs torch, so envs that answer steps without training (replay,
surrogate) define executors without importing it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Self

from researchgym.engine.tasks import TaskRef
from researchgym.errors import ConfigError, did_you_mean, shorten

__all__ = ["EXECUTORS", "START_MODES", "Executor", "Job", "Result", "Start", "make_executor"]

#: How a job can start from a checkpoint (see :class:`Start`).
START_MODES = ("continue", "fork")


@dataclass(frozen=True)
class Start:
    """A job that starts from a saved run's checkpoint instead of from scratch.

    Attributes:
        checkpoint: path of a checkpoint written by an earlier job's ``save_to``.
        mode: ``"continue"`` trains the saved run further, exactly as if it had never
            stopped: model, optimizer, data order, step counter and curve are restored,
            and the metaprogram must be the saved one except for ``train.epochs``.
            ``"fork"`` starts from the saved weights only, with a fresh optimizer from
            the metaprogram and data order from the job's seed; settings that change
            the architecture must be the saved ones.
    """

    checkpoint: str
    mode: str

    def __post_init__(self) -> None:
        if self.mode not in START_MODES:
            raise ConfigError(f"Start mode={shorten(self.mode)} is not one of {START_MODES}")


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
    ``epochs`` is the fidelity reached: epochs the final weights have seen, counting
    those of the run a job started from. ``curve`` of a continued run holds the saved
    run's epochs too, while ``seconds`` and ``samples`` count only this job's work.
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
    epochs: int = 0

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


@dataclass(frozen=True)
class Job:
    """One training job: the arguments of :meth:`Executor.run`."""

    metaprogram: Mapping[str, Any]
    task: TaskRef
    seed: int
    start: Start | None = None
    save_to: str | None = None
    schedule_epochs: int | None = None


class Executor:
    """Runs training jobs. Subclasses implement :meth:`run`."""

    def run(
        self,
        metaprogram: Mapping[str, Any],
        *,
        task: TaskRef,
        seed: int,
        start: Start | None = None,
        save_to: str | None = None,
        schedule_epochs: int | None = None,
    ) -> Result:
        """Train and return a result; never raises for a failed job.

        Args:
            metaprogram: validated settings with defaults filled; ``train.epochs`` is the
                run's total fidelity, counting the epochs of the run it starts from.
            task: the task to train on (its name and, for file datasets, their directory).
            seed: seeds the job.
            start: a checkpoint to continue or fork from, or ``None`` to train from scratch.
            save_to: where to write the final checkpoint after a successful job, or ``None``.
            schedule_epochs: the horizon of the learning-rate schedule (default:
                ``train.epochs``); a continued run keeps its checkpoint's.
        """
        raise NotImplementedError

    def run_many(self, jobs: Sequence[Job]) -> list[Result]:
        """Run several jobs and return their results in order; never raises for a failed job.

        Runs them one by one through :meth:`run`; executors that can train many
        jobs at once (see ``InProcessExecutor``) override it.
        """
        return [self.run_job(job) for job in jobs]

    def run_job(self, job: Job) -> Result:
        """:meth:`run` with a :class:`Job`'s arguments."""
        return self.run(
            job.metaprogram,
            task=job.task,
            seed=job.seed,
            start=job.start,
            save_to=job.save_to,
            schedule_epochs=job.schedule_epochs,
        )

    def refuses(self, mode: str) -> str | None:
        """Why this executor cannot start jobs from saved runs in ``mode`` (``"continue"``
        or ``"fork"``), e.g. one that answers from recorded runs; ``None`` when it can."""
        return None

    def close(self) -> None:
        """Release workers and other resources."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


#: Executors by name (an env's ``executor="ray"``): name -> ``"module:class"``.
EXECUTORS = {
    "inprocess": "researchgym.engine.executors:InProcessExecutor",
    "subprocess": "researchgym.engine.executors:SubprocessExecutor",
    "ray": "researchgym.engine.ray_executor:RayExecutor",
}


def make_executor(name: str, **options: Any) -> Executor:
    """The executor called ``name`` (one of :data:`EXECUTORS`), made with ``options``
    (each takes ``device``, ``timeout`` and ``runtime``)."""
    if name not in EXECUTORS:
        raise ConfigError(
            f"executor={shorten(name)} is not one of {sorted(EXECUTORS)}; "
            f"{did_you_mean(name, EXECUTORS)}or pass an Executor instance"
        )
    module, cls = EXECUTORS[name].split(":")
    return getattr(importlib.import_module(module), cls)(**options)
