"""What every ``researchgym`` command prints with: one console, errors, progress bars."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["console", "fail", "progress_bar"]

console = Console()


def fail(message: str) -> NoReturn:
    """Print ``message`` as an error (literally: brackets are not markup) and exit with code 2."""
    console.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code=2)


def progress_bar() -> Progress:
    """A bar with done/total, a free-text ``status`` field, elapsed time and ETA.

    Add tasks with ``status=""`` and update the field with ``status=...``.
    """
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
