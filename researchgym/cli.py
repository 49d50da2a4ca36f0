"""The ``researchgym`` command line: list envs, run one metaprogram, roll out campaigns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

import researchgym
from researchgym.spaces import SettingError

app = typer.Typer(help="ResearchGym: machine-learning research as a Gymnasium environment.", no_args_is_help=True)
console = Console()

StoreOption = Annotated[
    str | None,
    typer.Option("--store", help="store directory (default: $RESEARCHGYM_STORE or ./datasets_store); 'none' records nothing"),
]


def _store_arg(store: str | None) -> Any:
    return False if store is not None and store.lower() == "none" else store


def _make_env(env_id: str, **kwargs: Any):
    import gymnasium as gym

    try:
        return gym.make(env_id, disable_env_checker=True, **kwargs)
    except gym.error.Error as exc:
        raise typer.BadParameter(f"{exc}; run `researchgym envs` to list the envs") from None


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=2)


@app.command()
def envs(
    schema: Annotated[str | None, typer.Option(help="show the settings of this env id")] = None,
) -> None:
    """List registered envs with their tasks and spaces."""
    from researchgym.envs import get_suite
    from gymnasium.envs.registration import registry

    if schema is not None:
        env = _make_env(schema, store=False).unwrapped
        table = Table(title=f"settings of {schema}")
        for column in ("setting", "type", "allowed", "default", "active when"):
            table.add_column(column)
        for s in env.schema:
            when = ", ".join(f"{k} in {list(v)}" for k, v in s.when.items())
            table.add_row(s.name, s.kind, s.describe(), repr(s.default), when)
        console.print(table)
        return
    table = Table(title="ResearchGym environments")
    for column in ("id", "tasks", "settings", "description"):
        table.add_column(column)
    for env_id in researchgym.ENV_IDS:
        suite = get_suite(registry[env_id].kwargs["suite"])
        table.add_row(env_id, ", ".join(suite.tasks), str(len(suite.make_schema())), suite.description)
    console.print(table)
    console.print("interfaces: dict (gymnasium Dict), flat (Box in [-1, 1]), text (JSON)")


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


@app.command()
def run(
    env_id: Annotated[str, typer.Argument(help="env id, e.g. researchgym/Digits-v0")],
    overrides: Annotated[list[str] | None, typer.Argument(help="settings as name=value, e.g. optim.lr=0.01")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML file of settings")] = None,
    task: Annotated[str | None, typer.Option(help="task of the env's suite (default: its first)")] = None,
    seed: Annotated[int, typer.Option(help="training seed")] = 0,
    plot: Annotated[Path, typer.Option(help="where to save the learning curve PNG")] = Path("runs/curve.png"),
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, ...")] = "auto",
    store: StoreOption = None,
) -> None:
    """Train one metaprogram (YAML + overrides) with a progress bar and plot its curve."""
    from researchgym.engine import InProcessExecutor, LambdaHook
    from researchgym.plotting import plot_curve

    env = _make_env(env_id, store=_store_arg(store), budget=1, agent="cli-run").unwrapped
    try:
        values = env.schema.load_yaml(config) if config else {}
        values |= env.schema.parse_overrides(overrides or [])
        metaprogram = env.schema.validate(values)
    except SettingError as exc:
        _fail(str(exc))
    task = task or env.suite.tasks[0]
    with _progress() as progress:
        bar = progress.add_task(f"training on {task}", total=metaprogram["train.epochs"], status="")

        def advance(state) -> None:
            last = state.curve[-1]
            progress.update(bar, completed=state.epoch + 1, status=f"val score {last.get('val_score', float('nan')):.4f}")

        env.executor = InProcessExecutor(device=device, hooks=[LambdaHook(advance)])
        env.reset(seed=seed, options={"task": task})
        _, reward, _, _, info = env.step(env.to_action(metaprogram))
    env.close()
    table = Table(title=f"{env_id} on {task}: {info['status']}")
    table.add_column("metric")
    table.add_column("validation", justify="right")
    table.add_column("test", justify="right")
    for name, value in info["metrics"].items():
        table.add_row(name, f"{value:.4f}", f"{info['test_metrics'].get(name, float('nan')):.4f}")
    table.add_row("seconds", f"{info['cost'].seconds:.2f}", "")
    console.print(table)
    if info["error"]:
        console.print(f"[red]{info['error']}[/]")
        raise typer.Exit(code=1)
    console.print(f"learning curve: {plot_curve(info['curve'], plot, title=f'{env_id} {task}')}")


@app.command()
def rollout(
    env_id: Annotated[str, typer.Argument(help="env id, e.g. researchgym/Digits-v0")],
    episodes: Annotated[int, typer.Option(min=1, help="campaigns to run")] = 1,
    steps: Annotated[int, typer.Option(min=1, help="experiments per campaign (the env's budget)")] = 10,
    seed: Annotated[int, typer.Option(help="seed of the first campaign and of the agent")] = 0,
    fixed: Annotated[list[str] | None, typer.Option("--set", help="pin a setting for every step, e.g. --set train.epochs=10")] = None,
    plot: Annotated[Path | None, typer.Option(help="save the best-so-far curve of the last campaign as PNG")] = None,
    store: StoreOption = None,
) -> None:
    """Run a random agent for N campaigns and show what it found."""
    env = _make_env(env_id, store=_store_arg(store), budget=steps, agent="random")
    schema = env.unwrapped.schema
    try:
        pinned = schema.parse_overrides(fixed or [])
        schema.validate(pinned)
    except SettingError as exc:
        _fail(str(exc))
    env.action_space.seed(seed)
    results: list[dict[str, Any]] = []
    with _progress() as progress:
        bar = progress.add_task("experiments", total=episodes * steps, status="")
        for episode in range(episodes):
            env.reset(seed=seed + episode)
            for step in range(steps):
                settings = env.unwrapped.schema.from_space(env.action_space.sample()) | pinned
                _, reward, terminated, truncated, info = env.step(env.unwrapped.to_action(settings))
                results.append({"episode": episode, "step": step, "reward": reward, **info})
                best = info["best_score"]
                progress.update(bar, advance=1, status=f"best {best:.4f}" if best is not None else "")
                if terminated or truncated:
                    break
    env.close()

    table = Table(title=f"random agent on {env_id}")
    for column in ("ep", "step", "task", "status", "val score", "test score", "seconds", "settings"):
        table.add_column(column, overflow="fold")
    for r in results:
        score = r["metrics"].get("score")
        test = r["test_metrics"].get("score")
        brief = {k: v for k, v in (r["metaprogram"] or {}).items() if k in ("model.family", "optim.name", "optim.lr", "model.width", "train.epochs")}
        table.add_row(
            str(r["episode"]), str(r["step"]), r["task"], r["status"],
            "-" if score is None else f"{score:.4f}", "-" if test is None else f"{test:.4f}",
            f"{r['cost'].seconds:.2f}", json.dumps(brief, default=str),
        )
    console.print(table)
    finished = [r for r in results if r["metrics"]]
    if finished:
        best = max(finished, key=lambda r: r["metrics"]["score"])
        console.print(
            f"[bold green]best found[/] on {best['task']}: validation score "
            f"{best['metrics']['score']:.4f} (test {best['test_metrics']['score']:.4f}) with"
        )
        console.print_json(json.dumps(best["metaprogram"], default=str))
    if plot is not None:
        from researchgym.plotting import plot_campaign

        last = [r["metrics"].get("score") for r in results if r["episode"] == episodes - 1]
        console.print(f"campaign plot: {plot_campaign(last, plot, title=f'random agent on {env_id}')}")


def _register_subcommands() -> None:
    from researchgym.store.cli import register

    register(app)


try:
    _register_subcommands()
except ModuleNotFoundError:  # TEMP until store cli exists
    pass

if __name__ == "__main__":
    app()
