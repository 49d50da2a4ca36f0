"""Sweeps: many real training jobs from a space-filling design, recorded into a store.

Each job is one campaign of one experiment run through the env, so rows are the
same as any agent's. Sweeps are resumable: jobs whose (task, metaprogram) is
already stored under the sweep's agent name (as often as ``repeats``) are skipped.
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


def pending_jobs(jobs: list[Job], store: Any, env_id: str, agent: str) -> list[Job]:
    """The jobs not yet recorded in ``store`` under ``agent`` (counting repeats)."""
    done: Counter = Counter()
    rows = store.runs(env_id, agent=agent, columns=("task", "metaprogram"), order_by=()).to_pylist()
    done.update((r["task"], r["metaprogram"]) for r in rows)
    pending = []
    for job in jobs:
        key = _key(job.task, job.metaprogram)
        if done[key] > 0:
            done[key] -= 1
        else:
            pending.append(job)
    return pending


_WORKER_ENVS: dict[tuple[Any, ...], Any] = {}


def _run_job(env_id: str, store_path: str, agent: str, job: Job) -> tuple[str, float | None]:
    """Run one job in this process's cached env (one per task); returns (status, score)."""
    import gymnasium as gym

    key = (env_id, store_path, agent, job.task)
    if key not in _WORKER_ENVS:
        _WORKER_ENVS[key] = gym.make(
            env_id,
            store=store_path,
            budget=1,
            agent=agent,
            disable_env_checker=True,
            tasks=[job.task],
        ).unwrapped
    env = _WORKER_ENVS[key]
    env.reset(seed=job.seed, options={"task": job.task})
    _, _, _, _, info = env.step(env.to_action(job.metaprogram))
    return info["status"], info["metrics"].get("score")


def _run_batch(
    env_id: str, store_path: str, agent: str, jobs: list[Job]
) -> list[tuple[str, float | None]]:
    """Run jobs of one task as one step of a cached vector env (its training batched)."""
    import gymnasium as gym
    from gymnasium.vector.utils import concatenate, create_empty_array

    task = jobs[0].task
    key = (env_id, store_path, agent, task, len(jobs))
    if key not in _WORKER_ENVS:
        _WORKER_ENVS[key] = gym.make_vec(
            env_id,
            num_envs=len(jobs),
            vectorization_mode="vector_entry_point",
            store=store_path,
            budget=1,
            agent=agent,
            tasks=[task],
        )
    envs = _WORKER_ENVS[key]
    envs.reset(seed=[job.seed for job in jobs], options={"task": task})
    actions = [env.to_action(job.metaprogram) for env, job in zip(envs.envs, jobs, strict=True)]
    space = envs.single_action_space
    batch = concatenate(space, actions, create_empty_array(space, len(jobs)))
    _, _, _, _, info = envs.step(batch)
    metrics = info["metrics"]  # a failed step has no score
    scores, scored = metrics.get("score"), metrics.get("_score", [False] * len(jobs))
    return [
        (str(status), float(scores[i]) if scored[i] else None)
        for i, status in enumerate(info["status"])
    ]


def run_sweep(
    env_id: str,
    jobs: list[Job],
    *,
    store_path: str | Path,
    agent: str,
    workers: int = 1,
    batch: int = 1,
) -> Iterator[tuple[str, float | None]]:
    """Run jobs (see :func:`pending_jobs` to resume); yields (status, score) as each finishes.

    Args:
        env_id: the env whose executor trains the jobs.
        jobs: from :func:`plan_sweep`.
        store_path: the store that records them.
        agent: name recorded with every row (and used to resume).
        workers: parallel processes (see :func:`researchgym.engine.pool.run_jobs`).
        batch: jobs of one task trained together as one step of a vector env
            (``researchgym.envs.vector``), their stackable models as one batched job
            (``researchgym.engine.population``); 1 runs each job alone. The rows are
            those of jobs run alone, up to float rounding.
    """
    from researchgym.engine.pool import run_jobs

    if batch <= 1:
        yield from run_jobs(
            _run_job, ((env_id, str(store_path), agent, job) for job in jobs), workers=workers
        )
        return
    by_task: dict[str, list[Job]] = {}
    for job in jobs:
        by_task.setdefault(job.task, []).append(job)
    chunks = [
        (env_id, str(store_path), agent, same[i : i + batch])
        for same in by_task.values()
        for i in range(0, len(same), batch)
    ]
    for finished in run_jobs(_run_batch, chunks, workers=workers):
        yield from finished
