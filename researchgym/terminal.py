"""What every ``researchgym`` command prints with: one console, tables, errors, progress bars.

Tables go through :func:`print_table`, the one place that decides how they look:

* on a terminal, a rich table whose cells wrap between words only, so that
  no identifier (env, run and campaign ids, task and setting names) is ever
  cut or wrapped; when that cannot fit the terminal's width, one record per
  row instead (``column  value`` lines, as ``psql``'s ``\\x`` mode);
* anywhere else (a pipe, a file), plain text as the DuckDB and git command
  lines print it: a header and one line per row, tab-separated, with no box
  characters, colours or cut values; the title and the caption go to stderr,
  so that stdout holds the data only. Other lines are not broken at a width
  there, and progress bars are not shown.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Iterable, Sequence
from typing import NoReturn, TextIO

import typer
from rich import box
from rich.cells import cell_len
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
from rich.table import Table
from rich.text import Text

__all__ = ["console", "fail", "print_table", "progress_bar"]

console = Console()
console.soft_wrap = not console.is_terminal  # lines for a pipe or a file are not broken at 80


def fail(message: str) -> NoReturn:
    """Print ``message`` as an error (literally: brackets are not markup) and exit with code 2."""
    console.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code=2)


def progress_bar() -> Progress:
    """A bar with done/total, a free-text ``status`` field, elapsed time and ETA.

    Add tasks with ``status=""`` and update the field with ``status=...``. Shown
    on a terminal only.
    """
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )


def print_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    title: str | None = None,
    caption: str | None = None,
    numeric: Collection[str] = (),
    file: TextIO | None = None,
) -> None:
    """Print a table: rich on a terminal, tab-separated plain text otherwise.

    Args:
        columns: the column names.
        rows: one sequence of cells per row (``None`` prints as an empty cell,
            anything else as ``str``; text is printed literally, never as markup).
        title: a line above the table (on stderr when not on a terminal).
        caption: a line below the table (on stderr when not on a terminal).
        numeric: columns aligned right on a terminal.
        file: write plain text to this file instead of stdout.
    """
    cells = [["" if cell is None else str(cell) for cell in row] for row in rows]
    if file is not None or not console.is_terminal:
        _print_plain(columns, cells, title, caption, file or sys.stdout)
        return
    widths = _fit(columns, cells, room=console.width - 2 * (len(columns) - 1))
    if widths is None:
        _print_records(columns, cells, title, caption)
        return
    table = Table(
        title=None if title is None else Text(title),
        caption=None if caption is None else Text(caption),
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    for name, width in zip(columns, widths, strict=True):
        table.add_column(
            Text(name), width=width, justify="right" if name in numeric else "left", overflow="fold"
        )
    for row in cells:
        table.add_row(*(Text(cell) for cell in row))
    console.print(table)


def _fit(columns: Sequence[str], cells: list[list[str]], room: int) -> list[int] | None:
    """Widths of the columns' text within ``room`` characters, or ``None`` when they cannot fit.

    The widest columns narrow first, each down to its longest word: a cell
    wraps between words only, so an identifier is never cut.
    """
    texts = [[name, *(row[i] for row in cells)] for i, name in enumerate(columns)]
    full = [max(_width(text) for text in column) for column in texts]
    least = [
        max(cell_len(word) for text in column for word in text.split() or [""]) for column in texts
    ]
    if sum(least) > room:
        return None
    widths, cap = full, min(max(full), room)
    while sum(widths) > room:
        cap -= 1
        widths = [max(low, min(width, cap)) for width, low in zip(full, least, strict=True)]
    return widths


def _width(text: str) -> int:
    return max((cell_len(line) for line in text.splitlines()), default=0)


def _print_records(
    columns: Sequence[str], cells: list[list[str]], title: str | None, caption: str | None
) -> None:
    """One ``column  value`` line per cell, rows apart; long values are left to the terminal."""
    if title is not None:
        console.print(Text(title, style="bold"), soft_wrap=True)
    name_width = max(cell_len(name) for name in columns)
    for number, row in enumerate(cells, 1):
        console.print(Text(f"-[ RECORD {number} ]-", style="dim"))
        for name, cell in zip(columns, row, strict=True):
            line = Text.assemble((name.ljust(name_width), "bold"), "  ", cell)
            console.print(line, soft_wrap=True)
    if caption is not None:
        console.print(Text(caption, style="dim"), soft_wrap=True)


def _print_plain(
    columns: Sequence[str],
    cells: list[list[str]],
    title: str | None,
    caption: str | None,
    out: TextIO,
) -> None:
    if title is not None:
        sys.stderr.write(title + "\n")
    out.writelines("\t".join(map(_one_line, row)) + "\n" for row in (columns, *cells))
    out.flush()
    if caption is not None:
        sys.stderr.write(caption + "\n")


def _one_line(cell: str) -> str:
    """``cell`` with tabs and line breaks escaped, so each row stays one line of fields."""
    return cell.replace("\t", "\\t").replace("\r", "\\r").replace("\n", "\\n")
