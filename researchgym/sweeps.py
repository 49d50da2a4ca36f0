"""Sweeps: many real training jobs from a space-filling design, recorded into a store.

Each job is one campaign of one experiment run through the env, so rows are the
same as any agent's. Sweeps are resumable: jobs whose (task, metaprogram) is
already stored under the sweep's agent name (as often as ``repeats``) are skipped.
Given an executor (a :class:`~researchgym.engine.RayExecutor`), the jobs train
through it, many at once, and this process records their rows.

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

import itertools
import json
import math
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from researchgym.errors import shorten

if TYPE_CHECKING:
    from researchgym.spaces import Schema

__all__ = ["MAX_JOBS", "Job", "pending_jobs", "plan_grid", "plan_sweep", "run_job", "run_sweep"]

#: Most jobs one plan may hold (a grid's size is checked before it is expanded).
MAX_JOBS = 100_000


@dataclass(frozen=True)
class Job:
    """One training job of a sweep.

    Attributes:
        task: the task trained on.
        metaprogram: the validated settings.
        seed: the episode seed.
        campaign_id: the id its step is recorded under (None: a fresh one).
    """

    task: str
    metaprogram: dict[str, Any]
    seed: int
    campaign_id: str | None = None


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
    from researchgym.spaces.sampling import sample

    tasks, schema = _tasks_and_schema(env_id, tasks)
    _check_size(len(tasks) * n * repeats)
    return _jobs(
        schema,
        tasks,
        lambda t: sample(schema, sampler, n, seed=seed + 1000 * t),
        seed=seed,
        repeats=repeats,
        fixed=fixed,
    )


def plan_grid(
    env_id: str,
    grid: Mapping[str, Any],
    *,
    seed: int = 0,
    repeats: int = 1,
    fixed: dict[str, Any] | None = None,
    tasks: list[str] | None = None,
) -> list[Job]:
    """The jobs of a grid: every combination of the listed values, per task and seed.

    Args:
        env_id: the env whose settings the grid names.
        grid: settings by name (nested or dotted, as in a YAML settings file); a list
            gives the values to try, anything else is one value,
            e.g. ``{"optim.lr": [0.01, 0.1], "train.epochs": 2}``.
        seed, repeats, fixed, tasks: as for :func:`plan_sweep`.

    Raises:
        SettingError: an unknown setting, an empty list, a value out of range, or
            more than :data:`MAX_JOBS` jobs.
    """
    from researchgym.spaces import SettingError

    tasks, schema = _tasks_and_schema(env_id, tasks)
    flat = schema.flatten(grid)
    axes = {name: value if isinstance(value, list) else [value] for name, value in flat.items()}
    for name, values in axes.items():
        schema[name]  # unknown names fail here, with a suggestion
        if not values:
            raise SettingError(f"grid setting {shorten(name)} lists no values; give at least one")
    _check_size(len(tasks) * repeats * math.prod(len(values) for values in axes.values()))
    points = [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]
    return _jobs(schema, tasks, lambda _: points, seed=seed, repeats=repeats, fixed=fixed)


def _tasks_and_schema(env_id: str, tasks: list[str] | None) -> tuple[list[str], Schema]:
    """The tasks (default: all of the env's suite) and the env's settings schema."""
    import gymnasium as gym

    from researchgym.envs.research_env import unwrap_research_env
    from researchgym.envs.suites import suite_of

    tasks = list(tasks or suite_of(env_id).all_tasks)
    env = unwrap_research_env(  # checks that every task belongs to the env
        gym.make(env_id, store=False, disable_env_checker=True, tasks=tasks)
    )
    env.close()
    return tasks, env.schema


def _check_size(n_jobs: int) -> None:
    from researchgym.spaces import SettingError

    if n_jobs > MAX_JOBS:
        raise SettingError(
            f"the plan holds {n_jobs} jobs, more than {MAX_JOBS}; plan fewer values, "
            "tasks or repeats at once"
        )


def _jobs(
    schema: Schema,
    tasks: list[str],
    points: Callable[[int], Iterable[dict[str, Any]]],
    *,
    seed: int,
    repeats: int,
    fixed: dict[str, Any] | None,
) -> list[Job]:
    """``repeats`` seeded jobs for each of ``points(t)`` on each task ``t``, ``fixed`` pinned."""
    jobs = []
    for t, task in enumerate(tasks):
        for i, point in enumerate(points(t)):
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


_WORKER = threading.local()  # each worker thread's (or process's) envs, one per task


def _campaign(max_epochs: int | None) -> dict[str, Any]:
    """The env arguments of a sweep's one-run campaigns at horizon ``max_epochs``."""
    if max_epochs is None:
        return {"budget": 1}
    return {"budget": 2, "forkable": True, "max_epochs": max_epochs}  # 2: the least it takes


def run_job(
    env_id: str,
    store_path: str,
    agent: str,
    job: Job,
    executor: Any = None,
    max_epochs: int | None = None,
) -> tuple[str, float | None]:
    """Run one job in this thread's cached env (one per task); returns (status, score)."""
    import gymnasium as gym

    envs = _WORKER.__dict__.setdefault("envs", {})
    key = (env_id, store_path, agent, job.task, executor, max_epochs)
    if key not in envs:
        envs[key] = gym.make(
            env_id,
            store=store_path,
            agent=agent,
            disable_env_checker=True,
            tasks=[job.task],
            **({} if executor is None else {"executor": executor}),
            **_campaign(max_epochs),
        ).unwrapped
    env = envs[key]
    options = {"task": job.task}
    if job.campaign_id is not None:
        options["campaign_id"] = job.campaign_id
    env.reset(seed=job.seed, options=options)
    _, _, _, _, info = env.step(env.to_action(job.metaprogram))
    return info["status"], info["metrics"].get("score")


def _run_batch(
    env_id: str,
    store_path: str,
    agent: str,
    jobs: list[Job],
    executor: Any = None,
    max_epochs: int | None = None,
) -> list[tuple[str, float | None]]:
    """Run jobs of one task as one step of this thread's cached vector env (its training
    batched)."""
    import gymnasium as gym
    from gymnasium.vector.utils import concatenate, create_empty_array

    task = jobs[0].task
    cached = _WORKER.__dict__.setdefault("envs", {})
    key = (env_id, store_path, agent, task, len(jobs), executor, max_epochs)
    if key not in cached:
        cached[key] = gym.make_vec(
            env_id,
            num_envs=len(jobs),
            vectorization_mode="vector_entry_point",
            store=store_path,
            agent=agent,
            tasks=[task],
            **_campaign(max_epochs),
            **({} if executor is None else {"executor": executor}),
        )
    envs = cached[key]
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
    executor: Any = None,
    batch: int = 1,
    max_epochs: int | None = None,
) -> Iterator[tuple[str, float | None]]:
    """Run jobs (see :func:`pending_jobs` to resume); yields (status, score) as each finishes.

    Args:
        env_id: the env whose executor trains the jobs.
        jobs: from :func:`plan_sweep`.
        store_path: the store that records them.
        agent: name recorded with every row (and used to resume).
        workers: parallel processes (see :func:`researchgym.engine.pool.run_jobs`), or
            with ``executor``, jobs (or batches) in flight at once (threads of this process).
        executor: trains every job instead of the env's own executor, e.g. a
            :class:`~researchgym.engine.RayExecutor` whose workers train the jobs.
        batch: jobs of one task trained together as one step of a vector env
            (``researchgym.envs.vector``), their stackable models as one batched job
            (``researchgym.engine.population``); 1 runs each job alone. The rows are
            those of jobs run alone, up to float rounding.
        max_epochs: record the runs in a forkable env with this ``max_epochs``, the
            horizon of their learning-rate schedules (see the module docstring);
            ``None``: each run's schedule spans its own ``train.epochs``.
    """
    from researchgym.engine.pool import run_jobs

    threads = executor is not None
    if batch <= 1:
        yield from run_jobs(
            run_job,
            ((env_id, str(store_path), agent, job, executor, max_epochs) for job in jobs),
            workers=workers,
            threads=threads,
        )
        return
    by_task: dict[str, list[Job]] = {}
    for job in jobs:
        by_task.setdefault(job.task, []).append(job)
    chunks = [
        (env_id, str(store_path), agent, same[i : i + batch], executor, max_epochs)
        for same in by_task.values()
        for i in range(0, len(same), batch)
    ]
    for finished in run_jobs(_run_batch, chunks, workers=workers, threads=threads):
        yield from finished
