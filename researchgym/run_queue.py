"""A run queue in a shared directory: jobs submitted once, run by workers on any machine.

No broker: the queue is files, moved between folders by atomic renames::

    <queue>/
      queue.json              the store every job is recorded in
      pending/<name>.json     submitted, waiting for a worker
      running/<name>.json     claimed; its modification time is the worker's heartbeat
      done/<name>.json        finished (or given up), with the result

A worker claims a job by renaming it from ``pending/`` to ``running/`` (only
one rename of a file succeeds), then touches it every ``lease / 4`` seconds
while the job runs. A running job untouched for longer than the lease lost its
worker (killed, or cut off from the queue): any worker renames it back to
``pending/`` for another to take, up to ``max_attempts`` claims, after which it
is done with status ``error``. Workers' clocks must agree to well within the lease.

Jobs are idempotent. A job's id is a hash of what it runs (submitting the same
job twice enqueues it once), and its steps are recorded under the campaign id
``<job id>.<attempt>``. Before running, a worker looks for a finished campaign
of the job in the store: a job whose worker died after recording is marked done
without training again, so a finished job has exactly one campaign in the
store. A worker killed mid-campaign leaves its finished steps as a campaign cut
short (as the store keeps any killed writer's steps). Only a worker that stalls
for longer than the lease and then resumes can record a job a second time.

::

    from researchgym.run_queue import RunQueue, grid_jobs, work

    queue = RunQueue("runs/queue", store="runs/store")
    queue.submit(grid_jobs("researchgym/Digits-v0", {"optim.lr": [0.01, 0.1]}))
    work(queue)            # in as many processes, on as many machines, as wanted
    queue.status().counts  # {"pending": 0, "running": 0, "done": 2}
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Self

from researchgym.errors import MAX_ERROR_CHARS, ConfigError, StateError, shorten
from researchgym.store import resolve_store_path
from researchgym.store.files import publish_bytes

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "QueueStatus",
    "RunQueue",
    "campaign_jobs",
    "grid_jobs",
    "sweep_jobs",
    "work",
]

#: Seconds a running job may go without a heartbeat before another worker takes it.
DEFAULT_LEASE_SECONDS = 60.0
#: Claims of one job (the first and retries after lost workers) before it is given up.
DEFAULT_MAX_ATTEMPTS = 3
#: Largest job file a worker reads (a larger one is not a job this module wrote).
MAX_JOB_BYTES = 1_000_000

STATES = ("pending", "running", "done")
_CONFIG = "queue.json"


def _job_id(spec: Mapping[str, Any]) -> str:
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _job(spec: dict[str, Any]) -> dict[str, Any]:
    return {"id": _job_id(spec), **spec}


def sweep_jobs(env_id: str, *, agent: str | None = None, **plan: Any) -> list[dict[str, Any]]:
    """Jobs of one step each for a space-filling sweep (see :func:`researchgym.sweeps.plan_sweep`).

    Args:
        env_id: the env.
        agent: name the steps are recorded under (default: ``sweep-<sampler>``, as
            ``researchgym generate`` records).
        **plan: the arguments of ``plan_sweep`` (``sampler``, ``n``, ``seed``, ...).
    """
    from researchgym.sweeps import plan_sweep

    agent = agent or f"sweep-{plan['sampler']}"
    return [_step_job(env_id, agent, job) for job in plan_sweep(env_id, **plan)]


def grid_jobs(
    env_id: str, grid: Mapping[str, Any], *, agent: str = "sweep-yaml", **plan: Any
) -> list[dict[str, Any]]:
    """Jobs of one step each for every combination of a grid (see :func:`researchgym.sweeps.plan_grid`)."""
    from researchgym.sweeps import plan_grid

    return [_step_job(env_id, agent, job) for job in plan_grid(env_id, grid, **plan)]


def _step_job(env_id: str, agent: str, job: Any) -> dict[str, Any]:
    return _job(
        {
            "kind": "step", "env": env_id, "agent": agent, "task": job.task,
            "seed": job.seed, "metaprogram": job.metaprogram,
        }
    )  # fmt: skip


def campaign_jobs(
    env_id: str,
    planner: str,
    *,
    episodes: int = 1,
    seed: int = 0,
    steps: int | None = None,
    fixed: Mapping[str, Any] | None = None,
    planner_args: Mapping[str, Any] | None = None,
    task: str | None = None,
) -> list[dict[str, Any]]:
    """One job per campaign of a planner; campaign ``i`` is seeded ``seed + i``.

    The planner, its options and the pinned settings are checked here, so that a
    mistake fails at submission rather than in every worker.

    Args:
        env_id: the env.
        planner: a registered planner name (``researchgym.planning.planner_names()``).
        episodes: campaigns.
        seed: seed of the first campaign.
        steps: experiments per campaign (default: the env's budget).
        fixed: settings pinned in every experiment.
        planner_args: the planner's keyword options.
        task: the task of every campaign (default: drawn by the env at reset).

    Raises:
        PlannerError: an unknown planner or options it does not take.
        SettingError: a pinned setting that is unknown or out of range.
    """
    import gymnasium as gym

    from researchgym.envs.research_env import unwrap_research_env
    from researchgym.planning import make_planner, validate_pins

    make_planner(planner, **(planner_args or {}))
    # a task the env does not have fails here
    with gym.make(env_id, store=False, disable_env_checker=True, **_tasks(task)) as env:
        pins = validate_pins(unwrap_research_env(env).schema, fixed)
    campaign = {
        "kind": "campaign", "env": env_id, "planner": planner,
        "planner_args": dict(planner_args or {}), "steps": steps, "fixed": pins, "task": task,
    }  # fmt: skip
    return [_job({**campaign, "seed": seed + i}) for i in range(episodes)]


def _tasks(task: str | None) -> dict[str, Any]:
    """The env argument that makes ``task`` (any task of the suite's datasets) the env's only one."""
    return {} if task is None else {"tasks": [task]}


@dataclasses.dataclass(frozen=True)
class QueueStatus:
    """What a queue holds.

    Attributes:
        pending: Jobs waiting, oldest first.
        running: Jobs claimed, each with ``worker``, ``attempt`` and ``heartbeat_age``
            (seconds since its worker last touched it).
        done: Jobs finished, each with its ``result``.
    """

    pending: list[dict[str, Any]]
    running: list[dict[str, Any]]
    done: list[dict[str, Any]]

    @property
    def counts(self) -> dict[str, int]:
        return {state: len(getattr(self, state)) for state in STATES}


class RunQueue:
    """A queue of jobs in a directory that every worker reaches.

    The store, the lease and the attempts are the queue's: fixed when it is
    created (the first time a directory is opened), read by every worker after.

    Args:
        path: The queue directory.
        store: The store jobs are recorded in (default: ``$RESEARCHGYM_STORE``,
            else ``./datasets_store``).
        lease_seconds: How long a running job may go without a heartbeat
            (default: :data:`DEFAULT_LEASE_SECONDS`).
        max_attempts: Claims of one job before it is given up (default:
            :data:`DEFAULT_MAX_ATTEMPTS`).

    Raises:
        ConfigError: A lease or attempt count below its minimum, or a value other
            than the existing queue's.
        StateError: ``path`` is a file, or holds a damaged ``queue.json``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        store: str | os.PathLike[str] | None = None,
        lease_seconds: float | None = None,
        max_attempts: int | None = None,
    ) -> None:
        if (lease_seconds is not None and not lease_seconds > 0) or (
            max_attempts is not None and max_attempts < 1
        ):
            raise ConfigError(
                f"lease_seconds must be > 0 and max_attempts >= 1, "
                f"got {shorten(lease_seconds)} and {shorten(max_attempts)}"
            )
        self.path = Path(path).expanduser().absolute()
        config = self._configure(
            {
                "store": None if store is None else str(resolve_store_path(store)),
                "lease_seconds": lease_seconds,
                "max_attempts": max_attempts,
            }
        )
        self.store_path = Path(config["store"])
        self.lease_seconds: float = config["lease_seconds"]
        self.max_attempts: int = config["max_attempts"]

    def __repr__(self) -> str:
        return f"RunQueue({str(self.path)!r})"

    def _configure(self, given: dict[str, Any]) -> dict[str, Any]:
        """The queue's settings: read, or written with ``given`` when it is new."""
        file = self.path / _CONFIG
        if self.path.exists() and not self.path.is_dir():
            raise StateError(f"queue path {self.path} is a file; pass a directory")
        try:
            raw = json.loads(file.read_text())
            config = {
                "store": str(raw["store"]),
                "lease_seconds": float(raw["lease_seconds"]),
                "max_attempts": int(raw["max_attempts"]),
            }
        except FileNotFoundError:
            defaults = {
                "store": str(resolve_store_path(None)),
                "lease_seconds": DEFAULT_LEASE_SECONDS,
                "max_attempts": DEFAULT_MAX_ATTEMPTS,
            }
            config = {key: default if given[key] is None else given[key]
                      for key, default in defaults.items()}  # fmt: skip
            for state in STATES:
                (self.path / state).mkdir(parents=True, exist_ok=True)
            publish_bytes(file, lambda f: f.write(json.dumps(config).encode()))
            return config
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problem = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
            raise StateError(f"{file} is not a queue's settings ({problem})") from None
        for key, value in given.items():
            if value is not None and value != config[key]:
                raise ConfigError(
                    f"queue {self.path} has {key}={config[key]}, not {shorten(value)}; "
                    "leave it out or use another queue"
                )
        return config

    # ------------------------------------------------------------------ files

    def _names(self, state: str) -> list[str]:
        try:
            names = os.listdir(self.path / state)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if n.endswith(".json") and not n.startswith("."))

    def _read(self, state: str, name: str) -> dict[str, Any]:
        """A job file; a damaged one reads as a job whose ``error`` says why.

        Raises:
            FileNotFoundError: The file moved on (claimed, finished or handed back).
        """
        with open(self.path / state / name, "rb") as f:
            raw = f.read(MAX_JOB_BYTES + 1)
        if len(raw) > MAX_JOB_BYTES:
            problem = f"over {MAX_JOB_BYTES} bytes"
        else:
            try:
                job = json.loads(raw)
            except ValueError as exc:
                problem = str(exc)[:MAX_ERROR_CHARS]
            else:
                if isinstance(job, dict):
                    return job
                problem = f"a JSON {type(job).__name__}, not an object"
        return {"id": _id_of(name), "kind": "unreadable", "error": f"bad job file: {problem}"}

    def _read_all(self, state: str) -> list[tuple[str, dict[str, Any]]]:
        """The jobs in one state, by file name (those that move on meanwhile left out)."""
        jobs = []
        for name in self._names(state):
            with contextlib.suppress(FileNotFoundError):
                jobs.append((name, self._read(state, name)))
        return jobs

    def _write(self, state: str, name: str, job: Mapping[str, Any]) -> None:
        data = json.dumps(job, default=str).encode()
        publish_bytes(self.path / state / name, lambda f: f.write(data))

    # ------------------------------------------------------------------ submitting

    def submit(self, jobs: Iterable[Mapping[str, Any]]) -> tuple[int, int]:
        """Enqueue jobs (from :func:`grid_jobs`, :func:`sweep_jobs`, :func:`campaign_jobs`).

        Returns:
            How many were added, and how many were already in the queue.
        """
        known = {_id_of(name) for state in STATES for name in self._names(state)}
        stamp = time.time_ns()
        added = 0
        jobs = list(jobs)
        for job in jobs:
            if job["id"] in known:
                continue
            known.add(job["id"])
            self._write("pending", f"{stamp + added:020d}-{job['id']}.json", job)
            added += 1
        return added, len(jobs) - added

    # ------------------------------------------------------------------ claiming

    def claim(self, worker: str) -> tuple[str, dict[str, Any]] | None:
        """Take the oldest pending job for ``worker``: its file name and the job, or None."""
        for name in self._names("pending"):
            source, target = self.path / "pending" / name, self.path / "running" / name
            try:
                os.utime(source)  # the heartbeat starts fresh when the rename lands
                os.rename(source, target)
                job = self._read("running", name)
            except FileNotFoundError:  # another worker took it first
                continue
            job["id"] = _id_of(name)  # the name is what the store is checked for
            job["attempt"] = _attempt(job) + 1
            job["worker"] = worker
            self._write("running", name, job)
            return name, job
        return None

    def heartbeat(self, name: str) -> bool:
        """Renew the lease of a running job; False when it is no longer this worker's."""
        try:
            os.utime(self.path / "running" / name)
        except FileNotFoundError:
            return False
        return True

    def finish(self, name: str, job: Mapping[str, Any], result: Mapping[str, Any]) -> None:
        """Record a running job's result and move it to ``done/``."""
        self._write("done", name, {**job, "result": dict(result)})
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path / "running" / name)

    def reap(self) -> int:
        """Hand jobs whose worker went silent back to ``pending/`` (or give them up); how many."""
        moved = 0
        for name in self._names("running"):
            path = self.path / "running" / name
            if not self._expired(path):
                continue
            try:
                job = self._read("running", name)
            except FileNotFoundError:
                continue
            if _attempt(job) >= self.max_attempts:
                if self._expired(path):
                    error = f"its worker went silent in each of {self.max_attempts} attempts"
                    self.finish(name, job, {"status": "error", "error": error})
                    moved += 1
                continue
            with contextlib.suppress(FileNotFoundError):
                if self._expired(path):  # not claimed again since the look above
                    os.rename(path, self.path / "pending" / name)
                    moved += 1
        return moved

    def _expired(self, path: Path) -> bool:
        try:
            return time.time() - os.stat(path).st_mtime > self.lease_seconds
        except FileNotFoundError:
            return False

    def counts(self) -> dict[str, int]:
        """How many jobs are pending, running and done (cheaper than :meth:`status`)."""
        return {state: len(self._names(state)) for state in STATES}

    def status(self) -> QueueStatus:
        """What the queue holds now."""
        now = time.time()
        running = []
        for name, job in self._read_all("running"):
            with contextlib.suppress(FileNotFoundError):
                job["heartbeat_age"] = now - os.stat(self.path / "running" / name).st_mtime
                running.append(job)
        return QueueStatus(
            pending=[job for _, job in self._read_all("pending")],
            running=running,
            done=[job for _, job in self._read_all("done")],
        )


