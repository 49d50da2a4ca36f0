"""``researchgym report``: a Markdown, PNG and self-contained HTML summary of a store."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from researchgym.cli.common import StoreOption, existing_store
from researchgym.errors import NotFound
from researchgym.terminal import console, fail


def report(
    store: StoreOption = None,
    out: Annotated[
        Path, typer.Option("--out", help="Folder for report.md, report.html and plots/.")
    ] = Path("report"),
) -> None:
    """Summarize a store: runs per env and agent, best configurations, learning curves."""
    from researchgym.evaluation.store_report import store_report

    s = existing_store(store)
    command = shlex.join(["researchgym", "report", "--store", str(s.path), "--out", str(out)])
    try:
        with console.status(f"summarizing {s.path}"):
            written = store_report(s, out, commands=[command])
    except NotFound as exc:
        fail(str(exc))
    finally:
        s.close()
    for path in (written.markdown, written.html, *written.plots):
        console.print(str(path), highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``report`` to ``app``.

    Args:
        app: The Typer application to extend.
    """
    app.command("report")(report)
