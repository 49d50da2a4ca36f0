"""``researchgym leaderboard``: run a benchmark suite's board, or list the suites."""

from __future__ import annotations

import contextlib
import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from researchgym.cli.common import (
    ExecutorOption,
    GpusPerStepOption,
    RayAddressOption,
    step_executor,
)
from researchgym.errors import ResearchGymError
from researchgym.terminal import console, fail, progress_bar


def _short(env_id: str) -> str:
    return env_id.removeprefix("researchgym/")


def _list_suites() -> None:
    from researchgym.evaluation import BENCHMARK_SUITES

    table = Table(title="benchmark suites")
    for column in ("suite", "version", "env", "test tasks", "budget", "fidelity", "requires"):
        table.add_column(column, overflow="fold")
    for suite in BENCHMARK_SUITES.values():
        env = _short(suite.env_id)
        if suite.env_id != suite.source:
            env += f" of {_short(suite.source)}"
        table.add_row(
            suite.name,
            str(suite.version),
            env,
            "\n".join(suite.test_tasks),
            suite.spend,
            suite.fidelity_text,
            suite.requires or "-",
        )
    console.print(table)


def leaderboard_command(
    suite_name: Annotated[
        str | None, typer.Option("--suite", help="benchmark suite (see --list)")
    ] = None,
    agents: Annotated[
        str, typer.Option(help="planners on the board, comma-separated")
    ] = "random,sobol,tpe",
    seeds: Annotated[int, typer.Option(min=1, help="campaigns per planner and task")] = 10,
    workers: Annotated[
        int, typer.Option(min=1, help="processes running campaigns (Ray: campaigns in flight)")
    ] = 1,
    store: Annotated[
        Path | None,
        typer.Option(
            help="store the campaigns are recorded in and resumed from (default: OUT/store)"
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="output directory (default: runs/leaderboard/SUITE)")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(help="recorded runs defining the tasks' references (default: the suite's)"),
    ] = None,
    list_suites: Annotated[bool, typer.Option("--list", help="list the suites and exit")] = False,
    executor_name: ExecutorOption = "processes",
    ray_address: RayAddressOption = None,
    gpus_per_step: GpusPerStepOption = 0.0,
) -> None:
    """Run planners x held-out tasks x seeds of a suite (resumable) and write its leaderboard."""
    if list_suites:
        _list_suites()
        return
    if suite_name is None:
        fail("no suite given; pass --suite NAME (`researchgym leaderboard --list` lists them)")
    from researchgym.evaluation import benchmark_suite, run_leaderboard

    names = [a.strip() for a in agents.split(",") if a.strip()]
    out = out or Path("runs/leaderboard") / suite_name
    store = store or out / "store"
    words = ["researchgym", "leaderboard", "--suite", suite_name, "--agents", ",".join(names)]
    words += ["--seeds", str(seeds), "--workers", str(workers), "--store", str(store)]
    words += ["--out", str(out), *(["--data", str(data)] if data is not None else [])]
    executor = step_executor(executor_name, ray_address, gpus_per_step)
    if executor is not None:
        words += ["--executor", "ray", "--gpus-per-step", f"{gpus_per_step:g}"]
        words += ["--ray-address", ray_address] if ray_address else []
    try:
        suite = benchmark_suite(suite_name)
    except ResearchGymError as exc:
        fail(str(exc))
    if suite.unavailable() is not None:
        console.print(f"[bold yellow]skipped:[/] {suite.unavailable()}")
        return
    try:
        with executor or contextlib.nullcontext(), progress_bar() as bar:
            task = bar.add_task(f"{suite.name} board", total=None, status="")

            def progress(done: int, total: int, status: str) -> None:
                bar.update(task, completed=done, total=total, status=status)

            board = run_leaderboard(
                suite,
                names,
                seeds,
                workers=workers,
                store=store,
                out_dir=out,
                data=data,
                progress=progress,
                command=shlex.join(words),
                executor=executor,
            )
    except ResearchGymError as exc:
        fail(str(exc))
    console.print(board.markdown, markup=False, highlight=False)
    console.print(
        f"{board.ran} campaigns run, {board.reused} read back from the store; "
        f"wrote {out / 'leaderboard.md'}, {out / 'leaderboard.json'} and {len(board.images)} plots"
    )


def register(app: typer.Typer) -> None:
    """Add ``leaderboard`` to ``app``."""
    app.command("leaderboard")(leaderboard_command)
