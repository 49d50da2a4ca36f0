"""Run-queue commands: ``submit`` jobs, run them with ``worker``, watch them with ``queue``."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer

from researchgym.cli.common import key_settings, parse_key_values
from researchgym.errors import ResearchGymError
from researchgym.terminal import console, fail, print_table, progress_bar

QueueOption = Annotated[
    Path,
    typer.Option("--queue", envvar="RESEARCHGYM_QUEUE", help="queue directory"),
]
_DEFAULT_QUEUE = Path("runs/queue")

#: Done jobs listed by ``researchgym queue`` (the latest).
_SHOWN_DONE = 10


def _open(queue: Path, *, create: bool = False, **kwargs: Any) -> Any:
    from researchgym.run_queue import RunQueue

    if not create and not (queue / "queue.json").is_file():
        fail(f"no queue at {queue.absolute()}; queue jobs first with researchgym submit")
    try:
        return RunQueue(queue, **kwargs)
    except ResearchGymError as exc:
        fail(str(exc))


def submit(
    env: Annotated[str, typer.Option("--env", help="env id whose training jobs to queue")],
    grid: Annotated[
        Path | None,
        typer.Option(help="YAML file of settings; a list gives the values to try (one job each)"),
    ] = None,
    sampler: Annotated[
        str | None, typer.Option(help="a sweep instead: random, sobol or grid (with --n)")
    ] = None,
    n: Annotated[int, typer.Option("--n", min=1, help="sweep design points per task")] = 10,
    planner: Annotated[
        str | None, typer.Option(help="planner campaigns instead, e.g. tpe (with --episodes)")
    ] = None,
    episodes: Annotated[int, typer.Option(min=1, help="planner campaigns")] = 1,
    steps: Annotated[
        int | None,
        typer.Option(min=1, help="experiments per planner campaign (default: the env's budget)"),
    ] = None,
    planner_args: Annotated[
        list[str] | None,
        typer.Option("--planner-arg", help="planner option as key=value (repeatable)"),
    ] = None,
    repeats: Annotated[int, typer.Option(min=1, help="seeds per grid or sweep point")] = 1,
    seed: Annotated[int, typer.Option(help="seed of the design or of the first campaign")] = 0,
    fixed: Annotated[
        list[str] | None, typer.Option("--set", help="pin a setting, e.g. --set train.epochs=5")
    ] = None,
    task: Annotated[
        list[str] | None,
        typer.Option(help="tasks (repeatable; planner campaigns take one; default: the suite's)"),
    ] = None,
    queue: QueueOption = _DEFAULT_QUEUE,
    store: Annotated[
        Path | None,
        typer.Option(help="store of a new queue (default: $RESEARCHGYM_STORE or ./datasets_store)"),
    ] = None,
    lease: Annotated[
        float | None,
        typer.Option(
            min=1.0, help="of a new queue: seconds without a heartbeat before a job is handed on"
        ),
    ] = None,
) -> None:
    """Queue training jobs: a YAML grid, a sweep, or planner campaigns; workers run them."""
    import gymnasium as gym

    from researchgym.envs.research_env import unwrap_research_env
    from researchgym.run_queue import campaign_jobs, grid_jobs, sweep_jobs

    sources = [name for name, given in (("--grid", grid), ("--sampler", sampler),
               ("--planner", planner)) if given is not None]  # fmt: skip
    if len(sources) != 1:
        fail(f"give one of --grid FILE, --sampler NAME or --planner NAME (got {len(sources)})")
    if planner is not None and task and len(task) > 1:
        fail("planner campaigns take one --task (or none: the env draws one per campaign)")
    opened = _open(queue, create=True, store=store, lease_seconds=lease)
    try:
        with gym.make(env, store=False, disable_env_checker=True) as made:
            schema = unwrap_research_env(made).schema
        pins = schema.parse_overrides(fixed or [])
        plan: dict[str, Any] = {"seed": seed, "repeats": repeats, "fixed": pins, "tasks": task}
        if grid is not None:
            jobs = grid_jobs(env, schema.load_yaml(grid), **plan)
        elif sampler is not None:
            jobs = sweep_jobs(env, sampler=sampler, n=n, **plan)
        else:
            assert planner is not None
            jobs = campaign_jobs(
                env, planner, episodes=episodes, seed=seed, steps=steps, fixed=pins,
                planner_args=parse_key_values(planner_args, "--planner-arg"),
                task=task[0] if task else None,
            )  # fmt: skip
    except (ResearchGymError, ValueError, gym.error.Error) as exc:
        fail(str(exc))
    added, known = opened.submit(jobs)
    console.print(
        f"queued {added} job(s) in {opened.path} ({known} already there), recorded in "
        f"{opened.store_path}; run them with: researchgym worker --queue {opened.path}",
        soft_wrap=True,
        highlight=False,
    )


def worker(
    queue: QueueOption = _DEFAULT_QUEUE,
    store: Annotated[
        Path | None,
        typer.Option(help="where this machine reaches the queue's store (default: its path)"),
    ] = None,
    max_jobs: Annotated[int | None, typer.Option(min=1, help="stop after this many jobs")] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="keep waiting for jobs once it is empty")
    ] = False,
) -> None:
    """Run jobs from a queue until it is drained; start one per core or GPU, on any machine."""
    from researchgym.run_queue import work

    opened = _open(queue)
    statuses: Counter[str] = Counter()

    def report(job: dict[str, Any]) -> None:
        result = job["result"]
        statuses[result["status"]] += 1
        again = " (recorded before)" if result.get("recorded_before") else ""
        console.print(f"{_describe(job)}: {result['status']}{again}", highlight=False)

    done = work(opened, store=store, max_jobs=max_jobs, wait=wait, callback=report)
    console.print(f"worker finished {done} job(s): {dict(statuses)}", highlight=False)


def queue_command(
    queue: QueueOption = _DEFAULT_QUEUE,
    watch: Annotated[
        bool, typer.Option(help="refresh until nothing is pending or running")
    ] = False,
) -> None:
    """Show a queue's pending, running and done jobs, with a progress bar."""
    opened = _open(queue)
    if watch:
        with progress_bar() as progress:
            bar = progress.add_task(f"queue {opened.path}", total=None, status="")
            while True:
                counts = opened.counts()
                progress.update(
                    bar, total=sum(counts.values()), completed=counts["done"],
                    status=f"{counts['running']} running, {counts['pending']} pending",
                )  # fmt: skip
                if counts["pending"] == counts["running"] == 0:
                    break
                time.sleep(1.0)
    status = opened.status()
    running = [
        ("running", job["id"][:12], _describe(job), job.get("worker"), job.get("attempt"),
         f"{job['heartbeat_age']:.0f}", "")
        for job in status.running
    ]  # fmt: skip
    done = [
        ("done", job["id"][:12], _describe(job), job.get("result", {}).get("worker"),
         job.get("attempt"), "", _result(job.get("result", {})))
        for job in status.done[-_SHOWN_DONE:]
    ]  # fmt: skip
    print_table(
        ("state", "job", "what", "worker", "attempt", "heartbeat s", "result"),
        running + done,
        title=f"queue {opened.path} -> store {opened.store_path}",
        numeric=("attempt", "heartbeat s"),
    )
    counts = status.counts
    outcomes = Counter(job.get("result", {}).get("status", "?") for job in status.done)
    with progress_bar() as progress:
        progress.add_task(
            "done", total=sum(counts.values()), completed=counts["done"],
            status=", ".join(f"{n} {s}" for s, n in sorted(outcomes.items())),
        )  # fmt: skip
    console.print(
        f"{counts['pending']} pending, {counts['running']} running, {counts['done']} done "
        f"({', '.join(f'{n} {s}' for s, n in sorted(outcomes.items())) or 'none yet'})",
        highlight=False,
    )


def _describe(job: dict[str, Any]) -> str:
    """A job in a few words: a step's task and settings, or a campaign's planner and seed."""
    if job.get("kind") == "step":
        return f"{job.get('task')} {key_settings(job.get('metaprogram'))}"
    if job.get("kind") == "campaign":
        return f"{job.get('planner')} seed {job.get('seed')} on {job.get('task') or 'a drawn task'}"
    return str(job.get("error") or job.get("kind"))


def _result(result: dict[str, Any]) -> str:
    score = result.get("best_score")
    text = str(result.get("status", "?"))
    if score is not None:
        text += f" {score:.4f}"
    if result.get("error"):
        text += f": {result['error']}"
    return text


def register(app: typer.Typer) -> None:
    """Add ``submit``, ``worker`` and ``queue`` to ``app``."""
    app.command("submit")(submit)
    app.command("worker")(worker)
    app.command("queue")(queue_command)
