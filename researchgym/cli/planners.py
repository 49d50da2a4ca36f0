"""Planner commands: ``rollout``, ``train``, ``train-planner`` and ``generation-loop``."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from researchgym.cli.common import (
    EnvArgsOption,
    StoreOption,
    env_options,
    key_settings,
    make_env,
    parse_key_values,
    unknown_env,
)
from researchgym.errors import ConfigError, DependencyNotInstalled
from researchgym.planning import (
    PlannerError,
    best_per_task,
    make_planner,
    make_trainer,
    planner_names,
)
from researchgym.planning import rollout as rollout_campaigns
from researchgym.spaces import SettingError
from researchgym.store import store_option
from researchgym.terminal import console, fail, print_table, progress_bar

#: The trainer protocol's arguments and the ``train`` options that give them.
_TRAINER_FLAGS = {
    "total_timesteps": "--timesteps",
    "save_path": "--out",
    "seed": "--seed",
    "fixed": "--set",
    "store": "--store",
    "budget": "--steps",
    "n_envs": "--n-envs",
    "progress": "the progress bar",
}


#: The env arguments ``rollout`` sets itself and what to do instead of ``--env-arg``.
_ROLLOUT_ENV_FLAGS = {
    "store": "pass --store instead",
    "budget": "pass --steps instead",
    "interface": "the planner sets it (the observations it reads)",
    "agent": "steps are recorded under the planner's name (--agent)",
}


def _trainer_option(**kwargs: Any) -> Any:
    """A ``typer.Option`` whose default, when not given, is the trainer's own."""
    kwargs["help"] += " (default: the trainer's)"
    return typer.Option(show_default=False, **kwargs)


def _env_id_of(positional: str | None, option: str | None) -> str:
    if positional and option and positional != option:
        fail(f"two env ids given ({positional!r} and --env {option!r}); give one")
    env_id = option or positional
    if not env_id:
        fail("no env given; pass --env ID (run `researchgym envs` to list them)")
    return env_id


def rollout(
    env_arg: Annotated[
        str | None, typer.Argument(help="env id (same as --env)", show_default=False)
    ] = None,
    env_id: Annotated[
        str | None, typer.Option("--env", help="env id, e.g. researchgym/Tabular-v0")
    ] = None,
    agent: Annotated[str, typer.Option(help=f"planner: {', '.join(planner_names())}")] = "random",
    episodes: Annotated[int, typer.Option(min=1, help="campaigns to run")] = 1,
    steps: Annotated[
        int | None, typer.Option(min=1, help="experiments per campaign (default: the env's budget)")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the first campaign and of the agent")] = 0,
    fixed: Annotated[
        list[str] | None,
        typer.Option("--set", help="pin a setting for every step, e.g. --set train.epochs=10"),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option(
            help=f"trained policy of a learned planner ({', '.join(planner_names(trainable=True))})"
        ),
    ] = None,
    agent_args: Annotated[
        list[str] | None,
        typer.Option(
            "--agent-arg", help="planner option as key=value, e.g. --agent-arg n_startup_trials=3"
        ),
    ] = None,
    env_args: EnvArgsOption = None,
    batch: Annotated[
        int,
        typer.Option(
            min=1,
            help="proposals trained together per round, as one batched job (planners that "
            "propose several at once: random, sobol, grid and the Optuna ones)",
        ),
    ] = 1,
    plot: Annotated[
        Path | None, typer.Option(help="save the best-so-far curve of the last campaign as PNG")
    ] = None,
    store: StoreOption = None,
) -> None:
    """Run a planner for N campaigns, recording every step under its name, and show what it found."""
    import gymnasium as gym

    env_id = _env_id_of(env_arg, env_id)
    env_kwargs = env_options(env_id, env_args, _ROLLOUT_ENV_FLAGS)
    kwargs = parse_key_values(agent_args, "--agent-arg")
    if policy is not None:
        kwargs["policy"] = policy
    try:
        planner = make_planner(agent, **kwargs)
    except (PlannerError, DependencyNotInstalled, SettingError) as exc:
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
                store=store_option(store), env_kwargs=env_kwargs, callback=advance, batch=batch,
            )  # fmt: skip
        except gym.error.Error as exc:
            raise unknown_env(exc) from None
        except (ConfigError, SettingError) as exc:
            fail(str(exc))

    steps_done = [s for campaign in results for s in campaign.steps]
    columns = ("ep", "step", "task", "status", "val score", "test score", "seconds", "key settings")
    failed = any(s.info.get("error") for s in steps_done)
    print_table(
        columns + ("error",) if failed else columns,
        [
            (
                s.episode,
                s.step,
                s.task,
                s.status if _nearest(s) is None else f"{s.status} (nearest)",
                "-" if s.score is None else f"{s.score:.4f}",
                "-" if s.test_score is None else f"{s.test_score:.4f}",
                f"{s.seconds:.2f}",
                key_settings(_nearest(s) or s.metaprogram),
            )
            + ((_short_error(s.info.get("error")),) if failed else ())
            for s in steps_done
        ],
        title=f"{planner.name} on {env_id}",
        numeric=("ep", "step", "val score", "test score", "seconds"),
    )
    for task, best in best_per_task(results).items():  # scores of two tasks do not compare
        test = "-" if best.test_score is None else f"{best.test_score:.4f}"
        ran = _nearest(best)
        answered = "" if ran is None else ", by the nearest recorded run"
        console.print(
            f"[bold green]best found[/] on {escape(task)}: validation score {best.score:.4f} "
            f"(test {test}, ep {best.episode} step {best.step}{answered}) with "
            f"{escape(json.dumps(ran or best.metaprogram, default=str))}",
            soft_wrap=True,
        )
    if plot is not None:
        from researchgym.plotting import plot_campaign

        last = [s.score for s in results[-1].steps]
        console.print(
            f"campaign plot: {plot_campaign(last, plot, title=f'{planner.name} on {env_id}')}"
        )


