"""Run many independent jobs: in this process, or in a pool of worker processes or threads."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from multiprocessing import get_context
from typing import Any, TypeVar

__all__ = ["run_jobs"]

T = TypeVar("T")


def _set_torch_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def run_jobs(
    function: Callable[..., T],
    jobs: Iterable[tuple[Any, ...]],
    *,
    workers: int = 1,
    threads: bool = False,
) -> Iterator[T]:
    """``function(*job)`` for each job, yielded as each finishes.

    With ``workers <= 1`` the jobs run here, in order. Otherwise they run in a pool of
    ``workers`` spawned processes (``function`` and the jobs must pickle), each with
    ``cores // workers`` torch threads so the pool does not oversubscribe the CPU. With
    ``threads``, they run in ``workers`` threads of this process instead: for jobs whose
    work happens elsewhere (steps trained as Ray tasks by a
    :class:`~researchgym.engine.RayExecutor`), which this process only waits for. When
    the consumer stops early or a job raises, the jobs not yet started are dropped.
    """
    if workers <= 1:
        for job in jobs:
            yield function(*job)
        return
    pool: Executor
    if threads:
        pool = ThreadPoolExecutor(max_workers=workers)
    else:
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=get_context("spawn"),
            initializer=_set_torch_threads,
            initargs=(max(1, (os.cpu_count() or 1) // workers),),
        )
    try:
        futures = {pool.submit(function, *job) for job in jobs}
        while futures:
            finished, futures = wait(futures, return_when=FIRST_COMPLETED)
            for future in finished:
                yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
