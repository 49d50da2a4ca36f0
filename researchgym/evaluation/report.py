"""Self-contained reports: one document rendered as a standalone HTML page and as Markdown.

The HTML page opens in a browser without a server: styles are inline, PNG plots
are embedded as ``data:`` URIs, and a small inline script marks each image
``data-rendered="true"`` once the browser has decoded it, or shows a warning
next to a plot that failed to render. Every piece of text is escaped, so names
read from a store (tasks, agents, metaprograms) cannot inject markup, and a
Content-Security-Policy allows no script but the report's own.

Example::

    from researchgym.evaluation.report import Report

    report = Report("Planner leaderboard")
    report.paragraph("Normalized regret after 20 steps, 10 seeds per task.")
    report.table(["planner", "regret"], [["tpe", 0.031], ["random", 0.12]])
    report.image("curves.png", "Anytime regret per task")
    report.code("researchgym leaderboard --suite fast --seeds 10")
    report.versions()
    report.write_html("report.html")
    report.write_markdown("report.md")
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import importlib.metadata
import math
import os
import platform
from collections.abc import Sequence
from numbers import Real
from pathlib import Path

from researchgym.errors import ConfigError, NotFound, shorten

__all__ = ["MAX_CELL_CHARS", "Report", "software_versions"]

#: Longest text a table cell shows; longer values are cut, saying how long they were.
MAX_CELL_CHARS = 300

#: Libraries whose versions :func:`software_versions` reports.
_LIBRARIES = ("researchgym", "torch", "numpy", "optuna", "gymnasium", "duckdb")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_NUM = ' class="num"'

Cell = str | int | float | None

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328;
       margin: 0; background: #fff; line-height: 1.45; }
main { max-width: 72rem; margin: 0 auto; padding: 1.5rem; }
h1, h2, h3 { line-height: 1.2; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .25rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 1rem 0; font-size: .9rem; }
caption { text-align: left; color: #59636e; padding-bottom: .25rem; }
th, td { border: 1px solid #d0d7de; padding: .25rem .5rem; text-align: left;
         vertical-align: top; overflow-wrap: anywhere; }
th { background: #f6f8fa; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { margin: 1rem 0; }
img { max-width: 100%; height: auto; }
figcaption { color: #59636e; font-size: .9rem; }
pre { background: #f6f8fa; padding: .75rem; overflow-x: auto; white-space: pre-wrap; }
.warning { color: #9a1c1c; background: #fdecec; border: 1px solid #f5b5b5;
           padding: .25rem .5rem; font-weight: 600; }
"""

_SCRIPT = """
for (const img of document.querySelectorAll("img")) {
  const check = () => {
    if (img.naturalWidth > 0) {
      img.dataset.rendered = "true";
      return;
    }
    img.dataset.rendered = "false";
    const warning = document.createElement("p");
    warning.className = "warning";
    warning.textContent = "This plot failed to render.";
    img.after(warning);
  };
  if (img.complete) {
    check();
  } else {
    img.addEventListener("load", check, { once: true });
    img.addEventListener("error", check, { once: true });
  }
}
"""

_SCRIPT_HASH = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
_POLICY = f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{_SCRIPT_HASH}'"


@dataclasses.dataclass(frozen=True)
class _Heading:
    text: str
    level: int


@dataclasses.dataclass(frozen=True)
class _Paragraph:
    text: str


@dataclasses.dataclass(frozen=True)
class _Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    caption: str
    digits: int


@dataclasses.dataclass(frozen=True)
class _Image:
    png: bytes
    caption: str
    path: Path | None


@dataclasses.dataclass(frozen=True)
class _Code:
    text: str


_Block = _Heading | _Paragraph | _Table | _Image | _Code