def train_command(
    agent: Annotated[
        str,
        typer.Option(help=f"learned planner to train: {', '.join(planner_names(trainable=True))}"),
    ],
    env_id: Annotated[
        str,
        typer.Option(
            "--env", help="env id, e.g. researchgym/Tabular-v0 (tasks drawn from its suite)"
        ),
    ],
    timesteps: Annotated[
        int | None,
        _trainer_option(
            min=1,
            help="env steps (experiments) to train for; for the transformer planner, optimizer "
            "steps over stored runs",
        ),
    ] = None,
    n_envs: Annotated[
        int, typer.Option(min=1, help="envs stepped together (a vectorized env)")
    ] = 1,
    steps: Annotated[
        int | None,
        typer.Option(min=1, help="experiments per training campaign (default: the env's budget)"),
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the envs and the policy")] = 0,
    fixed: Annotated[
        list[str] | None,
        typer.Option("--set", help="pin a setting in every action, e.g. --set train.epochs=5"),
    ] = None,
    out: Annotated[Path | None, _trainer_option(help="where to save the policy")] = None,
    agent_args: Annotated[
        list[str] | None,
        typer.Option(
            "--agent-arg", help="trainer option as key=value, e.g. --agent-arg learning_rate=0.001"
        ),
    ] = None,
    store: StoreOption = None,
) -> None:
    """Train a learned planner's policy across an env's tasks and save it for `rollout --policy`."""
    try:
        trainer = make_trainer(agent)
    except PlannerError as exc:
        fail(str(exc))
    env = make_env(env_id, store=False)
    try:
        pinned = env.unwrapped.schema.parse_overrides(fixed or [])
        env.unwrapped.schema.validate(pinned)
    except SettingError as exc:
        fail(str(exc))
    finally:
        env.close()
    extra = parse_key_values(agent_args, "--agent-arg")
    if taken := [name for name in extra if name in _TRAINER_FLAGS]:
        fail(f"--agent-arg {taken[0]} is given by {_TRAINER_FLAGS[taken[0]]}; use that option")
    options = {
        "seed": seed, "fixed": pinned, "store": store_option(store), "budget": steps,
        "n_envs": n_envs,
    }  # fmt: skip
    given = {"total_timesteps": timesteps, "save_path": out}
    options |= {name: value for name, value in given.items() if value is not None}
    total = timesteps or inspect.signature(trainer).parameters["total_timesteps"].default
    with progress_bar() as progress:
        bar = progress.add_task(f"training {agent} on {env_id}", total=total, status="")
        try:
            path = trainer(
                env_id, **options, **extra,
                progress=lambda done: progress.update(bar, completed=done, status=f"{done} steps"),
            )  # fmt: skip
        except (PlannerError, SettingError) as exc:
            fail(str(exc))
    console.print(f"[bold green]saved[/] {agent} policy to {path}")
    console.print(f"run it: researchgym rollout --agent {agent} --env {env_id} --policy {path}")


def _nearest(step: Any) -> dict[str, Any] | None:
    """The metaprogram that ran when a nearest recorded run answered ``step`` (else ``None``)."""
    answered = step.info.get("answered_by")
    return answered["metaprogram"] if answered and answered["match"] == "nearest" else None


def _short_error(error: str | None, limit: int = 160) -> str:
    """An error message cut to ``limit`` characters for a table cell (empty for none)."""
    if not error:
        return ""
    return error if len(error) <= limit else f"{error[: limit - 3]}..."


def train_planner_command(
    env: Annotated[
        str, typer.Option("--env", help="env whose stored runs to learn from")
    ] = "researchgym/Tabular-v0",
    store: Annotated[
        list[Path] | None,
        typer.Option(
            help="store of runs to learn from, repeatable (default: the shipped reference runs)"
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="checkpoint directory (default: the trainer's)")
    ] = None,
    timesteps: Annotated[int | None, _trainer_option(min=1, help="optimizer steps")] = None,
    batch_size: Annotated[
        int | None, _trainer_option(min=1, help="pseudo-campaigns per step")
    ] = None,
    lr: Annotated[float | None, _trainer_option(help="peak learning rate")] = None,
    campaign_len: Annotated[
        int | None, _trainer_option(min=1, help="most steps per pseudo-campaign")
    ] = None,
    n_layer: Annotated[int | None, _trainer_option(min=1, help="transformer layers")] = None,
    n_head: Annotated[int | None, _trainer_option(min=1, help="attention heads")] = None,
    n_embd: Annotated[int | None, _trainer_option(min=8, help="width")] = None,
    task: Annotated[
        list[str] | None, typer.Option(help="train only on these tasks (repeatable)")
    ] = None,
    exclude_task: Annotated[
        list[str] | None, typer.Option(help="hold these tasks out (repeatable)")
    ] = None,
    agent: Annotated[
        str | None,
        typer.Option(help=f"only runs of this agent, e.g. one of {', '.join(planner_names())}"),
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the model and the data draws")] = 0,
    device: Annotated[str | None, _trainer_option(help="torch device")] = None,
) -> None:
    """Train the transformer planner from scratch on serialized campaigns; save a checkpoint and a loss curve."""
    try:
        trainer = make_trainer("transformer")
    except PlannerError as exc:
        fail(str(exc))
    given = {
        "total_timesteps": timesteps, "save_path": out, "batch_size": batch_size, "lr": lr,
        "campaign_len": campaign_len, "n_layer": n_layer, "n_head": n_head, "n_embd": n_embd,
        "device": device,
    }  # fmt: skip
    options = {name: value for name, value in given.items() if value is not None}
    total = timesteps or inspect.signature(trainer).parameters["total_timesteps"].default
    with progress_bar() as progress:
        bar = progress.add_task(f"training on {env}", total=total, status="")
        try:
            path = trainer(
                env, **options, seed=seed, data=[str(s) for s in store] if store else None,
                progress=lambda done: progress.update(bar, completed=done, status=f"{done} steps"),
                agent=agent, tasks=task, exclude_tasks=list(exclude_task or []),
            )  # fmt: skip
        except (PlannerError, ValueError, FileNotFoundError) as exc:
            fail(str(exc))
    console.print(
        f"[bold green]saved[/] transformer planner to {path} (loss curve: {path / 'loss.png'})"
    )
    console.print(f"run it: researchgym rollout --agent transformer --policy {path} --env {env}")


def generation_loop_command(
    env: Annotated[
        str,
        typer.Option(
            "--env", help="env with held-out tasks whose training tasks the planner works on"
        ),
    ] = "researchgym/Synthetic-v0",
    rounds: Annotated[
        int, typer.Option(min=1, help="rounds of train -> held-out evaluation -> new campaigns")
    ] = 3,
    campaigns: Annotated[
        int, typer.Option(min=0, help="new campaigns per round (real training)")
    ] = 24,
    steps: Annotated[int, typer.Option(min=1, help="experiments per campaign")] = 20,
    timesteps: Annotated[int, typer.Option(min=1, help="optimizer steps of round 0")] = 800,
    later_timesteps: Annotated[
        int | None, typer.Option(min=1, help="optimizer steps of later rounds (default: half)")
    ] = None,
    eval_seeds: Annotated[
        int, typer.Option(min=1, help="held-out campaigns per task and round")
    ] = 10,
    n_candidates: Annotated[
        int, typer.Option(min=1, help="proposals decoded per step, best predicted kept")
    ] = 8,
    fixed: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="pin a setting in every experiment (default: what the starting runs pinned)",
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="starting runs and held-out replay data (default: the shipped reference runs)"
        ),
    ] = None,
    store: Annotated[Path, typer.Option(help="store the new campaigns are recorded in")] = Path(
        "runs/generation_loop/store"
    ),
    out: Annotated[Path, typer.Option(help="checkpoints, rounds.json and rounds.png")] = Path(
        "runs/generation_loop"
    ),
    n_layer: Annotated[int, typer.Option(min=1, help="transformer layers")] = 2,
    n_embd: Annotated[int, typer.Option(min=8, help="width")] = 64,
    seed: Annotated[int, typer.Option(help="seed of training and campaigns")] = 0,
) -> None:
    """Train the planner, measure it on held-out tasks, let it run new campaigns, retrain on them; K rounds."""
    import gymnasium as gym

    from researchgym.envs.suites import suite_of
    from researchgym.generation_loop import generation_loop

    try:
        schema = suite_of(env).make_schema()
        pins = schema.parse_overrides(fixed) if fixed else None
        reports = generation_loop(
            env,
            out=out,
            store=store,
            data=data,
            rounds=rounds,
            campaigns=campaigns,
            budget=steps,
            steps=timesteps,
            later_steps=later_timesteps,
            eval_seeds=eval_seeds,
            fixed=pins,
            n_candidates=n_candidates,
            seed=seed,
            train_options={"n_layer": n_layer, "n_embd": n_embd},
            log=lambda line: console.print(line),
        )
    except (PlannerError, SettingError, ValueError, FileNotFoundError, gym.error.Error) as exc:
        fail(str(exc))
    columns = (
        "round",
        "training runs",
        "train s",
        "median regret",
        "IQR",
        "new runs",
        "mean best (new campaigns)",
    )
    print_table(
        columns,
        [
            (
                r.round,
                r.training_runs,
                f"{r.train_seconds:.0f}",
                f"{r.held_out_median_regret:.4f}",
                f"{r.held_out_q25:.4f}-{r.held_out_q75:.4f}",
                r.new_runs,
                "-" if r.campaign_best_mean is None else f"{r.campaign_best_mean:.4f}",
            )
            for r in reports
        ],
        title=f"generation loop on {env}: held-out normalized regret per round",
        numeric=columns,
    )
    console.print(f"wrote {out / 'rounds.json'} and {out / 'rounds.png'}")


def register(app: typer.Typer) -> None:
    """Add the planner commands to ``app``."""
    app.command("rollout")(rollout)
    app.command("train")(train_command)
    app.command("train-planner")(train_planner_command)
    app.command("generation-loop")(generation_loop_command)
