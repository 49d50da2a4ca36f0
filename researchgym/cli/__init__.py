"""The ``researchgym`` command line, one module per group of commands."""

from __future__ import annotations

from typing import Annotated

import typer

from researchgym.cli import datasets, envs, leaderboard, planners, queue, report, store

app = typer.Typer(
    help="ResearchGym: machine-learning research as a Gymnasium environment.",
    no_args_is_help=True,
)


def _print_version(value: bool) -> None:
    if value:
        from researchgym import __version__

        typer.echo(f"researchgym {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """ResearchGym: machine-learning research as a Gymnasium environment."""


for group in (envs, planners, datasets, queue, store, leaderboard, report):
    group.register(app)

__all__ = ["app"]
