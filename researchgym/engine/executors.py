"""Executors run ``train`` and turn every failure into a :class:`Result` with a status.

The env does not care which executor runs a step:

* :class:`InProcessExecutor` calls ``train`` directly (fastest; the timeout is
  checked between epochs), and trains the jobs of :meth:`~InProcessExecutor.run_many`
  that can share a batch as one population (see ``researchgym.engine.population``).
* :class:`SubprocessExecutor` runs it in a warm worker process that is killed at
  the wall-clock timeout and started with an address-space limit, so a runaway
  job cannot take the caller down.

Executors are context managers; ``close()`` (or leaving the ``with`` block, or the
interpreter exiting) stops their workers.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import resource
import subprocess
import sys
import time
import traceback
import weakref
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

import torch

from researchgym.engine.hooks import Deadline, Hook, TrainingTimeout
from researchgym.engine.jobs import Executor, Job, Result, Start
from researchgym.engine.population import population_groups, train_population
from researchgym.engine.runtime import Runtime
from researchgym.engine.tasks import TaskRef
from researchgym.engine.training import resolve_device, train
from researchgym.errors import ConfigError, StateError

__all__ = ["InProcessExecutor", "SubprocessExecutor", "failure_result"]

_OOM_MARKERS = ("out of memory", "can't allocate memory", "cannot allocate memory")
_READY = "ready"
_STARTUP_SECONDS = 300.0  # a worker that takes longer to import torch has failed
_LIVE: weakref.WeakSet[SubprocessExecutor] = weakref.WeakSet()  # executors with a worker


@atexit.register
def _close_live_executors() -> None:
    """Stop every worker still running when the interpreter exits."""
    for executor in list(_LIVE):
        executor.close()


def failure_result(exc: BaseException, seconds: float = 0.0) -> Result:
    """Map an exception raised by training to a failed :class:`Result`."""
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, TrainingTimeout):
        status = "timeout"
    elif isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)) or any(
        marker in str(exc).lower() for marker in _OOM_MARKERS
    ):
        status = "oom"
    else:
        status = "error"
        message = message + "\n" + "".join(traceback.format_tb(exc.__traceback__)[-3:])
    return Result(status=status, error=message, seconds=seconds)


class InProcessExecutor(Executor):
    """Run ``train`` in the calling process.

    Args:
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        timeout: wall-clock seconds per job (checked after each epoch), or ``None``.
        hooks: extra hooks passed to every job.
        runtime: precision, compilation and determinism of every job (see
            :class:`~researchgym.engine.Runtime`; a mapping of its fields works too).
    """

    def __init__(
        self,
        device: str = "auto",
        timeout: float | None = None,
        hooks: Sequence[Hook] = (),
        runtime: Runtime | Mapping[str, Any] | None = None,
    ):
        self.device = device
        self.timeout = timeout
        self.hooks = list(hooks)
        self.runtime = Runtime.of(runtime)

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
        hooks = list(self.hooks)
        if self.timeout is not None:
            hooks.append(Deadline(self.timeout))
        started = time.perf_counter()
        try:
            return train(
                metaprogram,
                task=task,
                seed=seed,
                device=self.device,
                hooks=hooks,
                start=start,
                save_to=save_to,
                schedule_epochs=schedule_epochs,
                runtime=self.runtime,
            )
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status
            return failure_result(exc, time.perf_counter() - started)

    def run_many(self, jobs: Sequence[Job]) -> list[Result]:
        """Run several jobs, training those of one task that can share a batch as one
        population (:func:`~researchgym.engine.population.train_population`).

        Jobs that start from or save a checkpoint, or set ``schedule_epochs``, run one by
        one through :meth:`run`. The timeout applies to each population as a whole: one
        that runs past it gives all its members status ``"timeout"``; another failure
        inside a population fails all its members with it.
        """
        results: list[Result | None] = [None] * len(jobs)
        by_task: dict[TaskRef, list[int]] = {}
        for i, job in enumerate(jobs):
            if job.start is None and job.save_to is None and job.schedule_epochs is None:
                by_task.setdefault(job.task, []).append(i)
            else:
                results[i] = self.run_job(job)
        hooks = list(self.hooks)
        if self.timeout is not None:
            hooks.append(Deadline(self.timeout))
        for task, indices in by_task.items():
            for group in population_groups([jobs[i].metaprogram for i in indices], self.device):
                members = [indices[g] for g in group]
                started = time.perf_counter()
                try:
                    trained = train_population(
                        [jobs[i].metaprogram for i in members],
                        task=task,
                        seeds=[jobs[i].seed for i in members],
                        device=self.device,
                        hooks=hooks,
                        runtime=self.runtime,
                    )
                except Exception as exc:  # noqa: BLE001 - every failure becomes a status
                    seconds = (time.perf_counter() - started) / len(members)
                    trained = [failure_result(exc, seconds) for _ in members]
                for i, result in zip(members, trained, strict=True):
                    results[i] = result
        return [r for r in results if r is not None]


def _serve(read_fd: int, write_fd: int, device: str, memory_limit_mb: int | None) -> None:
    """Worker loop: receive a job (``train``'s keyword arguments), send back a Result dict."""
    # Pay the lazy imports jobs make before reporting ready (job timeouts start counting
    # from the ready message) and before the address-space limit, under which a shared
    # library mapped later may not fit: the first optimizer imports torch._dynamo (~1-2 s),
    # dataset loaders import scikit-learn's datasets (and scipy with them).
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    import sklearn.datasets  # noqa: F401

    if memory_limit_mb is not None:
        limit = memory_limit_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    jobs, results = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    results.send(_READY)
    while True:
        try:
            job = jobs.recv()
        except EOFError:
            return
        if job is None:
            return
        started = time.perf_counter()
        try:
            result = train(**job, device=device)
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            result = failure_result(exc, time.perf_counter() - started)
            if result.status == "oom" and memory_limit_mb is not None:
                result.error = (
                    f"training needed more memory than the worker's {memory_limit_mb} MB limit "
                    f"(memory_limit_mb); use a smaller job or raise the limit. {result.error}"
                )
        results.send(result.to_dict())


class _Worker(NamedTuple):
    """A worker process and the pipes that send it jobs and bring back results."""

    process: subprocess.Popen
    jobs: Connection
    results: Connection


class SubprocessExecutor(Executor):
    """Run ``train`` in a persistent worker process with a timeout and a memory limit.

    The worker is started on first use (it imports torch before the first job's
    timeout starts) and kept warm for later jobs, with the data of tasks it has
    trained on cached; it is replaced only after a timeout, an out-of-memory
    failure or a crash. Use it as a context manager or call :meth:`close`; workers
    still running at interpreter exit are stopped.

    Args:
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        timeout: wall-clock seconds per job, or ``None``; on expiry the worker is
            killed and the job gets status ``"timeout"``.
        memory_limit_mb: address-space limit of the worker (``RLIMIT_AS``), or
            ``None``. Allocations past it fail and the job gets status ``"oom"``. CPU only:
            CUDA reserves address space in bulk.
        runtime: precision, compilation and determinism of every job (see
            :class:`~researchgym.engine.Runtime`).
    """

    def __init__(
        self,
        device: str = "auto",
        timeout: float | None = 600.0,
        memory_limit_mb: int | None = None,
        runtime: Runtime | Mapping[str, Any] | None = None,
    ):
        if memory_limit_mb is not None and resolve_device(device).type == "cuda":
            raise ConfigError(
                f"memory_limit_mb={memory_limit_mb} limits the worker's address space, which CUDA "
                "reserves in bulk, so every job would fail; use it with device='cpu' or drop it"
            )
        self.device = device
        self.timeout = timeout
        self.memory_limit_mb = memory_limit_mb
        self.runtime = Runtime.of(runtime)
        self._worker: _Worker | None = None

    def _start(self) -> _Worker:
        # A fresh interpreter (not fork) so torch's thread pools start clean, and
        # dedicated pipes so nothing the job prints can corrupt the protocol.
        job_read, job_write = os.pipe()
        result_read, result_write = os.pipe()
        code = (
            "import sys; from researchgym.engine.executors import _serve; "
            "_serve(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], "
            "None if sys.argv[4] == 'none' else int(sys.argv[4]))"
        )
        limit = "none" if self.memory_limit_mb is None else str(self.memory_limit_mb)
        process = subprocess.Popen(
            [sys.executable, "-c", code, str(job_read), str(result_write), self.device, limit],
            pass_fds=(job_read, result_write),
        )
        os.close(job_read)
        os.close(result_write)
        worker = self._worker = _Worker(
            process,
            jobs=Connection(job_write, readable=False),
            results=Connection(result_read, writable=False),
        )
        _LIVE.add(self)
        try:
            ready = worker.results.poll(_STARTUP_SECONDS) and worker.results.recv() == _READY
        except (EOFError, OSError):
            ready = False
        if not ready:
            exitcode = process.poll()
            self._kill()
            raise StateError(f"training worker failed to start (exit code {exitcode})")
        return worker

    def _kill(self) -> None:
        if self._worker is not None:
            self._worker.process.kill()
            self._worker.process.wait()
            self._worker.jobs.close()
            self._worker.results.close()
            self._worker = None

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
        worker = self._worker
        if worker is None or worker.process.poll() is not None:
            self._kill()
            try:
                worker = self._start()
            except (RuntimeError, OSError) as exc:
                return failure_result(exc)
        started = time.perf_counter()
        try:
            worker.jobs.send(
                {
                    "metaprogram": dict(metaprogram),
                    "task": task,
                    "seed": seed,
                    "start": start,
                    "save_to": save_to,
                    "schedule_epochs": schedule_epochs,
                    "runtime": self.runtime,
                }
            )
        except OSError as exc:  # the worker died between jobs (BrokenPipeError included)
            self._kill()
            return failure_result(exc)
        if not worker.results.poll(self.timeout):
            self._kill()
            seconds = time.perf_counter() - started
            return Result(
                status="timeout",
                error=f"training ran past its {self.timeout:g}s budget and was stopped",
                seconds=seconds,
            )
        try:
            result = Result(**worker.results.recv())
        except (EOFError, ConnectionResetError):
            exitcode = worker.process.wait()
            self._kill()
            seconds = time.perf_counter() - started
            # A worker killed by a signal while under a memory limit ran out of memory.
            if self.memory_limit_mb is None:
                status, error = "error", f"training worker died (exit code {exitcode})"
            else:
                status = "oom"
                error = (
                    f"training worker died (exit code {exitcode}) under its "
                    f"{self.memory_limit_mb} MB memory limit (memory_limit_mb)"
                )
            return Result(status=status, error=error, seconds=seconds)
        if result.status == "oom":  # a failed allocation can leave the worker's heap unusable
            self.close()
        return result

    def close(self) -> None:
        worker = self._worker
        if worker is not None and worker.process.poll() is None:
            try:
                worker.jobs.send(None)
                worker.process.wait(timeout=5)
            except (BrokenPipeError, OSError, subprocess.TimeoutExpired):
                pass
        self._kill()
        _LIVE.discard(self)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self.close()
