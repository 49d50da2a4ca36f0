"""DuckDB catalog over a trajectory store: views, SQL, helpers, episode iteration.

Views (recreated whenever the set of visible files changes):

* ``steps``: one row per step over the store's visible files, combined by
  column name (as ``read_parquet([...], union_by_name=true)`` does), so files
  written before a column was added read as NULL in it.
* ``episodes``: one row per campaign: env_id, env_version, task, agent, seed
  (of its first step), episode_seed (given to its reset), n_steps,
  best_val_score, total_reward, terminated, truncated, n_failed, started_at,
  finished_at.
* ``best_runs``: per (env_id, task) the best val_score and the run that got it.

:meth:`Catalog.pareto_front` answers the multi-objective question: the runs no other
run of the same env and task beats on score, seconds and parameters at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from researchgym.errors import ConfigError, NotFound, StateError, shorten
from researchgym.store import schema as _schema
from researchgym.store.backend import FileInfo
from researchgym.store.files import quick_check, warn_corrupt
from researchgym.store.manifest import FileSet, Snapshot

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow.dataset as ds

_DUCKDB_TYPES = {
    pa.bool_(): "BOOLEAN",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    pa.string(): "VARCHAR",
    pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ",
    pa.list_(pa.float64()): "DOUBLE[]",
}


def _columns_ddl(schema: pa.Schema) -> str:
    """The column list of a DuckDB ``CREATE TABLE`` matching an Arrow schema of step rows."""
    return ", ".join(f'"{field.name}" {_DUCKDB_TYPES[field.type]}' for field in schema)


_RETRIES = 20
_SchemaKey = tuple[tuple[str, str], ...]
#: Writer files up to this many rows are cached in memory by the catalog ...
_CACHE_FILE_ROWS = 10_000
#: ... as long as all of them together hold no more than this many rows.
_CACHE_TOTAL_ROWS = 1_000_000
#: Run ids an ambiguous run id prefix lists in its error.
_SHOWN_MATCHES = 5

_EPISODES_VIEW = """
CREATE OR REPLACE VIEW episodes AS
SELECT
    campaign_id,
    arg_min(env_id, step) AS env_id,
    arg_min(env_version, step) AS env_version,
    arg_min(task, step) AS task,
    arg_min(agent, step) AS agent,
    arg_min(seed, step) AS seed,
    arg_min(episode_seed, step) AS episode_seed,
    count(*) AS n_steps,
    max(val_score) FILTER (WHERE NOT isnan(val_score)) AS best_val_score,
    sum(reward) AS total_reward,
    coalesce(bool_or(terminated), false) AS terminated,
    coalesce(bool_or(truncated), false) AS truncated,
    count(*) FILTER (WHERE status IS DISTINCT FROM 'ok') AS n_failed,
    min(started_at) AS started_at,
    max(finished_at) AS finished_at
FROM steps
GROUP BY campaign_id
"""

_BEST_RUNS_VIEW = """
CREATE OR REPLACE VIEW best_runs AS
SELECT
    env_id,
    task,
    max(val_score) AS best_val_score,
    arg_max(run_id, val_score) AS run_id,
    arg_max(campaign_id, val_score) AS campaign_id,
    arg_max(step, val_score) AS step,
    arg_max(agent, val_score) AS agent,
    count(*) AS n_runs
