"""``researchgym train-planner``: train the transformer planner on stored runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from researchgym.terminal import console, fail, progress_bar


def train_planner_command(
    env: Annotated[str, typer.Option("--env", help="env whose stored runs to learn from")] = "researchgym/Tabular-v0",
    store: Annotated[Path | None, typer.Option(help="store of runs (default: the shipped reference runs)")] = None,
    out: Annotated[Path, typer.Option(help="checkpoint directory")] = Path("runs/transformer_planner"),
    steps: Annotated[int, typer.Option(min=1, help="optimizer steps")] = 2000,
    batch_size: Annotated[int, typer.Option(min=1, help="pseudo-campaigns per step")] = 16,
    lr: Annotated[float, typer.Option(help="peak learning rate")] = 1e-3,
    campaign_len: Annotated[int, typer.Option(min=1, help="most steps per pseudo-campaign")] = 16,
    n_layer: Annotated[int, typer.Option(min=1, help="transformer layers")] = 4,
    n_head: Annotated[int, typer.Option(min=1, help="attention heads")] = 4,
    n_embd: Annotated[int, typer.Option(min=8, help="width")] = 128,
    task: Annotated[list[str] | None, typer.Option(help="train only on these tasks (repeatable)")] = None,
    exclude_task: Annotated[list[str] | None, typer.Option(help="hold these tasks out (repeatable)")] = None,
    agent: Annotated[str | None, typer.Option(help="only runs of this agent")] = None,
    seed: Annotated[int, typer.Option(help="seed of the model and the data draws")] = 0,
    device: Annotated[str, typer.Option(help="torch device")] = "cpu",
) -> None:
    """Train the transformer planner from scratch on serialized campaigns; save a checkpoint and a loss curve."""
    try:
        from agents.transformer_planner import TrainConfig, train_planner
    except ModuleNotFoundError as exc:
        fail(f"{exc.name} is not installed; `pip install 'researchgym[transformers]'`")
    from researchgym.planners import PlannerError

    config = TrainConfig(
        env_id=env, store=None if store is None else str(store), agent=agent, tasks=task,
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


def register(app: typer.Typer) -> None:
    """Add ``train-planner`` to ``app``."""
    app.command("train-planner")(train_planner_command)
