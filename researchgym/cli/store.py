"""Command-line access to the trajectory store, as commands added to a Typer app.

``register(app)`` adds:

* ``query "SQL"``: run SQL over the views ``steps``, ``episodes``, ``best_runs``;
* ``store info`` and ``store compact``;
* ``export --format minari|parquet|csv --output PATH [--env ID]``.

Every command takes ``--store PATH`` (default: ``$RESEARCHGYM_STORE``, else
``./datasets_store``).
"""

from __future__ import annotations

import datetime as _dt
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from researchgym.cli.common import StoreOption, existing_store
from researchgym.terminal import console, fail, progress_bar


class QueryFormat(str, Enum):
    """Output formats of ``query``."""

    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


class ExportFormat(str, Enum):
    """Output formats of ``export``."""

    minari = "minari"
    parquet = "parquet"
    csv = "csv"


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return str(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _text_columns(table: Any) -> Any:
    """Turn nested columns into JSON text so CSV writers accept them."""
    import pyarrow as pa

    for i, field in enumerate(table.schema):
        if pa.types.is_nested(field.type):
            values = [
                None if v is None else json.dumps(v, default=_json_default)
                for v in table.column(i).to_pylist()
            ]
            table = table.set_column(i, field.name, pa.array(values, type=pa.string()))
    return table


def query(
    sql: Annotated[str, typer.Argument(help="SQL over the views steps, episodes, best_runs.")],
    store: StoreOption = None,
    format: Annotated[QueryFormat, typer.Option("--format", "-f", help="Output format.")] = (
        QueryFormat.table
    ),
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows shown by --format table.")] = 50,
) -> None:
    """Run SQL over the trajectory store."""
    import duckdb

    s = existing_store(store)
    try:
        result = s.sql(sql)
    except duckdb.Error as exc:
        fail(f"query failed: {exc}")
    finally:
        s.close()
    if format is QueryFormat.table:
        table = Table(show_lines=False, caption=None)
        for name in result.column_names:
            table.add_column(name, overflow="fold")
        for row in result.slice(0, limit).to_pylist():
            table.add_row(*(_cell(v) for v in row.values()))
        shown = min(limit, result.num_rows)
        table.caption = f"{result.num_rows} rows" + (
            f" (showing {shown}; --limit to see more)" if shown < result.num_rows else ""
        )
        if output is not None:
            with open(output, "w") as f:
                Console(file=f, width=200).print(table)
        else:
            console.print(table)
        return
    if format is QueryFormat.parquet:
        if output is None:
            fail("--format parquet needs --output PATH")
        import pyarrow.parquet as pq

        pq.write_table(result, output)
    elif format is QueryFormat.csv:
        import pyarrow.csv as pacsv

        sink = str(output) if output is not None else sys.stdout.buffer
        pacsv.write_csv(_text_columns(result), sink)
        if output is None:
            sys.stdout.flush()
    else:
        text = json.dumps(result.to_pylist(), default=_json_default, indent=1)
        if output is not None:
            Path(output).write_text(text + "\n")
        else:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
    if output is not None:
        console.print(f"wrote {result.num_rows} rows to {output}")


store_app = typer.Typer(help="Inspect and maintain the trajectory store.", no_args_is_help=True)


@store_app.command("info")
def info(
    store: StoreOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Show rows, episodes, files, size on disk and schema."""
    s = existing_store(store)
    try:
        summary = s.info()
    finally:
        s.close()
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=1) + "\n")
        return
    files = summary["files"]
    overview = Table(title=f"store {summary['path']}", show_header=False)
    overview.add_column("what")
    overview.add_column("value")
    overview.add_row("rows", f"{summary['rows']:,}")
    overview.add_row("episodes", f"{summary['episodes']:,}")
    overview.add_row("envs", f"{summary['envs']:,}")
    overview.add_row(
        "files",
        f"{files['steps'] + files['compacted']} ({files['steps']} small, "
        f"{files['compacted']} compacted, {files['skipped']} skipped, "
        f"{files['temporary']} temporary)",
    )
    overview.add_row("size", _human_bytes(summary["size_bytes"]))
    overview.add_row("on disk", _human_bytes(summary["disk_bytes"]))
    overview.add_row("generation", str(summary["generation"]))
    console.print(overview)
    for path in summary["skipped_files"]:
        console.print(f"[yellow]skipped unreadable file:[/yellow] {path}")
    schema = Table(title="schema of view steps")
    schema.add_column("column")
    schema.add_column("type")
    for name, type_ in summary["schema"]:
        schema.add_row(name, type_)
    console.print(schema)


@store_app.command("compact")
def compact(
    store: StoreOption = None,
    min_files: Annotated[int, typer.Option(help="Compact only if this many small files.")] = 2,
    target_rows: Annotated[int, typer.Option(help="Rows per compacted file.")] = 1_000_000,
    full: Annotated[
        bool, typer.Option("--full/--tiered", help="Also merge every undersized compacted file.")
    ] = True,
) -> None:
    """Merge small files into large ones (safe while others write and read)."""
    s = existing_store(store)
    with progress_bar() as progress:
        task = progress.add_task("compacting", total=None, status="")

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        result = s.compact(
            min_files=min_files, target_rows=target_rows, full=full, progress=advance
        )
    if result.inputs:
        console.print(
            f"compacted {result.inputs} files ({result.rows:,} rows) into {result.outputs}; "
            f"removed {result.removed} files; generation {result.generation}"
        )
    else:
        console.print(
            f"nothing to compact (fewer than {min_files} small files, compacted files merged); "
            f"removed {result.removed} leftover files"
        )


def export(
    format: Annotated[ExportFormat, typer.Option("--format", "-f", help="Output format.")],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="File for parquet/csv; Minari datasets root directory for minari.",
        ),
    ],
    store: StoreOption = None,
    env: Annotated[str | None, typer.Option("--env", help="Only this env id.")] = None,
    dataset_id: Annotated[
        str | None,
        typer.Option(
            help="Minari dataset id [default: from --env, e.g. researchgym/Digits/store-v0]."
        ),
    ] = None,
    with_env: Annotated[
        bool,
        typer.Option(
            "--with-env/--without-env",
            help="Minari: store the env spec and its flat spaces (the env must be registered).",
        ),
    ] = True,
) -> None:
    """Export step rows (parquet, csv) or episodes (minari)."""
    s = existing_store(store)
    try:
        if format is ExportFormat.minari:
            from researchgym.store.export import default_dataset_id, export_minari

            if dataset_id is None:
                envs = [env] if env else s.envs()
                if len(envs) != 1:
                    fail("the store holds several envs; pass --env ID or --dataset-id")
                dataset_id = default_dataset_id(envs[0])
            with progress_bar() as progress:
                task = progress.add_task("reading episodes", total=None, status="")

                def advance(done: int, total: int) -> None:
                    progress.update(task, completed=done, total=total)

                try:
                    dataset = export_minari(
                        s,
                        dataset_id,
                        env_id=env,
                        datasets_path=output,
                        recover_env=with_env,
                        progress=advance,
                    )
                except ValueError as exc:
                    hint = " (--without-env exports the episodes without the env)"
                    fail(f"{exc}{hint if with_env else ''}")
            console.print(
                f"wrote Minari dataset {dataset_id} ({dataset.total_episodes} episodes, "
                f"{dataset.total_steps} steps) under {output}"
            )
        else:
            from researchgym.store.export import export_table

            with console.status(f"exporting to {output}"):
                n = export_table(s, output, format=format.value, env_id=env)
            console.print(f"wrote {n:,} rows to {output}")
    finally:
        s.close()


def register(app: typer.Typer) -> None:
    """Add the store commands (``query``, ``store info|compact``, ``export``) to ``app``.

    Args:
        app: The Typer application to extend.
    """
    app.command("query")(query)
    app.add_typer(store_app, name="store")
    app.command("export")(export)
