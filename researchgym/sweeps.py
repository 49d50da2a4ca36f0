"""Sweeps: many real training jobs from a space-filling design, recorded into a store.

Each job is one campaign of one experiment run through the env, so rows are the
same as any agent's. Sweeps are resumable: jobs whose (task, metaprogram) is
already stored under the sweep's agent name and horizon (as often as ``repeats``)
are skipped.

A sweep with ``max_epochs=M`` records each run as the first of a two-run campaign
(the least a forkable env takes) in a forkable env with that ``max_epochs``: each
run's learning-rate schedule spans ``M`` epochs, so the first ``e`` epochs of its
curve are what a run of ``e`` epochs in such an env gives, and Replay-v0 made with
``forkable=True, max_epochs=M`` replays any fidelity up to the recorded
``train.epochs`` (see ``researchgym.envs.replay``). Rows record the horizon in
``env_kwargs`` (``"max_epochs"``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Job", "pending_jobs", "plan_sweep", "run_sweep"]


@dataclass(frozen=True)
class Job:
    """One training job of a sweep."""

    task: str
    metaprogram: dict[str, Any]
    seed: int


def _key(task: str, metaprogram: dict[str, Any]) -> tuple[str, str]:
    return task, json.dumps(metaprogram)


def plan_sweep(
    env_id: str,
    *,
    sampler: str,
    n: int,
    seed: int = 0,
    repeats: int = 1,
    fixed: dict[str, Any] | None = None,
    tasks: list[str] | None = None,
) -> list[Job]:
    """The jobs of a sweep: ``n`` design points per task, each with ``repeats`` seeds.

    ``tasks`` defaults to every task of the env's suite, held-out ones included; any
    other task of the suite's datasets may be named (``synth_cls?seed=7&rows=2500``).
    """
    import gymnasium as gym

    from researchgym.envs.research_env import unwrap_research_env
    from researchgym.envs.suites import suite_of
    from researchgym.spaces.sampling import sample

    tasks = list(tasks or suite_of(env_id).all_tasks)
    env = unwrap_research_env(  # checks that every task belongs to the env
        gym.make(env_id, store=False, disable_env_checker=True, tasks=tasks)
    )
    schema = env.schema
    env.close()
    jobs = []
    for t, task in enumerate(tasks):
        for i, point in enumerate(sample(schema, sampler, n, seed=seed + 1000 * t)):
            metaprogram = schema.validate(point | (fixed or {}))
            for r in range(repeats):
                jobs.append(
                    Job(task, metaprogram, seed=seed * 1_000_003 + t * 10_007 + i * 101 + r)
                )
    return jobs


def pending_jobs(
    jobs: list[Job], store: Any, env_id: str, agent: str, max_epochs: int | None = None
) -> list[Job]:
    """The jobs not yet recorded in ``store`` under ``agent`` at horizon ``max_epochs``
    (counting repeats)."""
    from researchgym.envs.recording import recorded_horizon

    done: Counter = Counter()
    rows = store.runs(
        env_id, agent=agent, columns=("task", "metaprogram", "env_kwargs"), order_by=()
    ).to_pylist()
    done.update((r["task"], r["metaprogram"]) for r in rows if recorded_horizon(r) == max_epochs)
    pending = []
    for job in jobs:
        key = _key(job.task, job.metaprogram)
        if done[key] > 0:
            done[key] -= 1
        else:
            pending.append(job)
    return pending


_WORKER_ENVS: dict[tuple[str, str, str, str, int | None], Any] = {}


def _run_job(
    env_id: str, store_path: str, agent: str, max_epochs: int | None, job: Job
) -> tuple[str, float | None]:
    """Run one job in this process's cached env (one per task); returns (status, score)."""
    import gymnasium as gym

    key = (env_id, store_path, agent, job.task, max_epochs)
    if key not in _WORKER_ENVS:
        campaign: dict[str, Any] = {"budget": 1}
        if max_epochs is not None:  # 2: the least budget a forkable env takes
            campaign = {"budget": 2, "forkable": True, "max_epochs": max_epochs}
        _WORKER_ENVS[key] = gym.make(
            env_id,
            store=store_path,
            agent=agent,
            disable_env_checker=True,
            tasks=[job.task],
            **campaign,
        ).unwrapped
    env = _WORKER_ENVS[key]
    env.reset(seed=job.seed, options={"task": job.task})
    _, _, _, _, info = env.step(env.to_action(job.metaprogram))
    return info["status"], info["metrics"].get("score")


def run_sweep(
    env_id: str,
    jobs: list[Job],
    *,
    store_path: str | Path,
    agent: str,
    workers: int = 1,
    max_epochs: int | None = None,
) -> Iterator[tuple[str, float | None]]:
    """Run jobs (see :func:`pending_jobs` to resume); yields (status, score) as each finishes.

    Args:
        env_id: the env whose executor trains the jobs.
        jobs: from :func:`plan_sweep`.
        store_path: the store that records them.
        agent: name recorded with every row (and used to resume).
        workers: parallel processes (see :func:`researchgym.engine.pool.run_jobs`).
        max_epochs: record the runs in a forkable env with this ``max_epochs``, the
            horizon of their learning-rate schedules (see the module docstring);
            ``None``: each run's schedule spans its own ``train.epochs``.
    """
    from researchgym.engine.pool import run_jobs

    yield from run_jobs(
        _run_job,
        ((env_id, str(store_path), agent, max_epochs, job) for job in jobs),
        workers=workers,
    )
