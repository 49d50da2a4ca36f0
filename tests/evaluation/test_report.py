"""The self-contained report: escaping, Markdown, and rendering in headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from researchgym.errors import ConfigError, NotFound
from researchgym.evaluation.report import MAX_CELL_CHARS, Report, software_versions
from researchgym.plotting import pyplot, save_figure

CHROMIUM_INSTALL = "apt-get update && apt-get install -y --no-install-recommends chromium"
BROKEN_PNG = b"\x89PNG\r\n\x1a\n" + b"not an image"
HOSTILE = "<script>alert('x')</script>"


class _Dom(HTMLParser):
    """The images (their attributes) and table rows (their cell texts) of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.rows: list[list[str]] = []
        self.warnings: list[str] = []
        self.scripts = 0
        self._cell: list[str] | None = None
        self._warning = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "img":
            self.images.append(attributes)
        elif tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "script":
            self.scripts += 1
        elif tag == "p" and attributes.get("class") == "warning":
            self._warning = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None
        elif tag == "p":
            self._warning = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._warning:
            self.warnings.append(data)


def _plot(path: Path, values: list[float]) -> Path:
    fig, ax = pyplot().subplots(figsize=(3, 2))
    ax.plot(values)
    return save_figure(fig, path)


def _report(tmp_path: Path) -> Report:
    report = Report("Board")
    report.paragraph("Two plots and a table.")
    report.table(
        ["planner", "run id", "regret"],
        [["tpe", "0123456789abcdef0123456789abcdef", 0.0312], ["random", "f" * 32, 0.25]],
    )
    report.image(_plot(tmp_path / "a.png", [3, 1, 2]), "first plot")
    report.image(_plot(tmp_path / "b.png", [1, 2, 3]).read_bytes(), "second plot")
    return report.code("researchgym report --store runs")


def _chromium_dom(page: Path) -> _Dom:
    chromium = shutil.which("chromium")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail(f"headless Chromium is missing; install it with `{CHROMIUM_INSTALL}`")
        pytest.skip(f"chromium is not installed (`{CHROMIUM_INSTALL}`); CI=1 makes this fail")
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=10000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return _Dom(result.stdout)


@pytest.mark.slow
def test_chromium_renders_the_table_and_every_plot(tmp_path):
    page = _report(tmp_path).write_html(tmp_path / "report.html")
    dom = _chromium_dom(page)
    assert ["tpe", "0123456789abcdef0123456789abcdef", "0.0312"] in dom.rows
    assert ["random", "f" * 32, "0.25"] in dom.rows
    assert len(dom.images) == 2
    assert all(image["data-rendered"] == "true" for image in dom.images)
    assert dom.warnings == []


@pytest.mark.slow
def test_chromium_shows_a_warning_next_to_a_broken_plot(tmp_path):
    report = _report(tmp_path).image(BROKEN_PNG, "broken plot")
    dom = _chromium_dom(report.write_html(tmp_path / "report.html"))
    assert [image["data-rendered"] for image in dom.images] == ["true", "true", "false"]
    assert dom.warnings == ["This plot failed to render."]


def test_text_is_escaped_and_plots_are_embedded(tmp_path):
    report = Report(HOSTILE).heading(HOSTILE).paragraph(HOSTILE).code(HOSTILE)
    report.table([HOSTILE], [[HOSTILE]], caption=HOSTILE)
    page = report.image(_plot(tmp_path / "a.png", [1, 2]), HOSTILE).html()
    assert "<script>alert" not in page
    dom = _Dom(page)
    assert dom.scripts == 1  # the report's own
    assert [HOSTILE] in dom.rows
    assert dom.images[0]["src"].startswith("data:image/png;base64,")
    assert dom.images[0]["alt"] == HOSTILE
    assert "Content-Security-Policy" in page


def test_numbers_are_right_aligned_and_huge_cells_bounded():
    page = Report("t").table(["name", "score"], [["x" * 10_000, 0.123456], ["y", None]]).html()
    assert '<th class="num">score</th>' in page
    assert '<td class="num">0.1235</td>' in page
    assert "(10,002 characters)" in page
    assert len(page) < 10_000
    assert max(len(cell) for row in _Dom(page).rows for cell in row) <= MAX_CELL_CHARS


def test_markdown_links_plots_and_escapes_cells(tmp_path):
    plot = _plot(tmp_path / "plots" / "a.png", [1, 2])
    report = Report("t").table(["task"], [["a|b <i>"]]).image(plot, "curves")
    text = report.write_markdown(tmp_path / "report.md").read_text()
    assert "| a\\|b &lt;i&gt; |" in text
    assert "![curves](plots/a.png)" in text


def test_versions_are_read_without_imports():
    versions = software_versions()
    for name in ("python", "torch", "numpy", "optuna", "gymnasium", "duckdb", "researchgym"):
        assert versions[name]
    assert "Versions" in Report("t").versions().markdown()


def test_bad_input_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="2 columns"):
        Report("t").table(["a", "b"], [[1]])
    with pytest.raises(ConfigError, match="not a PNG"):
        Report("t").image(b"GIF89a")
    with pytest.raises(NotFound, match="no image file"):
        Report("t").image(tmp_path / "missing.png")
    with pytest.raises(ConfigError, match="heading level"):
        Report("t").heading("h", level=1)
