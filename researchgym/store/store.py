"""The trajectory store: where it is, and the :class:`Store` that writes, compacts and reads it.

:class:`Store` is a facade over the layers below it: a storage backend
(:mod:`~researchgym.store.backend`) holds the files, the file set
(:mod:`~researchgym.store.manifest`) decides which of them are visible and
compacts them, and the catalog (:mod:`~researchgym.store.catalog`) answers
SQL over them with DuckDB.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self, overload

import pyarrow as pa

from researchgym.errors import ConfigTypeError, shorten
from researchgym.store.backend import LocalBackend, StorageBackend
from researchgym.store.manifest import (
    COMPACTED_DIR,
    STEPS_DIR,
    CompactionResult,
    FileSet,
    Manifest,
    ProgressCallback,
    Snapshot,
)
from researchgym.store.schema import StoreError
from researchgym.store.tables import normalize_table, rows_to_table

if TYPE_CHECKING:
    import pandas as pd

    from researchgym.store.catalog import Catalog, Episode

#: Environment variable naming the store directory.
ENV_VAR = "RESEARCHGYM_STORE"
#: Store directory used when neither an argument nor the variable is given.
DEFAULT_DIRNAME = "datasets_store"

#: Storage backends by name (see :class:`~researchgym.store.backend.StorageBackend`).
BACKENDS: dict[str, type[StorageBackend]] = {"local": LocalBackend}


def store_option(text: str | None) -> str | bool | None:
    """The ``store=`` argument a command-line ``--store`` value stands for.

    ``None`` (not given) means the default location, ``"none"`` (any case) means
    record nothing (``False``), anything else is a directory.
    """
    return False if text is not None and text.lower() == "none" else text


def resolve_store_path(store: str | os.PathLike[str] | None = None) -> Path:
    """Return the absolute store directory for an explicit or default location.

    Args:
        store: Directory of the store. When None, the ``RESEARCHGYM_STORE``
            environment variable is used, else ``datasets_store/`` in the
            current working directory.

    Returns:
        The absolute path (it need not exist yet).
    """
    if store is None:
        store = os.environ.get(ENV_VAR) or DEFAULT_DIRNAME
    return Path(store).expanduser().absolute()


@overload
def open_store(store: Literal[False], **kwargs: Any) -> None: ...
@overload
def open_store(
    store: Store | str | os.PathLike[str] | Literal[True] | None = None, **kwargs: Any
) -> Store: ...
@overload
def open_store(
    store: Store | str | os.PathLike[str] | bool | None = None, **kwargs: Any
) -> Store | None: ...
def open_store(
    store: Store | str | os.PathLike[str] | bool | None = None, **kwargs: Any
) -> Store | None:
    """Open the trajectory store a ``store=`` argument designates.

    Args:
        store: A :class:`Store` (returned as is), a directory, None or True
            (use ``RESEARCHGYM_STORE``, else ``./datasets_store``), or False
            (recording disabled).
        **kwargs: Passed to :class:`Store` when a new one is opened.

    Returns:
        The store, or None when ``store`` is False.

    Raises:
        TypeError: If ``store`` is of another type.
    """
    if store is False:
        return None
    if isinstance(store, Store):
        return store
    if store is None or store is True:
        return Store(resolve_store_path(None), **kwargs)
    if isinstance(store, (str, os.PathLike)):
        return Store(resolve_store_path(store), **kwargs)
    raise ConfigTypeError(
        f"store= must be a path, a Store, None (default location) or False (no recording); "
        f"got {shorten(store)} of type {type(store).__name__}"
    )


class Store:
    """A Parquet trajectory store with a DuckDB catalog over it.

    Safe for many writing processes at once; one :class:`Store` object should
    be used by one thread at a time for queries. Opening a store and reading
    it writes nothing.

    Args:
        path: Store directory (created on first write).
        auto_compact: When set, every ``auto_compact_every`` published files
            this object tries (without waiting for the lock) to compact once
            the store holds at least this many small files. None disables it.
        auto_compact_every: Published files between checks for ``auto_compact``.
        cache_small_files: Let the query catalog keep the rows of small files
            in memory (see :class:`~researchgym.store.catalog.Catalog`); worth it
            when one object runs more than a query or two.
        backend: Name of the storage backend in :data:`BACKENDS`.

    Attributes:
        path: The store directory.
        files: The store's files (:class:`~researchgym.store.manifest.FileSet`).

    Raises:
        StoreError: If ``path`` is a file or ``backend`` is unknown.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        auto_compact: int | None = 1024,
        auto_compact_every: int = 256,
        cache_small_files: bool = True,
        backend: str = "local",
    ) -> None:
        self.path = Path(path).expanduser().absolute()
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(
                f"store path {self.path} exists and is not a directory; "
                f"pass a directory (it is created on first write)"
            )
        if backend not in BACKENDS:
            raise StoreError(
                f"unknown store backend {shorten(backend)}; use one of {', '.join(BACKENDS)}"
            )
        self.files = FileSet(BACKENDS[backend](self.path))
        self.auto_compact = auto_compact
        self.auto_compact_every = max(1, auto_compact_every)
        self._appends = 0
        self.cache_small_files = cache_small_files
        self._catalog: Catalog | None = None

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the DuckDB connection, if one was opened."""
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None

    # ------------------------------------------------------------------ writing

    def write_table(self, folder: str, name: str, table: pa.Table) -> str:
        """Atomically write (or replace) ``<store>/<folder>/<name>.parquet``, beside the steps.

        For records that are not steps (e.g. a planner's rejected proposals): the
        ``steps`` views and compaction ignore them, and DuckDB reads them with
        ``read_parquet('<store>/<folder>/*.parquet')``.

        Returns:
            The file's location (a path for the local backend).

        Raises:
            StoreError: If ``folder`` or ``name`` is not a plain file name, or
                ``folder`` is one of the store's own.
        """
        plain = all(re.fullmatch(r"\w[\w.-]*", part) for part in (folder, name))
        if not plain or folder in (STEPS_DIR, COMPACTED_DIR):
            raise StoreError(
                f"folder={shorten(folder)} and name={shorten(name)} must be plain file names "
                f"(letters, digits, _ . -), and the folder not one of the store's own "
                f"({STEPS_DIR!r}, {COMPACTED_DIR!r})"
            )
        return self.files.backend.write_table(f"{folder}/{name}.parquet", table)

    def append(self, row: Mapping[str, Any]) -> str:
        """Durably record one step.

        The row is written as its own Parquet file and published atomically;
        when this returns, the row survives a crash of this process.

        Args:
            row: One step following the row contract (see
                :mod:`researchgym.store.schema`).

        Returns:
            The published file's location (a path for the local backend).

        Raises:
            ValueError: If the row is malformed.
        """
        location = self.files.publish(rows_to_table([row]))
        self._after_write()
        return location

    def append_many(self, rows: Iterable[Mapping[str, Any]] | pa.Table | pa.RecordBatch) -> int:
        """Durably record many steps as one atomically published file.

        Args:
            rows: Row dicts, or a table/record batch with the row columns (the
                fast path).

        Returns:
            The number of rows written.

        Raises:
            ValueError: If a row or column is malformed.
        """
        if isinstance(rows, (pa.Table, pa.RecordBatch)):
            table = normalize_table(rows)
        else:
            table = rows_to_table(list(rows))
        if table.num_rows == 0:
            return 0
        self.files.publish(table)
        self._after_write()
        return table.num_rows

    def _after_write(self) -> None:
        self._appends += 1
        if self.auto_compact is None or self._appends < self.auto_compact_every:
            return
        self._appends = 0
        if self.files.small_files() < self.auto_compact:
            return
        try:
            self.compact(min_files=self.auto_compact, wait=False)
        except Exception as exc:  # noqa: BLE001 - recording must not fail because of it
            warnings.warn(f"automatic compaction of {self.path} failed: {exc}", stacklevel=3)

    # ------------------------------------------------------------------ files

    def read_manifest(self) -> Manifest:
        """Return the currently published manifest (empty if none yet)."""
        return self.files.read_manifest()

    def snapshot(self) -> Snapshot:
        """List the files holding the visible rows, consistently (see :class:`FileSet`)."""
        return self.files.snapshot()

    def compact(
        self,
        *,
        min_files: int = 16,
        target_rows: int = 1_000_000,
        max_files: int | None = None,
        full: bool = False,
        wait: bool = True,
        progress: ProgressCallback | None = None,
    ) -> CompactionResult:
        """Merge small files into large ones, atomically for readers.

        See :meth:`researchgym.store.manifest.FileSet.compact` for the arguments.
        """
        return self.files.compact(
            min_files=min_files,
            target_rows=target_rows,
            max_files=max_files,
            full=full,
            wait=wait,
            progress=progress,
        )

    # ------------------------------------------------------------------ queries

    @property
    def catalog(self) -> Catalog:
        """The DuckDB catalog over this store (opened on first use)."""
        if self._catalog is None:
            from researchgym.store.catalog import Catalog  # DuckDB loads on first query

            self._catalog = Catalog(self.files, cache_small_files=self.cache_small_files)
        return self._catalog

    def sql(self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pa.Table:
        """Run SQL over the store's views and return an Arrow table.

        Views: ``steps`` (one row per step), ``episodes`` (one row per
        campaign) and ``best_runs`` (best validation score per env and task).

        Args:
            query: DuckDB SQL.
            params: Values for ``?`` or ``$name`` placeholders.

        Returns:
            The result.
        """
        return self.catalog.arrow(query, params)

    def df(
        self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> pd.DataFrame:
        """Like :meth:`sql` but return a pandas DataFrame."""
        return self.catalog.arrow(query, params).to_pandas()

    def envs(self) -> list[str]:
        """Return the env ids present in the store, sorted."""
        return self.catalog.envs()

    def tasks(self, env_id: str | None = None) -> list[str]:
        """Return the task names present (of one env if given), sorted."""
        return self.catalog.tasks(env_id)

    def agents(self, env_id: str | None = None) -> list[str]:
        """Return the agent names present (of one env if given), sorted."""
        return self.catalog.agents(env_id)

    def episodes(self, env_id: str | None = None, agent: str | None = None) -> pd.DataFrame:
        """Return one row per episode (campaign), optionally filtered."""
        return self.catalog.episodes(env_id, agent)

    def best_runs(self, env_id: str | None = None) -> pd.DataFrame:
        """Return the best run (highest val_score) per env and task."""
        return self.catalog.best_runs(env_id)

    def pareto_front(self, env_id: str | None = None, task: str | None = None) -> pd.DataFrame:
        """Return the runs on each env and task's Pareto front of score, seconds and parameters.

        See :meth:`researchgym.store.catalog.Catalog.pareto_front`.
        """
        return self.catalog.pareto_front(env_id, task)

    def curves(self, run_ids: str | Sequence[str]) -> pd.DataFrame:
        """Return the learning curves of runs, one row per (run, epoch)."""
        return self.catalog.curves(run_ids)

    def iter_episodes(
        self,
        env_id: str | None = None,
        agent: str | None = None,
        task: str | None = None,
        *,
        batch_rows: int = 65536,
    ) -> Iterator[Episode]:
        """Iterate over episodes as numpy arrays, for offline learning.

        See :meth:`researchgym.store.catalog.Catalog.iter_episodes`.
        """
        return self.catalog.iter_episodes(env_id, agent, task, batch_rows=batch_rows)

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
        """Step rows, filtered, as an Arrow table.

        See :meth:`researchgym.store.catalog.Catalog.runs`.
        """
        return self.catalog.runs(
            env_id,
            agent=agent,
            tasks=tasks,
            status=status,
            trained=trained,
            columns=columns,
            order_by=order_by,
        )

    def run(self, run_id: str) -> dict[str, Any] | None:
        """Return the step with this ``run_id`` as a dict of columns, or None when there is none."""
        return self.catalog.run(run_id)

    def resolve_run_id(self, prefix: str) -> str:
        """Return the run id that starts with ``prefix``; see
        :meth:`researchgym.store.catalog.Catalog.resolve_run_id`."""
        return self.catalog.resolve_run_id(prefix)

    def info(self) -> dict[str, Any]:
        """Summarize the store: rows, episodes, files, bytes, schema."""
        return self.catalog.info()
