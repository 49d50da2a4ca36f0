"""The ``researchgym`` command line: list envs, run one metaprogram, roll out campaigns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

import researchgym
from researchgym.planning import PlannerError, make_planner, make_trainer, planner_names
from researchgym.planning import rollout as rollout_campaigns
from researchgym.spaces import SettingError
from researchgym.store import store_option
from researchgym.terminal import console, fail, progress_bar

app = typer.Typer(help="ResearchGym: machine-learning research as a Gymnasium environment.", no_args_is_help=True)

StoreOption = Annotated[
    str | None,
    typer.Option("--store", help="store directory (default: $RESEARCHGYM_STORE or ./datasets_store); 'none' records nothing"),
]


def _make_env(env_id: str, **kwargs: Any):
    import gymnasium as gym

    try:
        return gym.make(env_id, disable_env_checker=True, **kwargs)
    except gym.error.Error as exc:
        raise _unknown_env(exc) from None


def _unknown_env(exc: Exception) -> typer.BadParameter:
    return typer.BadParameter(f"{exc}; run `researchgym envs` to list the envs")


@app.command()
def envs(
    schema: Annotated[str | None, typer.Option(help="show the settings of this env id")] = None,
) -> None:
    """List registered envs with their tasks and spaces."""
    from gymnasium.envs.registration import registry

    from researchgym.envs import get_suite

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

    env = _make_env(env_id, store=store_option(store), budget=1, agent="cli-run", device=device).unwrapped
    try:
        values = env.schema.load_yaml(config) if config else {}
        values |= env.schema.parse_overrides(overrides or [])
        metaprogram = env.schema.validate(values)
    except SettingError as exc:
        fail(str(exc))
    task = task or env.tasks[0]
    try:
        env.reset(seed=seed, options={"task": task})
    except ValueError as exc:
        fail(str(exc))
    with progress_bar() as progress:
        bar = progress.add_task(f"training on {task}", total=metaprogram.get("train.epochs"), status="")

        def advance(state) -> None:
            last = state.curve[-1]
            progress.update(bar, completed=state.epoch + 1, status=f"val score {last.get('val_score', float('nan')):.4f}")

        if isinstance(env.executor, InProcessExecutor):  # replay/surrogate envs train nothing
            env.executor.hooks.append(LambdaHook(advance))
        *_, info = env.step(env.to_action(metaprogram))
    env.close()
    table = Table(title=f"{env_id} on {task}: {info['status']}")
    table.add_column("metric")
    table.add_column("validation", justify="right")
    table.add_column("test", justify="right")
    for name, value in info["metrics"].items():
        table.add_row(name, f"{value:.4f}", f"{info['test_metrics'].get(name, float('nan')):.4f}")
    table.add_row("seconds", f"{info['cost']['seconds']:.2f}", "")
    console.print(table)
    if info["error"]:
        console.print(f"[red]{info['error']}[/]")
        raise typer.Exit(code=1)
    console.print(f"learning curve: {plot_curve(info['curve'], plot, title=f'{env_id} {task}')}")


def _parse_agent_args(items: list[str] | None) -> dict[str, Any]:
    """``key=value`` planner/trainer options; values read as YAML (numbers, booleans, lists)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key.isidentifier():
            fail(f"--agent-arg {item!r} is not of the form key=value, e.g. --agent-arg levels=4")
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            out[key] = raw
    return out


def _env_id_of(positional: str | None, option: str | None) -> str:
    if positional and option and positional != option:
        fail(f"two env ids given ({positional!r} and --env {option!r}); give one")
    env_id = option or positional
    if not env_id:
        fail("no env given; pass --env ID (run `researchgym envs` to list them)")
    return env_id