def software_versions() -> dict[str, str]:
    """Versions of Python, the main libraries, the platform and the git commit, when known.

    Read from package metadata, so no library is imported. Libraries that are
    not installed are reported as ``"not installed"``; the git commit is left
    out when researchgym does not run from a git checkout.
    """
    from researchgym.store.schema import provenance

    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    versions["platform"] = platform.platform()
    code_version = provenance()["code_version"]
    if code_version != provenance()["researchgym_version"]:
        versions["git commit"] = code_version
    return versions


def _is_number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _cell_text(value: Cell, digits: int) -> str:
    if value is None:
        return ""
    if _is_number(value) and not isinstance(value, int):
        number = float(value)
        text = "nan" if math.isnan(number) else f"{number:.{digits}g}"
    else:
        text = str(value)
    return text if len(text) <= MAX_CELL_CHARS else shorten(text, MAX_CELL_CHARS)


def _markdown_text(text: str) -> str:
    """Text safe inside a Markdown table cell or paragraph: no markup, pipes or line breaks."""
    return html.escape(" ".join(text.split()), quote=False).replace("|", "\\|")


class Report:
    """A document of headings, paragraphs, tables, PNG images and code blocks.

    Build it with the adding methods (each returns the report, so calls chain)
    and render it with :meth:`html` or :meth:`markdown`, or write it with
    :meth:`write_html` and :meth:`write_markdown`.

    Args:
        title: Title of the page, shown as its top heading.
    """

    def __init__(self, title: str) -> None:
        self.title = title
        self._blocks: list[_Block] = []

    def heading(self, text: str, level: int = 2) -> Report:
        """Add a section heading of ``level`` 2 (a section) to 4 (the title is level 1)."""
        if level not in (2, 3, 4):
            raise ConfigError(f"heading level must be 2, 3 or 4, got {shorten(level)}")
        self._blocks.append(_Heading(text, level))
        return self

    def paragraph(self, text: str) -> Report:
        """Add a paragraph of plain text."""
        self._blocks.append(_Paragraph(text))
        return self

    def table(
        self,
        columns: Sequence[str],
        rows: Sequence[Sequence[Cell]],
        *,
        caption: str = "",
        digits: int = 4,
    ) -> Report:
        """Add a table.

        Args:
            columns: Column names.
            rows: One sequence of cells per row, as long as ``columns``. Numbers
                are right-aligned, floats shown with ``digits`` significant
                digits, ``None`` as an empty cell; text longer than
                :data:`MAX_CELL_CHARS` is cut (ids are far shorter and shown whole).
            caption: Text shown above the table.
            digits: Significant digits of floats.
        """
        for i, row in enumerate(rows):
            if len(row) != len(columns):
                raise ConfigError(
                    f"row {i} of the table has {len(row)} cells for {len(columns)} columns "
                    f"{shorten(list(columns))}; give one cell per column"
                )
        self._blocks.append(
            _Table(tuple(columns), tuple(tuple(row) for row in rows), caption, digits)
        )
        return self

    def image(self, source: str | os.PathLike[str] | bytes, caption: str = "") -> Report:
        """Add a PNG image, embedded in the HTML page.

        Args:
            source: A PNG file, or its bytes. In Markdown a file is linked
                (relative to the Markdown file when written with
                :meth:`write_markdown`); bytes appear as their caption only.
            caption: Text shown under the image (and its alt text).
        """
        path = None
        if isinstance(source, bytes):
            png = source
        else:
            path = Path(source)
            if not path.is_file():
                raise NotFound(f"no image file {shorten(str(path))}; save the plot first")
            png = path.read_bytes()
        if not png.startswith(_PNG_SIGNATURE):
            raise ConfigError(
                f"image {shorten(str(path) if path else png)} is not a PNG; save plots as PNG"
            )
        self._blocks.append(_Image(png, caption, path))
        return self

    def code(self, text: str) -> Report:
        """Add a block of code, e.g. the commands that made the report."""
        self._blocks.append(_Code(text))
        return self

    def versions(self) -> Report:
        """Add a "Versions" section: the table of :func:`software_versions`."""
        self.heading("Versions")
        return self.table(["software", "version"], list(software_versions().items()))

    def html(self) -> str:
        """The report as a standalone HTML page."""
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_POLICY}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(self.title)}</title>",
            f"<style>{_STYLE}</style>",
            "</head>",
            "<body>",
            "<main>",
            f"<h1>{html.escape(self.title)}</h1>",
        ]
        parts += [_html_block(block) for block in self._blocks]
        parts += ["</main>", f"<script>{_SCRIPT}</script>", "</body>", "</html>", ""]
        return "\n".join(parts)

    def markdown(self, relative_to: str | os.PathLike[str] | None = None) -> str:
        """The report as Markdown.

        Args:
            relative_to: Folder that image links are relative to (that of the
                Markdown file); absolute links when None.
        """
        base = None if relative_to is None else Path(relative_to)
        blocks = [f"# {_markdown_text(self.title)}"]
        blocks += [_markdown_block(block, base) for block in self._blocks]
        return "\n\n".join(blocks) + "\n"

    def write_html(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`html` to ``path`` (folders made) and return the path."""
        return _write(path, self.html())

    def write_markdown(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`markdown` to ``path`` (folders made), images linked relative to it."""
        return _write(path, self.markdown(Path(path).parent))


def _write(path: str | os.PathLike[str], text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _numeric_columns(table: _Table) -> list[bool]:
    numeric = []
    for i in range(len(table.columns)):
        values = [row[i] for row in table.rows if row[i] is not None]
        numeric.append(bool(values) and all(_is_number(v) for v in values))
    return numeric


def _html_block(block: _Block) -> str:
    if isinstance(block, _Heading):
        return f"<h{block.level}>{html.escape(block.text)}</h{block.level}>"
    if isinstance(block, _Paragraph):
        return f"<p>{html.escape(block.text)}</p>"
    if isinstance(block, _Code):
        return f"<pre><code>{html.escape(block.text)}</code></pre>"
    if isinstance(block, _Image):
        data = base64.b64encode(block.png).decode("ascii")
        caption = html.escape(block.caption)
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{caption}">'
            f"<figcaption>{caption}</figcaption></figure>"
        )
    numeric = _numeric_columns(block)
    lines = ["<table>"]
    if block.caption:
        lines.append(f"<caption>{html.escape(block.caption)}</caption>")
    header = "".join(
        f"<th{_NUM if num else ''}>{html.escape(name)}</th>"
        for name, num in zip(block.columns, numeric)
    )
    lines += ["<thead>", f"<tr>{header}</tr>", "</thead>", "<tbody>"]
    for row in block.rows:
        cells = "".join(
            f"<td{_NUM if _is_number(value) else ''}>"
            f"{html.escape(_cell_text(value, block.digits))}</td>"
            for value in row
        )
        lines.append(f"<tr>{cells}</tr>")
    lines += ["</tbody>", "</table>"]
    return "\n".join(lines)


def _markdown_block(block: _Block, base: Path | None) -> str:
    if isinstance(block, _Heading):
        return f"{'#' * block.level} {_markdown_text(block.text)}"
    if isinstance(block, _Paragraph):
        return _markdown_text(block.text)
    if isinstance(block, _Code):
        fence = "```"
        while fence in block.text:
            fence += "`"
        return f"{fence}\n{block.text}\n{fence}"
    if isinstance(block, _Image):
        caption = _markdown_text(block.caption)
        if block.path is None:
            return f"*{caption}*"
        link = block.path if base is None else Path(os.path.relpath(block.path, base))
        return f"![{caption}]({link.as_posix()})"
    numeric = _numeric_columns(block)
    lines = [f"*{_markdown_text(block.caption)}*", ""] if block.caption else []
    lines.append("| " + " | ".join(_markdown_text(name) for name in block.columns) + " |")
    lines.append("| " + " | ".join("---:" if num else "---" for num in numeric) + " |")
    for row in block.rows:
        cells = (_markdown_text(_cell_text(value, block.digits)) for value in row)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
