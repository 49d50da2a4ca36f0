"""The ``researchgym`` command line, one module per group of commands."""

from __future__ import annotations

import typer

from researchgym.cli import datasets, envs, leaderboard, planners, store

app = typer.Typer(
    help="ResearchGym: machine-learning research as a Gymnasium environment.",
    no_args_is_help=True,
)

for group in (envs, planners, datasets, store, leaderboard):
    group.register(app)

__all__ = ["app"]
