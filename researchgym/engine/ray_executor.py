"""Run training jobs as Ray tasks, on a local Ray or on an existing cluster.

Each job is one Ray task that declares the CPUs and GPUs it needs and calls the
engine's ``train`` in a Ray worker process (workers are reused, so data a worker
has loaded stays cached for later jobs). A job whose worker dies (killed, out of
memory, its node lost) is run again, up to ``max_retries`` times; past that it
comes back as a :class:`Result` with status ``"error"`` (``"oom"`` when Ray's
memory monitor killed it) and the reason. Like every executor, ``run`` never
raises for a failed job, and it returns exactly one result per job, so an env
records each step once however often its job ran.

``ray`` is imported on first use; it comes with ``pip install 'researchgym[rllib]'``.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from researchgym.engine.hooks import Hook
from researchgym.engine.jobs import Executor, Job, Result, Start
from researchgym.engine.runtime import Runtime
from researchgym.engine.tasks import TaskRef
from researchgym.errors import ConfigError, DependencyNotInstalled, shorten

__all__ = ["RayExecutor"]


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise DependencyNotInstalled(
            "the Ray executor needs ray; install it with pip install 'researchgym[rllib]'"
        ) from exc
    return ray


def _train_job(
    job: Job, device: str, timeout: float | None, hooks: Sequence[Hook], runtime: Runtime
) -> dict[str, Any]:
    """The Ray task: train one job in the worker; a failed job comes back as a result too."""
    from researchgym.engine.executors import InProcessExecutor

    executor = InProcessExecutor(device=device, timeout=timeout, hooks=hooks, runtime=runtime)
    return executor.run_many([job])[0].to_dict()


class RayExecutor(Executor):
    """Run each training job as a Ray task with its CPUs and GPUs declared.

    Ray is started on first use: connected to ``address`` when given, else to the
    Ray this process already initialized, else a local Ray with ``num_cpus`` CPUs
    is started (and shut down by :meth:`close`) whose workers train at this
    process's priority (Ray's default lowers it, which on a busy machine slows every
    job behind the machine's other processes). On a cluster, every node needs
    researchgym installed, and the paths a job reads or writes (file datasets,
    checkpoints of forkable envs) must be reachable from every node.

    :meth:`run` trains one job and waits for it; :meth:`run_many` trains many at
    once, as many in parallel as the cluster's free CPUs and GPUs allow. Both are
    safe to call from several threads.

    Args:
        address: Ray cluster to connect to (``"auto"``, ``"ray://host:10001"``, ...),
            or ``None`` for a local Ray.
        num_cpus: CPUs of the local Ray this executor starts (default: all of this
            machine's); not with ``address``.
        cpus_per_job: CPUs each job declares (Ray sets its OMP_NUM_THREADS to match,
            unless the environment sets it).
        gpus_per_job: GPUs each job declares; a fraction shares a GPU between jobs.
            With 0, the worker sees no GPU and ``device="auto"`` trains on the CPU.
        max_retries: how often a job whose worker died is run again before it gets
            status ``"error"``.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ... as the worker resolves it.
        timeout: wall-clock seconds per job (checked after each epoch in the worker),
            or ``None``.
        hooks: extra hooks passed to every job (pickled to the workers).
        runtime: precision, compilation and determinism of every job (see
            :class:`~researchgym.engine.Runtime`).
    """

    def __init__(
        self,
        *,
        address: str | None = None,
        num_cpus: int | None = None,
        cpus_per_job: float = 1.0,
        gpus_per_job: float = 0.0,
        max_retries: int = 2,
        device: str = "auto",
        timeout: float | None = None,
        hooks: Sequence[Hook] = (),
        runtime: Runtime | Mapping[str, Any] | None = None,
    ):
        if address is not None and num_cpus is not None:
            raise ConfigError(
                f"num_cpus={num_cpus!r} sizes a local Ray, but address={shorten(address)} names "
                "a running cluster; drop one of them"
            )
        if num_cpus is not None and not (isinstance(num_cpus, int) and num_cpus >= 1):
            raise ConfigError(
                f"num_cpus={shorten(num_cpus)} must be a whole number of CPUs, 1 or more"
            )
        if not (isinstance(cpus_per_job, (int, float)) and cpus_per_job > 0):
            raise ConfigError(f"cpus_per_job={shorten(cpus_per_job)} must be a number above 0")
        if not (isinstance(gpus_per_job, (int, float)) and gpus_per_job >= 0):
            raise ConfigError(f"gpus_per_job={shorten(gpus_per_job)} must be 0 or more")
        if not (isinstance(max_retries, int) and max_retries >= 0):
            raise ConfigError(
                f"max_retries={shorten(max_retries)} must be a whole number, 0 or more"
            )
        if gpus_per_job == 0 and device.startswith("cuda"):
            raise ConfigError(
                f"device={shorten(device)} needs a GPU, but gpus_per_job=0 hides every GPU from "
                "the workers; pass gpus_per_job=1 (or a fraction), or device='auto'"
            )
        if importlib.util.find_spec("ray") is None:
            _ray()  # raises DependencyNotInstalled
        self.address = address
        self.num_cpus = num_cpus
        self.cpus_per_job = cpus_per_job
        self.gpus_per_job = gpus_per_job
        self.max_retries = max_retries
        self.device = device
        self.timeout = timeout
        self.hooks = list(hooks)
        self.runtime = Runtime.of(runtime)
        self._lock = threading.Lock()
        self._task: Any = None  # the remote function, made once Ray is up
        self._started_ray = False

    def _remote(self) -> Any:
        """The Ray task that trains a job (Ray started or connected first)."""
        with self._lock:
            ray = _ray()
            if not ray.is_initialized():
                options: dict[str, Any]
                if self.address is None and not os.environ.get("RAY_ADDRESS"):
                    # Ray nices its workers to 15; training is this Ray's main work
                    options = {"num_cpus": self.num_cpus, "_system_config": {"worker_niceness": 0}}
                else:
                    options = {"address": self.address}
                ray.init(**options, include_dashboard=False)
                self._started_ray = True
            if self._task is None:
                self._task = ray.remote(_train_job).options(
                    num_cpus=self.cpus_per_job,
                    num_gpus=self.gpus_per_job,
                    max_retries=self.max_retries,
                    retry_exceptions=False,  # a job's own failure is a result, not retried
                )
            return self._task

    def _result(self, ref: Any, submitted: float) -> Result:
        """The result of a submitted job; Ray's failures become a failed result."""
        ray = _ray()
        try:
            return Result(**ray.get(ref))
        except ray.exceptions.RayError as exc:
            status = "oom" if isinstance(exc, ray.exceptions.OutOfMemoryError) else "error"
            lines = str(exc).strip().splitlines()
            return Result(
                status=status,
                error=(
                    f"Ray could not finish the job (a job whose worker dies is run again up to "
                    f"max_retries={self.max_retries} times): {type(exc).__name__}: "
                    f"{lines[0] if lines else ''}"
                ),
                seconds=time.perf_counter() - submitted,
            )

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
        job = Job(dict(metaprogram), task, seed, start, save_to, schedule_epochs)
        return self.run_many([job])[0]

    def run_many(self, jobs: Sequence[Job]) -> list[Result]:
        """Train many jobs at once and return their results in the jobs' order.

        Jobs run in parallel as far as the cluster's free CPUs and GPUs allow; the
        others wait in Ray's queue. Never raises for a failed job.

        Args:
            jobs: the jobs, each the arguments of :meth:`run`.
        """
        try:
            remote = self._remote()
        except (ConnectionError, RuntimeError, ValueError) as exc:  # Ray did not start
            error = f"Ray is not available: {type(exc).__name__}: {exc}"
            return [Result(status="error", error=error) for _ in jobs]
        submitted = [
            (
                remote.remote(job, self.device, self.timeout, self.hooks, self.runtime),
                time.perf_counter(),
            )
            for job in jobs
        ]
        return [self._result(ref, started) for ref, started in submitted]

    def close(self) -> None:
        """Shut Ray down if this executor started it (a later job starts it again)."""
        with self._lock:
            if self._started_ray:
                _ray().shutdown()
            self._started_ray = False
            self._task = None
