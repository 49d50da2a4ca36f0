"""``print_table``: whole words in a rich table on a terminal, records when too wide, plain text elsewhere."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from researchgym import terminal
from researchgym.terminal import print_table

BOX = set("│┃┏┓┗┛━─┡┩┼╇")
RUN_IDS = ["3611632d8de24a95a905fb86bfd6f89d", "266dc96c2e3344fea45dbb40c46aed15"]


def on_terminal(monkeypatch: pytest.MonkeyPatch, width: int = 80) -> io.StringIO:
    """Make ``print_table`` print to an 80-column terminal; return what it prints."""
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=True, color_system=None)
    monkeypatch.setattr(terminal, "console", console)
    return out


def words(text: str) -> set[str]:
    return set(re.split(r"[\s│┃]+", text))


def test_a_table_that_fits_wraps_between_words_and_keeps_ids_whole(monkeypatch) -> None:
    out = on_terminal(monkeypatch)
    description = "a long description that has to wrap over several lines of the table " * 2
    print_table(
        ("run_id", "score", "description"),
        [(run_id, 0.5, description) for run_id in RUN_IDS],
        title="runs",
        numeric=("score",),
    )
    text = out.getvalue()
    assert BOX & set(text) and "runs" in text
    assert all(len(line) <= 80 for line in text.splitlines())
    assert {*RUN_IDS, "description", "several"} <= words(text)
    assert "…" not in text


def test_a_table_too_wide_for_the_terminal_prints_one_record_per_row(monkeypatch) -> None:
    out = on_terminal(monkeypatch)
    columns = [f"column_{i}" for i in range(12)]
    print_table(columns, [[f"{run_id}-{i}" for i in range(12)] for run_id in RUN_IDS])
    lines = out.getvalue().splitlines()
    assert not BOX & set(out.getvalue())
    assert lines[0] == "-[ RECORD 1 ]-" and lines[13] == "-[ RECORD 2 ]-"
    assert lines[1].split() == ["column_0", f"{RUN_IDS[0]}-0"]
    assert lines[-1].split() == ["column_11", f"{RUN_IDS[1]}-11"]


def test_cells_are_text_not_markup(monkeypatch) -> None:
    out = on_terminal(monkeypatch)
    print_table(("value",), [("[bold]x[/bold]",), (None,)])
    assert "[bold]x[/bold]" in out.getvalue()


def test_off_a_terminal_rows_are_tab_separated_and_notes_go_to_stderr(capsys) -> None:
    print_table(
        ("run_id", "error"),
        [(RUN_IDS[0], "line one\nline\ttwo"), (RUN_IDS[1], None)],
        title="the title",
        caption="2 rows",
    )
    captured = capsys.readouterr()
    assert captured.out == (f"run_id\terror\n{RUN_IDS[0]}\tline one\\nline\\ttwo\n{RUN_IDS[1]}\t\n")
    assert captured.err == "the title\n2 rows\n"


def test_a_file_gets_plain_text_even_from_a_terminal(monkeypatch) -> None:
    on_terminal(monkeypatch)
    out = io.StringIO()
    print_table(("run_id",), [(RUN_IDS[0],)], file=out)
    assert out.getvalue() == f"run_id\n{RUN_IDS[0]}\n"
