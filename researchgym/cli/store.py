"""Command-line access to the trajectory store, as commands added to a Typer app.

``register(app)`` adds:

* ``query "SQL"``: run SQL over the views ``steps``, ``episodes``, ``best_runs``;
* ``pareto [--env ID] [--task NAME]``: the runs on each env and task's Pareto front;
* ``store info`` and ``store compact``;
* ``export --format minari|parquet|csv --output PATH [--env ID]``.

Every command takes ``--store PATH`` (default: ``$RESEARCHGYM_STORE``, else
``./datasets_store``).
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from researchgym.cli.common import StoreOption, existing_store
from researchgym.errors import did_you_mean
from researchgym.store import Store
from researchgym.terminal import console, fail, print_table, progress_bar


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
        shown = min(limit, result.num_rows)
        caption = f"{result.num_rows} rows" + (
            f" (showing {shown}; --limit to see more)" if shown < result.num_rows else ""
        )
        rows = [[_cell(v) for v in row.values()] for row in result.slice(0, limit).to_pylist()]
        if output is None:
            print_table(result.column_names, rows, caption=caption)
        else:
            with open(output, "w") as f:
                print_table(result.column_names, rows, caption=caption, file=f)
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


def pareto(
    store: StoreOption = None,
    env: Annotated[str | None, typer.Option("--env", help="Only this env id.")] = None,
    task: Annotated[str | None, typer.Option("--task", help="Only this task.")] = None,
) -> None:
    """Show the runs no other run beats on score, seconds and parameters at once."""
    s = existing_store(store)
    try:
        if env is not None and env not in (envs := s.envs()):
            fail(
                f"the store {s.path} holds no runs of env {env!r}; "
                f"{did_you_mean(env, envs)}its envs: {', '.join(envs) or 'none'}"
            )
        front = s.pareto_front(env, task)
    finally:
        s.close()
    if front.empty:
        console.print(
            "no finished runs with a score, seconds and a parameter count"
            + (f" for env {env!r}" if env else "")
            + (f" on task {task!r}" if task else "")
        )
        return
    columns = ("env_id", "task", "run_id", "agent", "val_score", "cost_seconds", "n_params")
    print_table(
        ("env", "task", "run", "agent", "score", "seconds", "params"),
        [[_cell(row[c]) for c in columns] for row in front.to_dict("records")],
        title="Pareto front: highest score, fewest seconds and parameters",
        caption=f"{len(front)} runs",
        numeric=("score", "seconds", "params"),
    )


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
    file_counts = (
        f"{files['steps'] + files['compacted']} ({files['steps']} small, "
        f"{files['compacted']} compacted, {files['skipped']} skipped, "
        f"{files['temporary']} temporary)"
    )
    print_table(
        ("what", "value"),
        [
            ("rows", f"{summary['rows']:,}"),
            ("episodes", f"{summary['episodes']:,}"),
            ("envs", f"{summary['envs']:,}"),
            ("files", file_counts),
            ("size", _human_bytes(summary["size_bytes"])),
            ("on disk", _human_bytes(summary["disk_bytes"])),
            ("generation", summary["generation"]),
        ],
        title=f"store {summary['path']}",
    )
    for path in summary["skipped_files"]:
        console.print(f"[yellow]skipped unreadable file:[/yellow] {escape(str(path))}")
    print_table(("column", "type"), summary["schema"], title="schema of view steps")


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
            help="Minari dataset id when one env is exported "
            "(default: named after the env: researchgym/<Env>/store-v<N>)."
        ),
    ] = None,
    with_env: Annotated[
        bool,
        typer.Option(
            "--with-env/--without-env",
            help="Minari: store the env spec and its flat spaces (the env must be registered).",
        ),
    ] = True,
    repeat_last_obs: Annotated[
        bool,
        typer.Option(
            "--repeat-last-obs",
            help="Minari: end episodes recorded without their final observation (stores "
            "written before the next_obs column) with their last recorded one.",
        ),
    ] = False,
) -> None:
    """Export step rows (parquet, csv) or episodes (minari, one dataset per env)."""
    s = existing_store(store)
    try:
        if format is ExportFormat.minari:
            _export_minari(s, output, env, dataset_id, with_env, repeat_last_obs)
        else:
            from researchgym.store.export import export_table

            with console.status(f"exporting to {output}"):
                n = export_table(s, output, format=format.value, env_id=env)
            console.print(f"wrote {n:,} rows to {output}")
    finally:
        s.close()


def _export_minari(
    s: Store,
    output: Path,
    env: str | None,
    dataset_id: str | None,
    with_env: bool,
    repeat_last_obs: bool,
) -> None:
    """Export each env's episodes (or ``env``'s only) to its own Minari dataset under ``output``."""
    from researchgym.store.export import default_dataset_id, export_minari

    envs = [env] if env else s.envs()
    if not envs:
        fail(f"the store {s.path} holds no episodes to export")
    if dataset_id is not None and len(envs) > 1:
        fail(
            f"--dataset-id names one dataset, but the store holds {len(envs)} envs "
            f"({', '.join(envs)}); pass --env ID with it, or leave it out to export each env "
            f"to its own dataset"
        )
    with progress_bar() as progress:
        for env_id in envs:
            target = dataset_id or default_dataset_id(env_id)
            task = progress.add_task(f"reading {env_id}", total=None, status="")
            try:
                dataset = export_minari(
                    s,
                    target,
                    env_id=env_id,
                    datasets_path=output,
                    recover_env=with_env,
                    repeat_last_obs=repeat_last_obs,
                    progress=functools.partial(_advance, progress, task),
                )
            except ValueError as exc:
                fail(str(exc))
            console.print(
                f"wrote Minari dataset {target} ({dataset.total_episodes} episodes, "
                f"{dataset.total_steps} steps) under {output}"
            )


def _advance(progress: Any, task: Any, done: int, total: int) -> None:
    progress.update(task, completed=done, total=total)


def register(app: typer.Typer) -> None:
    """Add the store commands (``query``, ``pareto``, ``store info|compact``, ``export``) to ``app``.

    Args:
        app: The Typer application to extend.
    """
    app.command("query")(query)
    app.command("pareto")(pareto)
    app.add_typer(store_app, name="store")
    app.command("export")(export)
