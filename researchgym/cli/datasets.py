"""Commands that make and check trajectory datasets: ``generate``, ``surrogate fit``, ``rerun``."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Annotated

import typer

from researchgym.cli.common import (
    CompileOption,
    DeterministicOption,
    ExecutorOption,
    GpusPerStepOption,
    PrecisionOption,
    RayAddressOption,
    runtime_option,
    step_executor,
)
from researchgym.spaces import SettingError
from researchgym.terminal import console, fail, print_table, progress_bar

surrogate_app = typer.Typer(
    help="Fit and inspect surrogate models of an env.", no_args_is_help=True
)


def generate(
    env: Annotated[str, typer.Option("--env", help="env id whose training jobs to run")],
    sampler: Annotated[str, typer.Option(help="random, sobol or grid")] = "sobol",
    n: Annotated[int, typer.Option("--n", min=1, help="design points per task")] = 100,
    repeats: Annotated[int, typer.Option(min=1, help="seeds per design point")] = 1,
    workers: Annotated[
        int, typer.Option(min=1, help="parallel worker processes (Ray: steps in flight)")
    ] = 1,
    batch: Annotated[
        int,
        typer.Option(
            min=1,
            help="jobs of a task trained together as one batched job (stackable models, "
            "e.g. MLPs, share one; rows are those of jobs run alone)",
        ),
    ] = 1,
    seed: Annotated[int, typer.Option(help="seed of the design")] = 0,
    fixed: Annotated[
        list[str] | None, typer.Option("--set", help="pin a setting, e.g. --set train.epochs=5")
    ] = None,
    task: Annotated[
        list[str] | None, typer.Option(help="restrict to these tasks (repeatable)")
    ] = None,
    store: Annotated[
        Path | None,
        typer.Option(help="store to fill (default: $RESEARCHGYM_STORE or ./datasets_store)"),
    ] = None,
    executor_name: ExecutorOption = "processes",
    ray_address: RayAddressOption = None,
    gpus_per_step: GpusPerStepOption = 0.0,
    max_epochs: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="record in a forkable env with this max_epochs, the horizon of every run's "
            "learning-rate schedule, so that Replay-v0 replays any fidelity up to the "
            "recorded train.epochs (pin --set train.epochs=M too for full curves)",
        ),
    ] = None,
) -> None:
    """Run a sweep of real training jobs into a store (rerunning skips what is stored)."""
    import gymnasium as gym

    from researchgym.envs.research_env import unwrap_research_env
    from researchgym.envs.suites import suite_of
    from researchgym.store import Store, resolve_store_path
    from researchgym.sweeps import pending_jobs, plan_sweep, run_sweep

    store_path = resolve_store_path(store)
    agent = f"sweep-{sampler}"
    executor = step_executor(executor_name, ray_address, gpus_per_step)
    try:
        suite_of(env)  # an env that trains on tasks of its own, with a clear error otherwise
        horizon = {} if max_epochs is None else {"forkable": True, "max_epochs": max_epochs}
        with gym.make(env, store=False, disable_env_checker=True, **horizon) as made:
            schema = unwrap_research_env(made).schema
        pins = schema.parse_overrides(fixed or [])
        jobs = plan_sweep(
            env, sampler=sampler, n=n, seed=seed, repeats=repeats, fixed=pins, tasks=task
        )
    except (SettingError, ValueError, gym.error.Error) as exc:
        fail(str(exc))
    with Store(store_path) as opened:
        pending = pending_jobs(jobs, opened, env, agent, max_epochs)
    console.print(
        f"{len(jobs)} jobs planned, {len(jobs) - len(pending)} already stored in {store_path}, "
        f"{len(pending)} to run on {workers} {'Ray step(s) at once' if executor else 'worker(s)'}"
    )
    statuses: dict[str, int] = {}
    started = time.perf_counter()
    with executor or contextlib.nullcontext(), progress_bar() as progress:
        bar = progress.add_task(f"sweep {env}", total=len(pending), status="0 failed")
        for status, _ in run_sweep(
            env,
            pending,
            store_path=store_path,
            agent=agent,
            workers=workers,
            executor=executor,
            batch=batch,
            max_epochs=max_epochs,
        ):
            statuses[status] = statuses.get(status, 0) + 1
            failures = sum(v for k, v in statuses.items() if k != "ok")
            progress.update(bar, advance=1, status=f"{failures} failed")
    print_table(
        ("status", "runs"),
        sorted(statuses.items()),
        title=f"{len(pending)} runs in {time.perf_counter() - started:.1f}s",
        numeric=("runs",),
    )


@surrogate_app.command("fit")
def surrogate_fit(
    env: Annotated[str, typer.Option("--env", help="env id whose recorded runs to fit")],
    data: Annotated[
        Path | None,
        typer.Option(help="store of recorded runs (default: the shipped reference runs)"),
    ] = None,
    output: Annotated[
        Path, typer.Option(help="where to save the model (.npz + .json card)")
    ] = Path("runs/surrogate.npz"),
    score_model: Annotated[
        str,
        typer.Option(
            help="model of the score: 'gp' (Gaussian process) or 'forest' (extremely "
            "randomized trees, never above the recorded scores)"
        ),
    ] = "gp",
    seed: Annotated[int, typer.Option(help="seed of the fits")] = 0,
) -> None:
    """Fit a surrogate on recorded runs, print its held-out fidelity and save it."""
    import gymnasium as gym

    from researchgym.envs.replay import load_runs
    from researchgym.envs.research_env import unwrap_research_env
    from researchgym.envs.surrogate import fit_surrogate

    try:
        with gym.make(env, store=False, disable_env_checker=True) as made:
            schema = unwrap_research_env(made).schema
        runs = load_runs(data, env)
    except (FileNotFoundError, ValueError, gym.error.Error) as exc:
        fail(str(exc))
    with console.status(f"fitting a surrogate of {env} on {len(runs)} runs"):
        try:
            model = fit_surrogate(runs, schema, env, score_model=score_model, seed=seed)
        except ValueError as exc:
            fail(str(exc))
    path = model.save(output)
    f = model.fidelity
    columns = ("Spearman", "Kendall", "held-out runs", "training runs", "seed noise (pooled std)")
    print_table(
        columns,
        [(f"{f.spearman:.3f}", f"{f.kendall:.3f}", f.n_test, f.n_train, f"{model.noise_std:.4f}")],
        title=f"surrogate of {env}: fidelity on held-out (task, metaprogram) pairs",
        numeric=columns,
    )
    console.print(f"saved {path} and {path.with_suffix('.json')}")


def rerun_command(
    run_id: Annotated[
        str, typer.Argument(help="run_id of a stored step, or a prefix only it starts with")
    ],
    store: Annotated[
        Path | None, typer.Option(help="store (default: $RESEARCHGYM_STORE or ./datasets_store)")
    ] = None,
    device: Annotated[
        str, typer.Option(help="training device; CPU runs are bitwise repeatable")
    ] = "cpu",
    precision: PrecisionOption = "fp32",
    compiled: CompileOption = False,
    deterministic: DeterministicOption = False,
) -> None:
    """Re-run a stored step from its metaprogram and seed; report whether metrics match."""
    import gymnasium as gym

    from researchgym.reproduce import rerun
    from researchgym.store import Store, resolve_store_path

    try:
        with Store(resolve_store_path(store)) as opened:
            report = rerun(
                opened,
                run_id,
                device=device,
                runtime=runtime_option(precision, compiled, deterministic),
            )
    except (LookupError, ValueError, FileNotFoundError, gym.error.Error) as exc:
        fail(str(exc))
    columns = ("metric", "recorded", "measured", "difference")
    rows = []
    for name in sorted(report.recorded.keys() | report.measured.keys()):
        rec, mea = report.recorded.get(name), report.measured.get(name)
        rows.append(
            (
                name,
                "-" if rec is None else f"{rec:.6f}",
                "-" if mea is None else f"{mea:.6f}",
                "-" if rec is None or mea is None else f"{mea - rec:+.3g}",
            )
        )
    print_table(
        columns,
        rows,
        title=f"rerun of {report.run_id} ({report.env_id}, task {report.task}, seed {report.seed})",
        numeric=columns[1:],
    )
    if report.matches:
        metrics = "bitwise-equal" if report.same_host else "within the cross-host tolerance"
        console.print(f"[bold green]match[/]: same status, metrics {metrics}")
    else:
        console.print(
            f"[bold yellow]mismatch[/]: status {report.recorded_status} -> {report.status}, "
            f"largest difference {report.max_abs_diff:.3g}"
        )
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    """Add ``generate``, ``surrogate fit`` and ``rerun`` to ``app``."""
    app.command("generate")(generate)
    app.command("rerun")(rerun_command)
    app.add_typer(surrogate_app, name="surrogate")
