"""``researchgym train-planner`` and ``generation-loop``: the transformer planner on stored runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from researchgym.planning import PlannerError, planner_names
from researchgym.terminal import console, fail, progress_bar


def train_planner_command(
    env: Annotated[str, typer.Option("--env", help="env whose stored runs to learn from")] = "researchgym/Tabular-v0",
    store: Annotated[list[Path] | None, typer.Option(help="store of runs to learn from, repeatable (default: the shipped reference runs)")] = None,
    out: Annotated[Path, typer.Option(help="checkpoint directory")] = Path("runs/transformer_planner"),
    steps: Annotated[int, typer.Option(min=1, help="optimizer steps")] = 1200,
    batch_size: Annotated[int, typer.Option(min=1, help="pseudo-campaigns per step")] = 16,
    lr: Annotated[float, typer.Option(help="peak learning rate")] = 2e-3,
    campaign_len: Annotated[int, typer.Option(min=1, help="most steps per pseudo-campaign")] = 16,
    n_layer: Annotated[int, typer.Option(min=1, help="transformer layers")] = 2,
    n_head: Annotated[int, typer.Option(min=1, help="attention heads")] = 4,
    n_embd: Annotated[int, typer.Option(min=8, help="width")] = 64,
    task: Annotated[list[str] | None, typer.Option(help="train only on these tasks (repeatable)")] = None,
    exclude_task: Annotated[list[str] | None, typer.Option(help="hold these tasks out (repeatable)")] = None,
    agent: Annotated[str | None, typer.Option(help=f"only runs of this agent, e.g. one of {', '.join(planner_names())}")] = None,
    seed: Annotated[int, typer.Option(help="seed of the model and the data draws")] = 0,
    device: Annotated[str, typer.Option(help="torch device")] = "cpu",
) -> None:
    """Train the transformer planner from scratch on serialized campaigns; save a checkpoint and a loss curve."""
    try:
        from agents.transformer_planner import TrainConfig, train_planner
    except ModuleNotFoundError as exc:
        fail(f"{exc.name} is not installed; `pip install 'researchgym[transformers]'`")

    config = TrainConfig(
        env_id=env, stores=[str(s) for s in store or []], agent=agent, tasks=task,
        exclude_tasks=list(exclude_task or []), steps=steps, batch_size=batch_size, lr=lr,
        campaign_len=campaign_len, n_layer=n_layer, n_head=n_head, n_embd=n_embd, seed=seed, device=device,
    )
    with progress_bar() as progress:
        bar = progress.add_task(f"training on {env}", total=steps, status="loss -")
        try:
            path = train_planner(
                config, out=out, progress=lambda done, loss: progress.update(bar, completed=done, status=f"loss {loss:.3f}")
            )
        except (PlannerError, ValueError, FileNotFoundError) as exc:
            fail(str(exc))
    console.print(f"[bold green]saved[/] transformer planner to {path} (loss curve: {path / 'loss.png'})")
    console.print(f"run it: researchgym rollout --agent transformer --policy {path} --env {env}")


def generation_loop_command(
    env: Annotated[str, typer.Option("--env", help="env with held-out tasks whose training tasks the planner works on")] = "researchgym/Synthetic-v0",
    rounds: Annotated[int, typer.Option(min=1, help="rounds of train -> held-out evaluation -> new campaigns")] = 3,
    campaigns: Annotated[int, typer.Option(min=0, help="new campaigns per round (real training)")] = 24,
    budget: Annotated[int, typer.Option(min=1, help="experiments per campaign")] = 20,
    steps: Annotated[int, typer.Option(min=1, help="optimizer steps of round 0")] = 800,
    later_steps: Annotated[int | None, typer.Option(min=1, help="optimizer steps of later rounds (default: half)")] = None,
    eval_seeds: Annotated[int, typer.Option(min=1, help="held-out campaigns per task and round")] = 10,
    n_candidates: Annotated[int, typer.Option(min=1, help="proposals decoded per step, best predicted kept")] = 8,
    fixed: Annotated[list[str] | None, typer.Option("--set", help="pin a setting in every experiment (default: what the starting runs pinned)")] = None,
    data: Annotated[Path | None, typer.Option(help="starting runs and held-out replay data (default: the shipped reference runs)")] = None,
    store: Annotated[Path, typer.Option(help="store the new campaigns are recorded in")] = Path("runs/generation_loop/store"),
    out: Annotated[Path, typer.Option(help="checkpoints, rounds.json and rounds.png")] = Path("runs/generation_loop"),
    n_layer: Annotated[int, typer.Option(min=1, help="transformer layers")] = 2,
    n_embd: Annotated[int, typer.Option(min=8, help="width")] = 64,
    seed: Annotated[int, typer.Option(help="seed of training and campaigns")] = 0,
) -> None:
    """Train the planner, measure it on held-out tasks, let it run new campaigns, retrain on them; K rounds."""
    import gymnasium as gym
    from rich.table import Table

    from researchgym.envs.suites import suite_of
    from researchgym.generation_loop import generation_loop
    from researchgym.spaces import SettingError

    try:
        schema = suite_of(env).make_schema()
        pins = schema.parse_overrides(fixed) if fixed else None
        reports = generation_loop(
            env, out=out, store=store, data=data, rounds=rounds, campaigns=campaigns, budget=budget, steps=steps,
            later_steps=later_steps, eval_seeds=eval_seeds, fixed=pins, n_candidates=n_candidates, seed=seed,
            train_options={"n_layer": n_layer, "n_embd": n_embd}, log=lambda line: console.print(line),
        )
    except (PlannerError, SettingError, ValueError, FileNotFoundError, gym.error.Error) as exc:
        fail(str(exc))
    table = Table(title=f"generation loop on {env}: held-out normalized regret per round")
    for column in ("round", "training runs", "train s", "median regret", "IQR", "new runs", "mean best (new campaigns)"):
        table.add_column(column, justify="right")
    for r in reports:
        best = "-" if r.campaign_best_mean is None else f"{r.campaign_best_mean:.4f}"
        table.add_row(
            str(r.round), str(r.training_runs), f"{r.train_seconds:.0f}", f"{r.held_out_median_regret:.4f}",
            f"{r.held_out_q25:.4f}-{r.held_out_q75:.4f}", str(r.new_runs), best,
        )
    console.print(table)
    console.print(f"wrote {out / 'rounds.json'} and {out / 'rounds.png'}")


def register(app: typer.Typer) -> None:
    """Add ``train-planner`` and ``generation-loop`` to ``app``."""
    app.command("train-planner")(train_planner_command)
    app.command("generation-loop")(generation_loop_command)