def _id_of(name: str) -> str:
    return name.removesuffix(".json").rpartition("-")[2]


def _attempt(job: Mapping[str, Any]) -> int:
    """How often the job was claimed (0 for a job file that does not say)."""
    attempt = job.get("attempt", 0)
    return attempt if isinstance(attempt, int) else 0


# ---------------------------------------------------------------------- workers


def work(
    queue: RunQueue,
    *,
    store: str | os.PathLike[str] | None = None,
    worker: str | None = None,
    max_jobs: int | None = None,
    wait: bool = False,
    poll_seconds: float = 1.0,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> int:
    """Run jobs from ``queue`` until it is drained (or forever with ``wait``).

    Args:
        queue: The queue.
        store: Where this machine reaches the queue's store (default: the
            queue's own path to it).
        worker: This worker's name in the queue (default: host, pid and a
            random suffix).
        max_jobs: Stop after this many jobs.
        wait: Keep waiting for new jobs once the queue is empty; otherwise stop
            when nothing is pending or running (a running job may still come
            back when its worker dies, so workers wait for those).
        poll_seconds: Pause between looks at an empty queue.
        callback: Called with each finished job (its ``result`` included).

    Returns:
        How many jobs this worker finished.
    """
    from researchgym.store import Store

    worker = worker or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    store_path = resolve_store_path(store) if store is not None else queue.store_path
    poll = min(poll_seconds, queue.lease_seconds / 4)
    finished = 0
    with Store(store_path, auto_compact=None) as recorded:
        while max_jobs is None or finished < max_jobs:
            queue.reap()
            claimed = queue.claim(worker)
            if claimed is None:
                counts = queue.counts()
                if not wait and counts["pending"] == counts["running"] == 0:
                    break
                time.sleep(poll)
                continue
            name, job = claimed
            with _Heartbeat(queue, name) as beat:
                result = _recorded(recorded, job["id"])
                if result is None:
                    result = _execute(job, store_path)
            if beat.lost:  # another worker took it over; its outcome counts
                continue
            queue.finish(name, job, {**result, "worker": worker})
            finished += 1
            if callback is not None:
                callback({**job, "result": result})
    return finished


class _Heartbeat:
    """Touches a running job every quarter lease from a thread; ``lost`` once it is gone."""

    def __init__(self, queue: RunQueue, name: str) -> None:
        self._queue, self._name = queue, name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.lost = False

    def _run(self) -> None:
        while not self._stop.wait(self._queue.lease_seconds / 4):
            if not self._queue.heartbeat(self._name):
                self.lost = True
                return

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if not self.lost and not self._queue.heartbeat(self._name):
            self.lost = True


_RECORDED = """
SELECT campaign_id, count(*) AS rows, arg_max(status, step) AS status,
    max(val_score) FILTER (WHERE NOT isnan(val_score)) AS best_score
FROM steps WHERE starts_with(campaign_id, ?)
GROUP BY campaign_id HAVING bool_or(terminated OR truncated)
ORDER BY campaign_id LIMIT 1
"""


def _recorded(store: Any, job_id: str) -> dict[str, Any] | None:
    """The result of the job's finished campaign in ``store``, or None when it has none."""
    rows = store.sql(_RECORDED, [f"{job_id}."]).to_pylist()
    return {**rows[0], "recorded_before": True} if rows else None


def _execute(job: Mapping[str, Any], store_path: Path) -> dict[str, Any]:
    """Run one job, recording its steps under ``<id>.<attempt>``; its result."""
    campaign_id = f"{job['id']}.{job['attempt']}"
    started = time.perf_counter()
    try:
        import gymnasium as gym

        kind = job.get("kind")
        if kind not in ("step", "campaign"):
            raise ConfigError(job.get("error") or f"unknown job kind {shorten(kind)}")
        if job.get("env") not in gym.registry:  # never an id that names a module to import
            raise ConfigError(f"env {shorten(job.get('env'))} is not a registered env id")
        if kind == "step":
            from researchgym.sweeps import Job, run_job

            step = Job(job["task"], job["metaprogram"], job["seed"], campaign_id)
            status, score = run_job(job["env"], str(store_path), job["agent"], step)
            result = {"status": status, "rows": 1, "best_score": score}
        else:
            result = _run_campaign(job, campaign_id, store_path)
    except Exception as exc:  # noqa: BLE001 - a job's failure is its result, not the worker's
        result = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]}
    return {**result, "campaign_id": campaign_id, "seconds": time.perf_counter() - started}


def _run_campaign(job: Mapping[str, Any], campaign_id: str, store_path: Path) -> dict[str, Any]:
    from researchgym.planning import make_planner, rollout

    task = job.get("task")
    options = {"campaign_id": campaign_id} | ({} if task is None else {"task": task})
    (campaign,) = rollout(
        make_planner(job["planner"], **job["planner_args"]), job["env"],
        seed=job["seed"], fixed=job["fixed"], budget=job["steps"], store=str(store_path),
        options=options, env_kwargs=_tasks(task),
    )  # fmt: skip
    statuses = [step.status for step in campaign.steps]
    return {
        "status": "ok" if "ok" in statuses else statuses[-1],
        "rows": len(statuses),
        "best_score": campaign.best_score,
    }
