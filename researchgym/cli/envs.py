"""``researchgym envs`` and ``run``: the registered envs and one metaprogram trained."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import gymnasium as gym
import typer

import researchgym
from researchgym.cli.common import (
    CompileOption,
    DeterministicOption,
    EnvArgsOption,
    PrecisionOption,
    StoreOption,
    env_options,
    make_env,
    runtime_option,
)
from researchgym.errors import ConfigError
from researchgym.spaces import SettingError
from researchgym.store import store_option
from researchgym.terminal import console, fail, print_table, progress_bar


def envs(
    schema: Annotated[str | None, typer.Option(help="show the settings of this env id")] = None,
) -> None:
    """List registered envs with their tasks and spaces."""
    from researchgym.envs import FAST_ENV_IDS, FILE_ENV_IDS, env_description, get_suite

    if schema is not None:
        env = make_env(schema, store=False).unwrapped
        print_table(
            ("setting", "allowed", "default", "active when"),
            [
                (
                    s.name,
                    s.describe(),
                    repr(s.default),
                    ", ".join(f"{k} in {list(v)}" for k, v in s.when.items()),
                )
                for s in env.schema
            ],
            title=f"settings of {schema}",
        )
        return
    rows: list[tuple[object, ...]] = []
    for env_id in (*researchgym.ENV_IDS, *FILE_ENV_IDS, *FAST_ENV_IDS):
        kwargs = gym.spec(env_id).kwargs
        if "suite" in kwargs:
            suite = get_suite(kwargs["suite"])
            tasks, settings = ", ".join(suite.tasks), len(suite.make_schema())
            rows.append((env_id, tasks, settings, env_description(env_id)))
        else:  # Replay-v0 and Surrogate-v0 answer for the env named by source=
            rows.append((env_id, "of source=", "of source=", env_description(env_id)))
    print_table(
        ("id", "tasks", "settings", "description"),
        rows,
        title="ResearchGym environments",
        caption="interfaces: dict (gymnasium Dict), flat (Box in [-1, 1]), text (JSON)",
        numeric=("settings",),
    )


#: The env arguments ``run`` sets itself and what to do instead of ``--env-arg``.
_RUN_ENV_FLAGS = {
    "store": "pass --store instead",
    "device": "pass --device instead",
    "runtime": "pass --precision, --compile or --deterministic instead",
    "budget": "run trains one metaprogram",
    "agent": "run records its step under the name cli-run",
}


def run(
    env_id: Annotated[str, typer.Argument(help="env id, e.g. researchgym/Digits-v0")],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="settings as name=value, e.g. optim.lr=0.01")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML file of settings")
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(help="one of the env's tasks or held-out tasks (default: its first task)"),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="seed of the episode; the training seed is drawn from it")
    ] = 0,
    plot: Annotated[Path, typer.Option(help="where to save the learning curve PNG")] = Path(
        "runs/curve.png"
    ),
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, ...")] = "auto",
    precision: PrecisionOption = "fp32",
    compiled: CompileOption = False,
    deterministic: DeterministicOption = False,
    env_args: EnvArgsOption = None,
    store: StoreOption = None,
) -> None:
    """Train one metaprogram (YAML + overrides) with a progress bar and plot its curve."""
    from researchgym.engine import InProcessExecutor, LambdaHook
    from researchgym.plotting import plot_curve

    env_kwargs = env_options(env_id, env_args, _RUN_ENV_FLAGS)
    runtime = runtime_option(precision, compiled, deterministic)
    try:
        env = make_env(
            env_id, store=store_option(store), budget=1, agent="cli-run", device=device,
            runtime=runtime, **env_kwargs,
        ).unwrapped  # fmt: skip
    except ConfigError as exc:
        fail(str(exc))
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
        bar = progress.add_task(
            f"training on {task}", total=metaprogram.get("train.epochs"), status=""
        )

        def advance(state) -> None:
            last = state.curve[-1]
            progress.update(
                bar,
                completed=state.epoch + 1,
                status=f"val score {last.get('val_score', float('nan')):.4f}",
            )

        if isinstance(env.executor, InProcessExecutor):  # replay/surrogate envs train nothing
            env.executor.hooks.append(LambdaHook(advance))
        *_, info = env.step(env.to_action(metaprogram))
    env.close()
    print_table(
        ("metric", "validation", "test"),
        [
            (name, f"{value:.4f}", f"{info['test_metrics'].get(name, float('nan')):.4f}")
            for name, value in info["metrics"].items()
        ]
        + [("seconds", f"{info['cost']['seconds']:.2f}", "")],
        title=f"{env_id} on {task}: {info['status']}",
        numeric=("validation", "test"),
    )
    if env.last_run_id is not None:
        console.print(f"run_id: {env.last_run_id}", soft_wrap=True, highlight=False)
    if info["error"]:
        console.print(f"[red]{info['error']}[/]")
        raise typer.Exit(code=1)
    console.print(f"learning curve: {plot_curve(info['curve'], plot, title=f'{env_id} {task}')}")


def register(app: typer.Typer) -> None:
    """Add ``envs`` and ``run`` to ``app``."""
    app.command("envs")(envs)
    app.command("run")(run)