@app.command()
def rollout(
    env_arg: Annotated[str | None, typer.Argument(help="env id (same as --env)", show_default=False)] = None,
    env_id: Annotated[str | None, typer.Option("--env", help="env id, e.g. researchgym/Tabular-v0")] = None,
    agent: Annotated[str, typer.Option(help=f"planner: {', '.join(planner_names())}")] = "random",
    episodes: Annotated[int, typer.Option(min=1, help="campaigns to run")] = 1,
    steps: Annotated[int | None, typer.Option(min=1, help="experiments per campaign (default: the env's budget)")] = None,
    seed: Annotated[int, typer.Option(help="seed of the first campaign and of the agent")] = 0,
    fixed: Annotated[list[str] | None, typer.Option("--set", help="pin a setting for every step, e.g. --set train.epochs=10")] = None,
    policy: Annotated[Path | None, typer.Option(help=f"trained policy of a learned planner ({', '.join(planner_names(trainable=True))})")] = None,
    agent_args: Annotated[list[str] | None, typer.Option("--agent-arg", help="planner option as key=value, e.g. --agent-arg n_startup_trials=3")] = None,
    plot: Annotated[Path | None, typer.Option(help="save the best-so-far curve of the last campaign as PNG")] = None,
    store: StoreOption = None,
) -> None:
    """Run a planner for N campaigns, recording every step under its name, and show what it found."""
    import gymnasium as gym

    env_id = _env_id_of(env_arg, env_id)
    kwargs = _parse_agent_args(agent_args)
    if policy is not None:
        kwargs["policy"] = policy
    try:
        planner = make_planner(agent, **kwargs)
    except (PlannerError, SettingError, TypeError) as exc:
        fail(str(exc))
    with progress_bar() as progress:
        bar = progress.add_task(f"{planner.name} on {env_id}", total=None, status="")

        def advance(record) -> None:
            best = record.info["best_score"]
            progress.update(
                bar, total=episodes * record.budget, advance=1,
                status=f"best {best:.4f}" if best is not None else record.status,
            )  # fmt: skip

        try:
            results = rollout_campaigns(
                planner, env_id, episodes=episodes, seed=seed, fixed=fixed or [], budget=steps,
                store=store_option(store), callback=advance,
            )  # fmt: skip
        except gym.error.Error as exc:
            raise _unknown_env(exc) from None
        except (PlannerError, SettingError) as exc:
            fail(str(exc))

    table = Table(title=f"{planner.name} on {env_id}")
    for column in ("ep", "step", "task", "status", "val score", "test score", "seconds", "key settings"):
        table.add_column(column, overflow="fold")
    steps_done = [s for campaign in results for s in campaign.steps]
    for s in steps_done:
        table.add_row(
            str(s.episode), str(s.step), s.task, s.status,
            "-" if s.score is None else f"{s.score:.4f}", "-" if s.test_score is None else f"{s.test_score:.4f}",
            f"{s.seconds:.2f}", _key_settings(s.metaprogram),
        )
    console.print(table)
    scored = [s for s in steps_done if s.score is not None]
    if scored:
        best = max(scored, key=lambda s: s.score)
        test = "-" if best.test_score is None else f"{best.test_score:.4f}"
        console.print(f"[bold green]best found[/] on {best.task}: validation score {best.score:.4f} (test {test}) with")
        console.print_json(json.dumps(best.metaprogram, default=str))
    if plot is not None:
        from researchgym.plotting import plot_campaign

        last = [s.score for s in results[-1].steps]
        console.print(f"campaign plot: {plot_campaign(last, plot, title=f'{planner.name} on {env_id}')}")


@app.command("train")
def train_command(
    agent: Annotated[str, typer.Option(help=f"learned planner to train: {', '.join(planner_names(trainable=True))}")],
    env_id: Annotated[str, typer.Option("--env", help="env id, e.g. researchgym/Tabular-v0 (tasks drawn from its suite)")],
    timesteps: Annotated[int, typer.Option(min=1, help="env steps (experiments) to train for; for the transformer planner, optimizer steps over stored runs")] = 2048,
    n_envs: Annotated[int, typer.Option(min=1, help="envs stepped together (a vectorized env)")] = 1,
    steps: Annotated[int | None, typer.Option(min=1, help="experiments per training campaign (default: the env's budget)")] = None,
    seed: Annotated[int, typer.Option(help="seed of the envs and the policy")] = 0,
    fixed: Annotated[list[str] | None, typer.Option("--set", help="pin a setting in every action, e.g. --set train.epochs=5")] = None,
    out: Annotated[Path | None, typer.Option(help="where to save the policy (default: runs/<agent>)")] = None,
    agent_args: Annotated[list[str] | None, typer.Option("--agent-arg", help="trainer option as key=value, e.g. --agent-arg learning_rate=0.001")] = None,
    store: StoreOption = None,
) -> None:
    """Train a learned planner's policy across an env's tasks and save it for `rollout --policy`."""
    try:
        trainer = make_trainer(agent)
    except PlannerError as exc:
        fail(str(exc))
    env = _make_env(env_id, store=False)
    try:
        pinned = env.unwrapped.schema.parse_overrides(fixed or [])
        env.unwrapped.schema.validate(pinned)
    except SettingError as exc:
        fail(str(exc))
    finally:
        env.close()
    save_path = out or Path("runs") / agent.replace("-", "_")
    with progress_bar() as progress:
        bar = progress.add_task(f"training {agent} on {env_id}", total=timesteps, status="")
        try:
            path = trainer(
                env_id,
                total_timesteps=timesteps,
                seed=seed,
                fixed=pinned,
                save_path=save_path,
                store=store_option(store),
                budget=steps,
                n_envs=n_envs,
                progress=lambda done: progress.update(bar, completed=min(done, timesteps), status=f"{done} steps"),
                **_parse_agent_args(agent_args),
            )
        except (PlannerError, SettingError, TypeError) as exc:
            fail(str(exc))
    console.print(f"[bold green]saved[/] {agent} policy to {path}")
    console.print(f"run it: researchgym rollout --agent {agent} --env {env_id} --policy {path}")


def _key_settings(metaprogram: dict[str, Any] | None) -> str:
    """A short summary of a metaprogram for tables: family, optimizer, lr, width, epochs."""
    if not metaprogram:
        return "-"
    parts = [str(metaprogram[k]) for k in ("model.family", "optim.name") if k in metaprogram]
    if "optim.lr" in metaprogram:
        parts.append(f"lr={metaprogram['optim.lr']:.2g}")
    for key, label in (("model.width", "w"), ("arch.width", "w"), ("train.epochs", "ep")):
        if key in metaprogram:
            parts.append(f"{label}={metaprogram[key]}")
    return " ".join(parts)


def _register_subcommands() -> None:
    from researchgym import datasets_cli, planner_cli
    from researchgym.store import cli as store_cli

    store_cli.register(app)
    datasets_cli.register(app)
    planner_cli.register(app)


_register_subcommands()

if __name__ == "__main__":
    app()