FROM steps
WHERE val_score IS NOT NULL AND NOT isnan(val_score)
GROUP BY env_id, task
"""


# Finished runs with all three objectives; a run is on the front unless another of its env
# and task is at least as good on every objective and better on one.
_PARETO_FRONT = """
WITH runs AS (
    SELECT env_id, task, run_id, campaign_id, step, agent, val_score, cost_seconds, n_params
    FROM steps
    WHERE status = 'ok' AND val_score IS NOT NULL AND NOT isnan(val_score)
        AND cost_seconds IS NOT NULL AND n_params IS NOT NULL{where}
)
SELECT * FROM runs AS a
WHERE NOT EXISTS (
    SELECT 1 FROM runs AS b
    WHERE b.env_id = a.env_id AND b.task IS NOT DISTINCT FROM a.task
        AND b.val_score >= a.val_score AND b.cost_seconds <= a.cost_seconds
        AND b.n_params <= a.n_params
        AND (b.val_score > a.val_score OR b.cost_seconds < a.cost_seconds
            OR b.n_params < a.n_params)
)
ORDER BY env_id, task NULLS LAST, val_score DESC, cost_seconds, n_params, run_id
"""


@dataclasses.dataclass(frozen=True)
class Episode:
    """One campaign's steps as arrays, in step order.

    Attributes:
        campaign_id: Episode id.
        env_id: Environment id.
        task: Task of the campaign.
        agent: Agent that acted.
        seed: Seed of the campaign.
        steps: Step indices, shape (n,).
        run_ids: Run id of each step, shape (n,), object dtype.
        observations: Flat observation seen before each step, shape (n, obs_dim).
        final_observation: Flat observation the last step returned, shape (obs_dim,);
            ``None`` for episodes recorded before the store kept it (``next_obs``).
        actions: Flat action of each step, shape (n, action_dim); rows of
            steps recorded without a flat action are NaN.
        rewards: Shape (n,).
        terminations: Shape (n,), bool.
        truncations: Shape (n,), bool.
        val_scores: Validation score of each step, NaN where none, shape (n,).
    """

    campaign_id: str
    env_id: str
    task: str | None
    agent: str | None
    seed: int | None
    steps: np.ndarray
    run_ids: np.ndarray
    observations: np.ndarray
    final_observation: np.ndarray | None
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    val_scores: np.ndarray

    def __len__(self) -> int:
        return len(self.rewards)


def sql_string(value: str) -> str:
    """``value`` as a quoted SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def _sql_list(values: Sequence[str]) -> str:
    return ", ".join(sql_string(v) for v in values)


def _group(names: Sequence[str], keys: Mapping[str, _SchemaKey]) -> dict[_SchemaKey, list[str]]:
    groups: dict[_SchemaKey, list[str]] = {}
    for name in names:
        groups.setdefault(keys[name], []).append(name)
    return groups


def _where(filters: Mapping[str, Any]) -> tuple[str, list[Any]]:
    clauses, params = [], []
    for column, value in filters.items():
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _check_columns(names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in _schema.FIELD_TYPES]
    if unknown:
        raise _schema.StoreError(
            f"unknown store column(s) {shorten(unknown)}; use columns of "
            f"researchgym.store.STEP_SCHEMA: {', '.join(_schema.FIELD_TYPES)}"
        )


class Catalog:
    """An in-memory DuckDB database whose views read a store in place.

    Every query first takes a consistent snapshot of the store's files and, if
    the set changed, recreates the ``steps`` view. Files that vanish mid-query
    (compaction) make the query retry on a new snapshot; unreadable files are
    reported once with a :class:`~researchgym.store.files.CorruptFileWarning`
    and left out.

    DuckDB reads the files of a backend whose locations it can open (local
    paths) in place; the files of other backends are scanned as Arrow
    datasets over :meth:`~researchgym.store.backend.StorageBackend.open_input`.

    Args:
        fileset: The files of the store to read.
        cache_small_files: Load the rows of small writer files into in-memory
            tables once, instead of reading every file on every query. Makes
            repeated queries over a live store as fast as over a compacted
            one, at the cost of a slower first query. Only for backends whose
            locations DuckDB reads.
    """

    def __init__(self, fileset: FileSet, *, cache_small_files: bool = True) -> None:
        self._fileset = fileset
        self._backend = fileset.backend
        self._cache_small_files = cache_small_files and self._backend.duckdb_reads_locations
        self._con = duckdb.connect(":memory:")
        for setting in ("SET TimeZone='UTC'", "SET parquet_metadata_cache=true"):
            try:
                self._con.execute(setting)
            except duckdb.Error:  # pragma: no cover - setting unknown to this DuckDB
                pass
        # A real (empty) table, not a registered Arrow object: cursors see it too
        # (and registering Arrow objects makes DuckDB import pandas).
        self._con.execute(f"CREATE TABLE _empty_steps ({_columns_ddl(_schema.STEP_SCHEMA)})")
        self._lock = threading.RLock()
        self._files: tuple[str, ...] = ()
        self._snapshot: Snapshot | None = None
        self._footers: dict[str, tuple[_SchemaKey, int]] = {}
        self._tables: dict[_SchemaKey, str] = {}  # cache table per file schema
        self._cached: dict[str, _SchemaKey] = {}  # files whose rows are in a cache table
        self._datasets: dict[str, tuple[ds.Dataset, list[str]]] = {}  # Arrow views: files
        self._view_state: tuple[Any, ...] | None = None
        self._deep_good: set[str] = set()
        self._bad: dict[str, FileInfo] = {}
        self._set_steps_view((), ())
        self._con.execute(_EPISODES_VIEW)
        self._con.execute(_BEST_RUNS_VIEW)

    def close(self) -> None:
        """Close the DuckDB connection."""
        with self._lock:
            self._con.close()

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection (views are current as of the last query)."""
        return self._con

    @property
    def skipped_files(self) -> list[str]:
        """Locations of the files found unreadable and left out of queries."""
        return sorted(self._backend.location(name) for name in self._bad)

    # ------------------------------------------------------------------ file set

    def _mark_bad(self, name: str, reason: str) -> None:
        try:
            info = self._backend.stat(name)
        except FileNotFoundError:
            return
        self._footers.pop(name, None)
        self._deep_good.discard(name)
        if name not in self._bad:
            warn_corrupt(self._backend.location(name), reason)
        self._bad[name] = info

    def _inspect(self, name: str) -> tuple[_SchemaKey, int] | None:
        """Return a file's (column names and types, row count), or None if unusable."""
        footer = self._footers.get(name)
        if footer is not None:
            return footer
        if name in self._bad:
            try:
                if self._bad[name] == self._backend.stat(name):
                    return None
            except FileNotFoundError:
                return None
            del self._bad[name]  # the file changed: look again
        try:
            with self._backend.open_input(name) as file:
                reason = quick_check(file)
                if reason is None:
                    try:
                        metadata = pq.read_metadata(file)
                        schema = metadata.schema.to_arrow_schema()
                    except FileNotFoundError:
                        raise
                    except Exception as exc:  # noqa: BLE001 - any footer failure: unreadable
                        reason = f"unreadable footer ({type(exc).__name__}: {exc})"
        except FileNotFoundError:
            return None
        if reason is not None:
            self._mark_bad(name, reason)
            return None
        footer = (tuple((f.name, str(f.type)) for f in schema), metadata.num_rows)
        self._footers[name] = footer
        return footer

    def _locations(self, names: Sequence[str]) -> str:
        return _sql_list([self._backend.location(name) for name in names])

    def _sync_cache(self, small: dict[str, _SchemaKey]) -> None:
        """Make the cache tables hold exactly the rows of the files in ``small``."""
        remove = [p for p in self._cached if p not in small]
        add = [p for p in small if p not in self._cached]
        if not remove and not add:
            return
        new_tables: dict[_SchemaKey, str] = {}
        con = self._con
        con.execute("BEGIN TRANSACTION")
        try:
            for key, names in _group(remove, self._cached).items():
                con.execute(
                    f"DELETE FROM {self._tables[key]} WHERE _file IN (SELECT unnest(?::VARCHAR[]))",
                    [[self._backend.location(name) for name in names]],
                )
            for key, names in _group(add, small).items():
                source = f"read_parquet([{self._locations(names)}], filename='_file')"
                table = self._tables.get(key) or new_tables.get(key)
                if table is None:
                    table = f"_live_{len(self._tables) + len(new_tables)}"
                    con.execute(f"CREATE TABLE {table} AS SELECT * FROM {source}")
                    new_tables[key] = table
                else:
                    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {source}")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self._tables.update(new_tables)
        for name in remove:
            del self._cached[name]
        for name in add:
            self._cached[name] = small[name]

    def _scan(self, names: Sequence[str]) -> str:
        """A SELECT over files of one schema: in place, or as a registered Arrow dataset."""
        if self._backend.duckdb_reads_locations:
            return f"SELECT * FROM read_parquet([{self._locations(names)}])"
        import pyarrow.dataset as ds  # imports pandas: only for locations DuckDB cannot read

        parquet = ds.ParquetFileFormat()
        fragments = [parquet.make_fragment(self._backend.open_input(name)) for name in names]
        dataset = ds.FileSystemDataset(fragments, fragments[0].physical_schema, parquet)
        view = f"_files_{len(self._datasets)}"
        self._datasets[view] = (dataset, list(names))
        self._con.register(view, dataset)
        return f"SELECT * FROM {view}"

    def _register_datasets(self, con: duckdb.DuckDBPyConnection) -> None:
        """Make the Arrow datasets under the ``steps`` view visible to a cursor."""
        for view, (dataset, _) in self._datasets.items():
            con.register(view, dataset)

    def _set_steps_view(
        self, direct: Sequence[tuple[str, _SchemaKey]], tables: Sequence[str]
    ) -> None:
        # Files sharing one schema are read without union_by_name, which halves
        # the cost of a query over many files; groups with different columns
        # (files written before and after a column was added) and the cache
        # tables are combined by column name, as read_parquet(...,
        # union_by_name=true) would.
        # Schema columns no file has (all written before the column was added)
        # come from the empty table, so they read as NULL rather than fail to bind.
        for view in self._datasets:
            self._con.unregister(view)
        self._datasets = {}
        groups = _group([name for name, _ in direct], dict(direct))
        parts = [self._scan(names) for names in groups.values()]
        parts += [f"SELECT * EXCLUDE (_file) FROM {table}" for table in tables]
        names = {table: key for key, table in self._tables.items()}
        keys = [*groups, *(names[table] for table in tables)]
        present = {column for key in keys for column, _ in key}
        if not parts or not present.issuperset(_schema.FIELD_TYPES):
            parts.append("SELECT * FROM _empty_steps")
        source = " UNION ALL BY NAME ".join(parts)
        self._con.execute(f"CREATE OR REPLACE VIEW steps AS {source}")

    def refresh(self) -> Snapshot:
        """Take a new snapshot of the store and point the views at it.

        Small writer files are loaded once into in-memory tables (files never
        change once published), so a live store of many small files queries
        about as fast as a compacted one.
        """
        with self._lock:
            snap = self._fileset.snapshot()
            self._snapshot = snap
            if self._bad:  # forget unreadable files that are gone
                listed = set(snap.files)
                self._bad = {n: v for n, v in self._bad.items() if n in listed}
            direct: list[tuple[str, _SchemaKey]] = []
            small: dict[str, _SchemaKey] = {}
            small_rows = 0
            writer_files = set(snap.files[snap.compacted_files :])
            for name in snap.files:
                footer = self._inspect(name)
                if footer is None:
                    continue
                key, rows = footer
                if self._cache_small_files and name in writer_files and rows <= _CACHE_FILE_ROWS:
                    small[name] = key
                    small_rows += rows
                else:
                    direct.append((name, key))
            if small_rows > _CACHE_TOTAL_ROWS:  # too much to hold in memory: read in place
                direct += small.items()
                small = {}
            self._sync_cache(small)  # reads the new files: may fail, then nothing changed
            listed = set(snap.files)
            self._footers = {n: f for n, f in self._footers.items() if n in listed}
            tables = sorted({self._tables[key] for key in self._cached.values()})
            state = (tuple(direct), tuple(tables))
            if state != self._view_state:
                self._view_state = None  # until the view below is in place
                self._set_steps_view(direct, tables)  # binding reads the files: may fail
                self._view_state = state
            self._files = tuple(n for n, _ in direct) + tuple(small)
            return snap

    def _recover(self, exc: duckdb.Error) -> bool:
        """Decide whether a failed query should be retried on a new snapshot."""
        message = str(exc)
        # Damaged data surfaces as these types, or as a bare duckdb.Error (e.g. a
        # Thrift decoding failure); parser, binder and catalog errors are the query's.
        undiagnosed = type(exc) is duckdb.Error or isinstance(
            exc, (duckdb.InternalException, duckdb.SerializationException)
        )
        if not (
            undiagnosed
            or isinstance(exc, (duckdb.IOException, duckdb.InvalidInputException))
            or ".parquet" in message
        ):
            return False
        backend = self._backend
        files = self._snapshot.files if self._snapshot is not None else ()
        named = [name for name in files if backend.location(name) in message]
        for view, (_, names) in self._datasets.items():  # errors name the Arrow view
            if f"'{view}'" in message:
                named += names
        progressed = False
        for name in named:
            try:
                reason = backend.check(name, deep=True)
            except FileNotFoundError:
                progressed = True  # deleted by a compaction: a new snapshot will not list it
                continue
            if reason is not None:
                self._mark_bad(name, reason)
                progressed = True
        if named:
            return progressed
        if self._any_gone(files):
            return True
        if not undiagnosed and "parquet" not in message.lower():
            return False
        for name in files:  # a decoding error that names no file: find the culprit
            if name in self._deep_good:
                continue
            try:
                reason = backend.check(name, deep=True)
            except FileNotFoundError:
                return True
            if reason is None:
                self._deep_good.add(name)
            else:
                self._mark_bad(name, reason)
                progressed = True
        return progressed

    def _any_gone(self, names: Sequence[str]) -> bool:
        for name in names:
            try:
                self._backend.stat(name)
            except FileNotFoundError:
                return True
        return False

    # ------------------------------------------------------------------ SQL

    def _run(self, fetch: Any) -> Any:
        with self._lock:
            error: Exception | None = None
            for attempt in range(_RETRIES):
                try:
                    self.refresh()
                    return fetch(self._con)
                except FileNotFoundError as exc:  # deleted by a compaction while being opened
                    error = exc
                except duckdb.Error as exc:
                    if not self._recover(exc):
                        raise
                    error = exc
                time.sleep(0.001 * attempt)
            assert error is not None
            raise error

    def arrow(
        self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> pa.Table:
        """Run SQL and return the result as an Arrow table.

        Args:
            query: DuckDB SQL over the views ``steps``, ``episodes``, ``best_runs``.
            params: Values for placeholders.

        Returns:
            The result table.
        """
        return self._run(lambda con: con.sql(query, params=params).to_arrow_table())

    def copy_to(self, select: str, path: str | os.PathLike[str], options: str) -> None:
        """Run ``COPY (select) TO path (options)`` with the store's views current."""
        target = sql_string(str(path))
        self._run(lambda con: con.execute(f"COPY ({select}) TO {target} ({options})"))

    def _column(self, query: str, params: list[Any]) -> list[Any]:
        return self.arrow(query, params).column(0).to_pylist()

    # ------------------------------------------------------------------ helpers

    def envs(self) -> list[str]:
        """Return the env ids present, sorted."""
        return self._column("SELECT DISTINCT env_id FROM steps ORDER BY 1", [])

    def tasks(self, env_id: str | None = None) -> list[str]:
        """Return the task names present (of one env if given), sorted."""
        where, params = _where({"env_id": env_id})
        sql = f"SELECT DISTINCT task FROM steps{where} ORDER BY 1 NULLS LAST"
        return self._column(sql, params)

    def agents(self, env_id: str | None = None) -> list[str]:
        """Return the agent names present (of one env if given), sorted."""
        where, params = _where({"env_id": env_id})
        sql = f"SELECT DISTINCT agent FROM steps{where} ORDER BY 1 NULLS LAST"
        return self._column(sql, params)

    def episodes(self, env_id: str | None = None, agent: str | None = None) -> pd.DataFrame:
        """Return the ``episodes`` view, optionally filtered, oldest first."""
        where, params = _where({"env_id": env_id, "agent": agent})
        sql = f"SELECT * FROM episodes{where} ORDER BY started_at, campaign_id"
        return self.arrow(sql, params).to_pandas()

    def best_runs(self, env_id: str | None = None) -> pd.DataFrame:
        """Return the ``best_runs`` view (of one env if given)."""
        where, params = _where({"env_id": env_id})
        return self.arrow(
            f"SELECT * FROM best_runs{where} ORDER BY env_id, task", params
        ).to_pandas()

    def pareto_front(self, env_id: str | None = None, task: str | None = None) -> pd.DataFrame:
        """Return the non-dominated runs of each env and task: highest ``val_score``,
        lowest ``cost_seconds`` and ``n_params``.

        A run is left out when another run of its env and task is at least as good on
        all three and better on one; runs with equal objectives are all kept. Only
        finished runs (status ``"ok"``) with all three objectives count: failed runs,
        and rows without ``n_params`` (recorded before the column, or by an executor
        that does not report it), are left out.

        Args:
            env_id: Only runs of this env.
            task: Only runs on this task.

        Returns:
            One row per run on a front, with columns ``env_id``, ``task``, ``run_id``,
            ``campaign_id``, ``step``, ``agent``, ``val_score``, ``cost_seconds`` and
            ``n_params``, best score first within each env and task.
        """
        where, params = _where({"env_id": env_id, "task": task})
        where = where.replace(" WHERE ", " AND ", 1)
        return self.arrow(_PARETO_FRONT.format(where=where), params).to_pandas()

    def curves(self, run_ids: str | Sequence[str]) -> pd.DataFrame:
        """Return learning curves in long form.

        Args:
            run_ids: One run id or several.

        Returns:
            One row per (run, epoch) with columns ``run_id``, ``epoch`` and
            one column per key of the per-epoch dicts. Runs without a curve
            contribute no rows.
        """
        import pandas as pd

        ids = [run_ids] if isinstance(run_ids, str) else list(run_ids)
        table = self.arrow(
            "SELECT run_id, curve FROM steps WHERE list_contains(?::VARCHAR[], run_id)", [ids]
        )
        order = {run_id: i for i, run_id in enumerate(ids)}
        records: list[dict[str, Any]] = []
        pairs = zip(table.column("run_id").to_pylist(), table.column("curve").to_pylist())
        for run_id, curve in sorted(pairs, key=lambda p: order.get(p[0], 0)):
            try:
                epochs = json.loads(curve) if curve else []
            except ValueError:
                epochs = []
            for i, point in enumerate(epochs if isinstance(epochs, list) else []):
                record = {"run_id": run_id, "epoch": i}
                if isinstance(point, Mapping):
                    record.update(point)
                else:
                    record["value"] = point
                records.append(record)
        return pd.DataFrame.from_records(records, columns=None if records else ["run_id", "epoch"])

    def runs(
        self,
        env_id: str | None = None,
        *,
        agent: str | None = None,
        tasks: Sequence[str] | None = None,
        status: str | None = None,
        trained: bool = False,
        columns: Sequence[str] | None = None,
        order_by: Sequence[str] = ("campaign_id", "step"),
    ) -> pa.Table:
        """Return step rows, filtered, as an Arrow table.

        Args:
            env_id: Only steps of this env.
            agent: Only steps of this agent.
            tasks: Only steps on these tasks.
            status: Only steps with this status (e.g. ``"ok"``).
            trained: Only steps that trained a metaprogram (one was recorded
                and the action was valid).
            columns: Columns to return (default: all).
            order_by: Columns to sort by.

        Returns:
            The rows; columns of files written before a column existed are NULL.

        Raises:
            StoreError: If a column name is not a column of the store.
        """
        _check_columns([*(columns or ()), *order_by])
        where, params = _where({"env_id": env_id, "agent": agent, "status": status})
        clauses = [where[len(" WHERE ") :]] if where else []
        if tasks is not None:
            clauses.append("list_contains(?::VARCHAR[], task)")
            params.append(list(tasks))
        if trained:
            clauses.append(
                "metaprogram IS NOT NULL AND metaprogram <> 'null' "
                "AND status IS DISTINCT FROM 'invalid_action'"
            )
        select = ", ".join(columns) if columns else "*"
        sql = f"SELECT {select} FROM steps"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        if order_by:
            sql += " ORDER BY " + ", ".join(order_by)
        return self.arrow(sql, params)

    def run(self, run_id: str) -> dict[str, Any] | None:
        """Return the step row with this ``run_id`` as a dict, or None when there is none."""
        rows = self.arrow("SELECT * FROM steps WHERE run_id = ? LIMIT 1", [run_id]).to_pylist()
        return rows[0] if rows else None

    def resolve_run_id(self, prefix: str) -> str:
        """Return the run id that starts with ``prefix`` (a whole run id is its own prefix).

        Raises:
            NotFound: no run id starts with ``prefix``.
            ConfigError: several do (the message lists a few), or ``prefix`` is empty.
        """
        if not isinstance(prefix, str) or not prefix:
            raise ConfigError(
                f"run id prefix {shorten(prefix)} is empty; give a run id or its start"
            )
        matches = self.arrow(
            "SELECT run_id, count(*) OVER () AS n FROM "
            "(SELECT DISTINCT run_id FROM steps WHERE starts_with(run_id, ?)) "
            f"ORDER BY run_id LIMIT {_SHOWN_MATCHES}",
            [prefix],
        ).to_pylist()
        if not matches:
            raise NotFound(
                f"no stored step has a run_id starting with {shorten(prefix)}; list some with: "
                'researchgym query "SELECT run_id FROM steps LIMIT 5"'
            )
        if len(matches) > 1:
            n = matches[0]["n"]
            shown = ", ".join(m["run_id"] for m in matches) + (", ..." if n > len(matches) else "")
            raise ConfigError(
                f"run id prefix {shorten(prefix)} matches {n} runs ({shown}); "
                "give more of its characters"
            )
        return matches[0]["run_id"]

    def info(self) -> dict[str, Any]:
        """Summarize the store.

        Returns:
            ``path``, ``rows``, ``episodes``, ``envs``, ``generation``,
            ``files`` (``steps``, ``compacted``, ``skipped``, ``temporary``),
            ``size_bytes`` (visible files), ``disk_bytes`` (whole directory),
            ``skipped_files`` and ``schema`` (list of (column, type)).
        """
        with self._lock:
            counts = self.arrow(
                "SELECT count(*) AS n_rows, count(DISTINCT campaign_id) AS n_episodes, "
                "count(DISTINCT env_id) AS n_envs FROM steps"
            ).to_pylist()[0]
            schema = self._con.execute("DESCRIBE steps").fetchall()
            snap = self._snapshot
            assert snap is not None
            files = self._files
        size = 0
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                size += self._backend.stat(name).size
        disk, temporary = self._backend.usage()
        return {
            "path": str(self._fileset.root),
            "rows": counts["n_rows"],
            "episodes": counts["n_episodes"],
            "envs": counts["n_envs"],
            "generation": snap.generation,
            "files": {
                "steps": snap.steps_files,
                "compacted": snap.compacted_files,
                "skipped": len(self._bad),
                "temporary": temporary,
            },
            "size_bytes": size,
            "disk_bytes": disk,
            "skipped_files": [str(p) for p in self.skipped_files],
            "schema": [(row[0], row[1]) for row in schema],
        }

    # ------------------------------------------------------------------ episodes

    def iter_episodes(
        self,
        env_id: str | None = None,
        agent: str | None = None,
        task: str | None = None,
        *,
        batch_rows: int = 65536,
    ) -> Iterator[Episode]:
        """Iterate over episodes in campaign_id order, streaming from disk.

        Safe against concurrent compaction: if files vanish mid-stream the
        query resumes after the last episode yielded.

        Args:
            env_id: Only episodes of this env.
            agent: Only episodes of this agent.
            task: Only episodes on this task.
            batch_rows: Rows fetched per batch.

        Yields:
            :class:`Episode` objects.
        """
        where, params = _where({"env_id": env_id, "agent": agent, "task": task})
        columns = (
            "campaign_id, step, run_id, env_id, task, agent, seed, obs, next_obs, action_flat, "
            "reward, terminated, truncated, val_score"
        )
        last: str | None = None
        for attempt in range(_RETRIES):
            resume, resume_params = where, list(params)
            if last is not None:
                resume += (" AND " if resume else " WHERE ") + "campaign_id > ?"
                resume_params.append(last)
            sql = f"SELECT {columns} FROM steps{resume} ORDER BY campaign_id, step"
            cursor = self._con.cursor()
            try:
                try:
                    with self._lock:
                        self.refresh()
                        self._register_datasets(cursor)
                    reader = cursor.sql(sql, params=resume_params).to_arrow_reader(batch_rows)
                    carry: pa.Table | None = None
                    for batch in reader:
                        table = pa.Table.from_batches([batch])
                        if carry is not None:
                            table = pa.concat_tables([carry, table])
                        table = table.combine_chunks()
                        episodes, carry = _split_episodes(table, keep_last=True)
                        for episode in episodes:
                            yield episode
                            last = episode.campaign_id
                    if carry is not None and carry.num_rows:
                        for episode in _split_episodes(carry, keep_last=False)[0]:
                            yield episode
                    return
                except (duckdb.Error, FileNotFoundError) as exc:
                    with self._lock:
                        if isinstance(exc, duckdb.Error) and not self._recover(exc):
                            raise
                    time.sleep(0.001 * attempt)
            finally:
                cursor.close()
        raise StateError(f"could not read {self._fileset.root}: files kept vanishing mid-query")


class _Vectors:
    """A list<double> column prepared for slicing rows into (n, d) arrays."""

    def __init__(self, column: pa.ListArray, name: str) -> None:
        self.name = name
        self.offsets = np.asarray(column.offsets)
        self.values = column.values.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        self.lengths = np.diff(self.offsets)
        self.valid = column.is_valid().to_numpy(zero_copy_only=False) if column.null_count else None
        self.matrix = None  # set when every row has the same length: rows are then views
        n = len(self.lengths)
        if n and self.valid is None:
            d = int(self.lengths[0])
            if (self.lengths == d).all():
                start = int(self.offsets[0])
                self.matrix = self.values[start : start + n * d].reshape(n, d)

    def row(self, i: int) -> np.ndarray | None:
        """Row i as a (d,) array, or ``None`` when it is null."""
        if self.valid is not None and not self.valid[i]:
            return None
        start = int(self.offsets[i])
        return self.values[start : start + int(self.lengths[i])]

    def rows(self, a: int, b: int, campaign_id: str) -> np.ndarray:
        """Rows a..b as an (n, d) array; rows that are null come out as NaN."""
        if self.matrix is not None:
            return self.matrix[a:b]
        lengths = self.lengths[a:b]
        valid = np.ones(b - a, dtype=bool) if self.valid is None else self.valid[a:b]
        dims = np.unique(lengths[valid])
        if len(dims) == 0:
            return np.full((b - a, 0), np.nan)
        if len(dims) > 1:
            raise _schema.StoreError(
                f"{self.name} vectors of campaign {campaign_id} have differing lengths "
                f"{dims.tolist()}; a campaign must keep one vector size"
            )
        d = int(dims[0])
        out = np.full((b - a, d), np.nan)
        starts = self.offsets[a:b][valid]
        out[valid] = self.values[starts[:, None] + np.arange(d)]
        return out


def _split_episodes(table: pa.Table, keep_last: bool) -> tuple[list[Episode], pa.Table | None]:
    """Cut a campaign-sorted table into episodes; optionally hold back the last one."""
    import pyarrow.compute as pc  # only episode iteration needs Arrow compute kernels

    n = table.num_rows
    if n == 0:
        return [], None
    campaign = table.column("campaign_id").chunk(0)
    change = pc.not_equal(campaign.slice(1), campaign.slice(0, n - 1))
    bounds = np.flatnonzero(change.to_numpy(zero_copy_only=False)) + 1
    starts = np.concatenate([[0], bounds]).astype(np.int64)
    ends = np.concatenate([bounds, [n]]).astype(np.int64)
    carry = None
    if keep_last:
        carry = table.slice(int(starts[-1]))
        starts, ends = starts[:-1], ends[:-1]
    if len(starts) == 0:
        return [], carry

    def col(name: str) -> pa.Array:
        return table.column(name).chunk(0)

    first = pa.array(starts)  # per-episode values are read from each episode's first row
    campaigns = campaign.take(first).to_pylist()
    env_ids = col("env_id").take(first).to_pylist()
    tasks = col("task").take(first).to_pylist()
    agents = col("agent").take(first).to_pylist()
    seeds = col("seed").take(first).to_pylist()
    steps = col("step").to_numpy(zero_copy_only=False)
    run_ids = col("run_id").to_numpy(zero_copy_only=False)
    rewards = col("reward").to_numpy(zero_copy_only=False).astype(np.float64)
    terminated = pc.fill_null(col("terminated"), False).to_numpy(zero_copy_only=False)
    truncated = pc.fill_null(col("truncated"), False).to_numpy(zero_copy_only=False)
    val = col("val_score").to_numpy(zero_copy_only=False).astype(np.float64)
    obs = _Vectors(col("obs"), "obs")
    next_obs = _Vectors(col("next_obs"), "next_obs")
    actions = _Vectors(col("action_flat"), "action_flat")
    out = []
    for i, (a, b) in enumerate(zip(starts.tolist(), ends.tolist())):
        cid = campaigns[i]
        out.append(
            Episode(
                campaign_id=cid,
                env_id=env_ids[i],
                task=tasks[i],
                agent=agents[i],
                seed=seeds[i],
                steps=steps[a:b],
                run_ids=run_ids[a:b],
                observations=obs.rows(a, b, cid),
                final_observation=next_obs.row(b - 1),
                actions=actions.rows(a, b, cid),
                rewards=rewards[a:b],
                terminations=terminated[a:b],
                truncations=truncated[a:b],
                val_scores=val[a:b],
            )
        )
    return out, carry
