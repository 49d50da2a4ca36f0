"""The on-disk trajectory store: location, durable writes, snapshots, compaction.

Layout of a store directory::

    <root>/
      steps/<uuid>.parquet        files published by writers (one per append)
      compacted/<uuid>.parquet    files written by compaction
      _manifest.json              generation, compacted files, replaced files
      .compact.lock               held (flock) by the one compacting process

Every Parquet file is written under a temporary dot-name in its final
directory, fsynced, then renamed into place, so a reader or a killed writer
never sees half a file. Writers never coordinate: file names are random UUIDs.

Which files hold the visible rows is decided by the manifest, which is only
replaced atomically and whose ``generation`` only grows:

* a ``compacted/`` file is visible iff the manifest lists it in ``compacted``;
* a ``steps/`` file is visible iff the manifest does not list it in
  ``replaced``.

Compaction (one process at a time, under the lock) writes its output to
``compacted/`` (invisible: not yet listed), then publishes a manifest of the
next generation that lists the output and marks its inputs replaced, in one
rename. Only then are the inputs deleted. A file is therefore deleted only
after a published manifest made it invisible, and never becomes visible again.
A reader reads the manifest, lists ``steps/``, and reads the manifest again;
if the generation did not move, the listing is consistent with it (see
:meth:`Store.snapshot`). A file listed in a snapshot may still vanish before
it is read (a later compaction deleted it); readers then take a new snapshot
and retry.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from researchgym.store import schema as _schema

if TYPE_CHECKING:
    import pandas as pd

    from researchgym.store.query import Catalog, Episode

try:
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX platforms
    fcntl = None  # type: ignore[assignment]

#: Environment variable naming the store directory.
ENV_VAR = "RESEARCHGYM_STORE"
#: Store directory used when neither an argument nor the variable is given.
DEFAULT_DIRNAME = "datasets_store"

STEPS_DIR = "steps"
COMPACTED_DIR = "compacted"
MANIFEST = "_manifest.json"
LOCK = ".compact.lock"
_SUFFIX = ".parquet"
_TMP_SUFFIX = ".tmp"
_STALE_TMP_SECONDS = 3600.0

# Dictionary encoding pays off for repetitive columns only; statistics only for
# columns queries filter or group on. Both cost time per row on other columns.
_DICTIONARY_COLUMNS = [
    "campaign_id", "step", "env_id", "env_version", "task", "agent", "seed", "metaprogram",
    "action", "curve", "status", "error", "schema_version", "host", "researchgym_version",
    "library_versions", "code_version",
]  # fmt: skip
_STATISTICS_COLUMNS = [
    "campaign_id", "step", "run_id", "env_id", "env_version", "task", "agent", "seed",
    "val_score", "reward", "status", "started_at", "finished_at", "schema_version",
]  # fmt: skip
_WRITE_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "row_group_size": 128 * 1024,
    "use_dictionary": _DICTIONARY_COLUMNS,
    "write_statistics": _STATISTICS_COLUMNS,
}
# A file of a few rows gains nothing from compression or dictionaries; skipping
# them roughly halves the cost of a single-row publish.
_SMALL_WRITE_OPTIONS: dict[str, Any] = {"compression": "none", "use_dictionary": False}
_SMALL_ROWS = 64

ProgressCallback = Callable[[int, int], None]

#: Compacted files are merged again once this many have about the same size.
MERGE_FANOUT = 4


class CorruptFileWarning(UserWarning):
    """A Parquet file in the store could not be read and was skipped."""


# --------------------------------------------------------------------------- location


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
    raise TypeError(
        f"store= must be a path, a Store, None (default location) or False (no recording); "
        f"got {store!r} of type {type(store).__name__}"
    )


# --------------------------------------------------------------------------- rows -> Arrow


def _constant(value: Any, type_: pa.DataType, n: int) -> pa.Array:
    """A column of ``n`` copies of ``value``, built without per-row Python work."""
    if value is None:
        return pa.nulls(n, type=type_)
    if pa.types.is_string(type_):
        data = str(value).encode()
        if len(data) * n < 2**31 - 1:
            offsets = np.arange(n + 1, dtype=np.int64) * len(data)
            return pa.StringArray.from_buffers(
                n, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data * n)
            )
    if pa.types.is_integer(type_):
        return pa.array(np.full(n, value, dtype=np.int64)).cast(type_)
    return pa.array([value], type=type_).take(pa.array(np.zeros(n, dtype=np.int32)))


def _column(name: str, values: list[Any], type_: pa.DataType | None) -> pa.Array:
    try:
        return pa.array(values, type=type_)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
        if type_ is None:  # extra column of mixed or unsupported values: keep it as JSON text
            return pa.array(
                [None if v is None else json.dumps(v, default=repr) for v in values],
                type=pa.string(),
            )
        for i, value in enumerate(values):
            try:
                pa.array([value], type=type_)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
                raise ValueError(
                    f"row {i}: field {name!r} has value {value!r} of type "
                    f"{type(value).__name__}, which cannot be stored as {type_}; "
                    f"pass a value of that type (see researchgym.store.schema)"
                ) from exc
        raise ValueError(f"field {name!r} cannot be stored as {type_}: {exc}") from exc


def rows_to_table(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Convert row dicts to a table typed by the store schema.

    Keys of :data:`~researchgym.store.schema.ROW_FIELDS` are required; the
    provenance keys are filled in when absent; other keys are kept as extra
    columns (their type inferred, or JSON text when values are mixed).

    Args:
        rows: Row dicts following the row contract.

    Returns:
        A table whose first columns follow ``STEP_SCHEMA``.

    Raises:
        TypeError: If a row is not a mapping.
        ValueError: If a row lacks a required key, a required id is None, or
            a value does not fit its column type.
    """
    if not rows:
        return _schema.STEP_SCHEMA.empty_table()
    extras: dict[str, None] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise TypeError(f"row {i} is a {type(row).__name__}, expected a dict of columns")
        keys = row.keys()
        missing = _schema.REQUIRED_KEYS - keys
        if missing:
            raise ValueError(
                f"row {i} lacks required keys {sorted(missing)}; every row needs "
                f"{sorted(_schema.REQUIRED_KEYS)} (see researchgym.store.schema)"
            )
        for key in keys:
            if key not in _schema.FIELD_TYPES and key not in extras:
                extras[key] = None
    arrays: list[pa.Array] = []
    fields: list[pa.Field] = []
    for field in _schema.ROW_FIELDS:
        values = [row[field.name] for row in rows]
        if not field.nullable and any(v is None for v in values):
            raise ValueError(f"field {field.name!r} is None in a row; it must be set")
        arrays.append(_column(field.name, values, field.type))
        fields.append(field)
    defaults = _schema.provenance()
    for field in _schema.STORE_FIELDS:
        default = defaults[field.name]
        if any(field.name in row for row in rows):
            values = [row.get(field.name, default) for row in rows]
            arrays.append(_column(field.name, values, field.type))
        else:
            arrays.append(_constant(default, field.type, len(rows)))
        fields.append(field)
    for name in extras:
        array = _column(name, [row.get(name) for row in rows], None)
        arrays.append(array)
        fields.append(pa.field(name, array.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def normalize_table(table: pa.Table | pa.RecordBatch) -> pa.Table:
    """Cast a columnar batch of rows to the store schema.

    Args:
        table: Rows as columns; must hold every required column. Provenance
            columns are added when absent; extra columns are kept.

    Returns:
        The table with known columns cast to their schema types, in schema
        order, followed by the extra columns.

    Raises:
        ValueError: If a required column is missing or cannot be cast.
    """
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    names = set(table.column_names)
    missing = _schema.REQUIRED_KEYS - names
    if missing:
        raise ValueError(
            f"table lacks required columns {sorted(missing)} (see researchgym.store.schema)"
        )
    n = table.num_rows
    defaults = _schema.provenance()
    arrays: list[pa.ChunkedArray | pa.Array] = []
    fields: list[pa.Field] = []
    for field in _schema.STEP_SCHEMA:
        if field.name in names:
            column = table.column(field.name)
            if column.type != field.type:
                try:
                    column = column.cast(field.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                    raise ValueError(
                        f"column {field.name!r} of type {column.type} cannot be cast to "
                        f"{field.type}: {exc}"
                    ) from exc
            if not field.nullable and column.null_count:
                raise ValueError(f"column {field.name!r} has nulls; it must be set on every row")
        else:
            column = _constant(defaults[field.name], field.type, n)
        arrays.append(column)
        fields.append(field)
    for name in table.column_names:
        if name not in _schema.FIELD_TYPES:
            arrays.append(table.column(name))
            fields.append(table.schema.field(name))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_string(column.type):
        return column
    try:
        return column.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        values = [None if v is None else json.dumps(v, default=str) for v in column.to_pylist()]
        return pa.chunked_array([pa.array(values, type=pa.string())])


def _unify(tables: Sequence[pa.Table]) -> pa.Table:
    """Concatenate tables whose columns may differ, in store column order.

    An extra column whose type differs between tables is stored as text.
    """
    if len(tables) == 1:
        merged = tables[0]
    else:
        try:
            merged = pa.concat_tables(tables, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            types: dict[str, set[pa.DataType]] = {}
            for table in tables:
                for field in table.schema:
                    types.setdefault(field.name, set()).add(field.type)
            mixed = {n for n, t in types.items() if len(t) > 1 and n not in _schema.FIELD_TYPES}
            texts = []
            for table in tables:
                for i, name in enumerate(table.column_names):
                    if name in mixed:
                        table = table.set_column(i, name, _as_text(table.column(i)))
                texts.append(table)
            merged = pa.concat_tables(texts, promote_options="permissive")
    order = [f.name for f in _schema.STEP_SCHEMA if f.name in merged.column_names]
    order += [c for c in merged.column_names if c not in _schema.FIELD_TYPES]
    merged = merged.select(order)
    fields = []
    for name in order:
        type_ = _schema.FIELD_TYPES.get(name, merged.schema.field(name).type)
        fields.append(pa.field(name, type_))
    return merged.cast(pa.schema(fields))


# --------------------------------------------------------------------------- filesystem


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _publish_bytes(path: Path, write: Callable[[Any], None]) -> None:
    """Write a file under a temporary name next to ``path``, fsync, rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}{_TMP_SUFFIX}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _write_parquet(table: pa.Table, path: Path) -> None:
    options = _SMALL_WRITE_OPTIONS if table.num_rows < _SMALL_ROWS else _WRITE_OPTIONS
    _publish_bytes(path, lambda f: pq.write_table(table, f, **options))


def _list_parquet(directory: Path) -> list[str]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return [n for n in names if n.endswith(_SUFFIX) and not n.startswith(".")]


def quick_check(path: Path) -> str | None:
    """Cheaply check that a file looks like a complete Parquet file.

    Args:
        path: The file.

    Returns:
        None when the header, footer magic and footer length are consistent,
        else a short reason.
    """
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < 12:
                return f"file too short ({size} bytes)"
            head = f.read(4)
            f.seek(size - 8)
            tail = f.read(8)
    except FileNotFoundError:
        raise
    except OSError as exc:
        return f"cannot read it ({exc})"
    if head != b"PAR1" or tail[4:] != b"PAR1":
        return "missing Parquet magic bytes (truncated or not Parquet)"
    footer = int.from_bytes(tail[:4], "little")
    if footer + 12 > size:
        return f"footer length {footer} exceeds file size {size} (truncated)"
    return None


def deep_check(path: Path) -> str | None:
    """Read a whole Parquet file to check that it decodes.

    Args:
        path: The file.

    Returns:
        None when it reads, else the error text.
    """
    reason = quick_check(path)
    if reason is not None:
        return reason
    try:
        pq.read_table(path)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoding failure means unreadable
        return f"{type(exc).__name__}: {exc}"
    return None


def warn_corrupt(path: Path, reason: str) -> None:
    """Emit a :class:`CorruptFileWarning` naming ``path``."""
    warnings.warn(
        f"skipping unreadable Parquet file {path}: {reason}. It was not written by a "
        f"completed store publish; move it out of the store or delete it.",
        CorruptFileWarning,
        stacklevel=3,
    )


# --------------------------------------------------------------------------- manifest


@dataclasses.dataclass(frozen=True)
class Manifest:
    """Published state of compaction.

    Attributes:
        generation: Grows by one with every published manifest.
        compacted: Visible compacted file name -> row count.
        replaced: Names of ``steps/`` files whose rows live in compacted files.
    """

    generation: int = 0
    compacted: Mapping[str, int] = dataclasses.field(default_factory=dict)
    replaced: frozenset[str] = frozenset()

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": 1,
                "generation": self.generation,
                "compacted": dict(sorted(self.compacted.items())),
                "replaced": sorted(self.replaced),
            },
            indent=1,
        )


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """A consistent view of which files hold the store's rows.

    Attributes:
        generation: Manifest generation the listing is consistent with.
        files: Absolute paths of visible Parquet files (compacted first).
        steps_files: How many of them are writer files in ``steps/``.
    """

    generation: int
    files: tuple[Path, ...]
    steps_files: int

    @property
    def compacted_files(self) -> int:
        return len(self.files) - self.steps_files


@dataclasses.dataclass(frozen=True)
class CompactionResult:
    """What one :meth:`Store.compact` call did.

    Attributes:
        skipped: True when another process held the compaction lock.
        inputs: Files whose rows were rewritten.
        outputs: Compacted files written.
        rows: Rows rewritten.
        removed: Files deleted (inputs, leftovers of interrupted compactions,
            stale temporary files).
        generation: Manifest generation after the call.
    """

    skipped: bool = False
    inputs: int = 0
    outputs: int = 0
    rows: int = 0
    removed: int = 0
    generation: int = 0


# --------------------------------------------------------------------------- store


class Store:
    """A Parquet trajectory store with a DuckDB catalog over it.

    Safe for many writing processes at once; one :class:`Store` object should
    be used by one thread at a time for queries.

    Args:
        path: Store directory (created on first write).
        auto_compact: When set, every ``auto_compact_every`` published files
            this object tries (without waiting for the lock) to compact once
            the store holds at least this many small files. None disables it.
        auto_compact_every: Published files between checks for ``auto_compact``.
        cache_small_files: Let the query catalog keep the rows of small files
            in memory (see :class:`~researchgym.store.query.Catalog`); worth it
            when one object runs more than a query or two.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        auto_compact: int | None = 1024,
        auto_compact_every: int = 256,
        cache_small_files: bool = True,
    ) -> None:
        self.path = Path(path).expanduser().absolute()
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"store path {self.path} exists and is not a directory")
        self.steps_dir = self.path / STEPS_DIR
        self.compacted_dir = self.path / COMPACTED_DIR
        self.manifest_path = self.path / MANIFEST
        self.auto_compact = auto_compact
        self.auto_compact_every = max(1, auto_compact_every)
        self._appends = 0
        self._dirs_ready = False
        self._manifest_cache: tuple[bytes, Manifest] | None = None
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

    def write_table(self, folder: str, name: str, table: pa.Table) -> Path:
        """Atomically write (or replace) ``<store>/<folder>/<name>.parquet``, beside the steps.

        For records that are not steps (e.g. a planner's rejected proposals): the
        ``steps`` views and compaction ignore them, and DuckDB reads them with
        ``read_parquet('<store>/<folder>/*.parquet')``.
        """
        plain = all(re.fullmatch(r"\w[\w.-]*", part) for part in (folder, name))
        if not plain or folder in (STEPS_DIR, COMPACTED_DIR):
            raise ValueError(
                f"folder={folder!r} and name={name!r} must be plain file names (letters, digits, _ . -), "
                f"and the folder not one of the store's own ({STEPS_DIR!r}, {COMPACTED_DIR!r})"
            )
        path = self.path / folder / f"{name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_parquet(table, path)
        return path

    def _ensure_dirs(self) -> None:
        if not self._dirs_ready:
            self.steps_dir.mkdir(parents=True, exist_ok=True)
            self.compacted_dir.mkdir(exist_ok=True)
            self._dirs_ready = True

    def _publish(self, table: pa.Table) -> Path:
        self._ensure_dirs()
        path = self.steps_dir / f"{uuid.uuid4().hex}{_SUFFIX}"
        try:
            _write_parquet(table, path)
        except FileNotFoundError:  # the directory was removed under us
            self._dirs_ready = False
            self._ensure_dirs()
            _write_parquet(table, path)
        return path

    def append(self, row: Mapping[str, Any]) -> Path:
        """Durably record one step.

        The row is written as its own Parquet file and published atomically;
        when this returns, the row survives a crash of this process.

        Args:
            row: One step following the row contract (see
                :mod:`researchgym.store.schema`).

        Returns:
            The published file.

        Raises:
            ValueError: If the row is malformed.
        """
        path = self._publish(rows_to_table([row]))
        self._after_write()
        return path

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
        self._publish(table)
        self._after_write()
        return table.num_rows

    def _after_write(self) -> None:
        self._appends += 1
        if self.auto_compact is None or self._appends < self.auto_compact_every:
            return
        self._appends = 0
        if len(_list_parquet(self.steps_dir)) < self.auto_compact:
            return
        try:
            self.compact(min_files=self.auto_compact, wait=False)
        except Exception as exc:  # noqa: BLE001 - recording must not fail because of it
            warnings.warn(f"automatic compaction of {self.path} failed: {exc}", stacklevel=3)

    # ------------------------------------------------------------------ reading state

    def read_manifest(self) -> Manifest:
        """Return the currently published manifest (empty if none yet)."""
        for _ in range(20):
            try:
                with open(self.manifest_path, "rb") as f:
                    raw = f.read()
                cached = self._manifest_cache
                if cached is not None and cached[0] == raw:
                    return cached[1]
                data = json.loads(raw)
            except FileNotFoundError:
                return Manifest()
            except (OSError, ValueError):  # pragma: no cover - replaced mid-read
                time.sleep(0.001)
                continue
            manifest = Manifest(
                generation=int(data["generation"]),
                compacted={str(k): int(v) for k, v in data["compacted"].items()},
                replaced=frozenset(data["replaced"]),
            )
            self._manifest_cache = (raw, manifest)
            return manifest
        raise RuntimeError(f"cannot read store manifest {self.manifest_path}")

    def snapshot(self) -> Snapshot:
        """List the files holding the visible rows, consistently.

        Returns:
            A snapshot whose listing matches one manifest generation.
        """
        for _ in range(1000):
            manifest = self.read_manifest()
            names = _list_parquet(self.steps_dir)
            if self.read_manifest().generation == manifest.generation:
                break
        else:  # pragma: no cover - compaction publishing continuously
            raise RuntimeError(f"store {self.path} changed during every listing attempt")
        steps = sorted(n for n in names if n not in manifest.replaced)
        compacted = [self.compacted_dir / n for n in sorted(manifest.compacted)]
        files = tuple(compacted + [self.steps_dir / n for n in steps])
        return Snapshot(manifest.generation, files, len(steps))

    # ------------------------------------------------------------------ compaction

    @contextlib.contextmanager
    def _lock(self, wait: bool) -> Iterator[bool]:
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                flags = fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB)
                try:
                    fcntl.flock(fd, flags)
                except BlockingIOError:
                    yield False
                    return
            yield True
        finally:
            os.close(fd)  # releases the flock

    def _publish_manifest(self, manifest: Manifest) -> None:
        text = manifest.to_json().encode()
        _publish_bytes(self.manifest_path, lambda f: f.write(text))

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

        Writer files are merged into a new compacted file. Compacted files
        under half of ``target_rows`` are merged again once
        :data:`MERGE_FANOUT` of them have about the same size (so each row is
        rewritten only a few times as a store grows), or all at once with
        ``full=True``. Safe while other processes write and read. Also removes
        what an interrupted compaction left behind and temporary files older
        than an hour.

        Args:
            min_files: Compact writer files only if at least this many are visible.
            target_rows: Rows per output file.
            max_files: Compact at most this many writer files in this call.
            full: Merge every compacted file under half of ``target_rows``.
            wait: Wait for another process's compaction to finish; when
                False, return at once with ``skipped=True`` instead.
            progress: Called with (files done, files total) while reading.

        Returns:
            What was done.
        """
        if min_files < 1 or target_rows < 1:
            raise ValueError(
                f"min_files and target_rows must be >= 1, got {min_files} and {target_rows}"
            )
        if not self.path.exists():
            return CompactionResult()
        with self._lock(wait) as acquired:
            if not acquired:
                return CompactionResult(skipped=True, generation=self.read_manifest().generation)
            return self._compact_locked(min_files, target_rows, max_files, full, progress)

    def _compact_locked(
        self,
        min_files: int,
        target_rows: int,
        max_files: int | None,
        full: bool,
        progress: ProgressCallback | None,
    ) -> CompactionResult:
        self._ensure_dirs()
        manifest = self.read_manifest()
        removed = self._remove_leftovers(manifest)
        steps = sorted(n for n in _list_parquet(self.steps_dir) if n not in manifest.replaced)
        if max_files is not None:
            steps = steps[:max_files]
        if len(steps) < min_files:
            steps = []
        small = _merge_candidates(manifest.compacted, target_rows, full)
        if not steps and not small:
            if manifest.replaced:  # everything replaced is deleted by now: prune the list
                pruned = Manifest(manifest.generation + 1, manifest.compacted, frozenset())
                self._publish_manifest(pruned)
                return CompactionResult(removed=removed, generation=pruned.generation)
            return CompactionResult(removed=removed, generation=manifest.generation)

        inputs = [(self.compacted_dir / n, True) for n in small]
        inputs += [(self.steps_dir / n, False) for n in steps]
        total = len(inputs)
        outputs: dict[str, int] = {}
        used_steps: list[str] = []
        used_compacted: list[str] = []
        pending: list[pa.Table] = []
        pending_rows = 0

        def flush() -> None:
            nonlocal pending, pending_rows
            if not pending:
                return
            table = _unify(pending)
            name = f"{uuid.uuid4().hex}{_SUFFIX}"
            _write_parquet(table, self.compacted_dir / name)
            outputs[name] = table.num_rows
            pending, pending_rows = [], 0

        for done, (path, is_compacted) in enumerate(inputs, start=1):
            reason = quick_check(path)
            table = None
            if reason is None:
                try:
                    table = pq.read_table(path)
                except Exception as exc:  # noqa: BLE001 - unreadable file: skip it
                    reason = f"{type(exc).__name__}: {exc}"
            if table is None:
                warn_corrupt(path, reason or "unreadable")
            else:
                pending.append(table)
                pending_rows += table.num_rows
                (used_compacted if is_compacted else used_steps).append(path.name)
                if pending_rows >= target_rows:
                    flush()
            if progress is not None:
                progress(done, total)
        flush()

        compacted = {n: r for n, r in manifest.compacted.items() if n not in used_compacted}
        compacted.update(outputs)
        new = Manifest(manifest.generation + 1, compacted, frozenset(used_steps))
        self._publish_manifest(new)
        for name in used_steps:
            removed += _unlink(self.steps_dir / name)
        for name in used_compacted:
            removed += _unlink(self.compacted_dir / name)
        return CompactionResult(
            inputs=len(used_steps) + len(used_compacted),
            outputs=len(outputs),
            rows=sum(outputs.values()),
            removed=removed,
            generation=new.generation,
        )

    def _remove_leftovers(self, manifest: Manifest) -> int:
        """Delete files that no reader can see (caller holds the lock)."""
        removed = 0
        for name in manifest.replaced:  # inputs of a compaction interrupted before deleting
            removed += _unlink(self.steps_dir / name)
        for name in _list_parquet(self.compacted_dir):  # outputs never published
            if name not in manifest.compacted:
                removed += _unlink(self.compacted_dir / name)
        now = time.time()
        for directory in (self.steps_dir, self.compacted_dir, self.path):
            with contextlib.suppress(FileNotFoundError):
                for entry in os.scandir(directory):
                    if entry.name.startswith(".") and entry.name.endswith(_TMP_SUFFIX):
                        with contextlib.suppress(FileNotFoundError):
                            if now - entry.stat().st_mtime > _STALE_TMP_SECONDS:
                                removed += _unlink(Path(entry.path))
        return removed

    # ------------------------------------------------------------------ queries

    @property
    def catalog(self) -> Catalog:
        """The DuckDB catalog over this store (opened on first use)."""
        if self._catalog is None:
            from researchgym.store.query import Catalog

            self._catalog = Catalog(self, cache_small_files=self.cache_small_files)
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

        See :meth:`researchgym.store.query.Catalog.iter_episodes`.
        """
        return self.catalog.iter_episodes(env_id, agent, task, batch_rows=batch_rows)

    def info(self) -> dict[str, Any]:
        """Summarize the store: rows, episodes, files, bytes, schema."""
        return self.catalog.info()

    def export(
        self, path: str | os.PathLike[str], format: str = "parquet", env_id: str | None = None
    ) -> int:
        """Export step rows to one Parquet or CSV file.

        See :func:`researchgym.store.export.export_table`.
        """
        from researchgym.store.export import export_table

        return export_table(self, path, format=format, env_id=env_id)

    def export_minari(self, dataset_id: str, env_id: str | None = None, **kwargs: Any) -> Any:
        """Export episodes as a Minari dataset.

        See :func:`researchgym.store.export.export_minari`.
        """
        from researchgym.store.export import export_minari

        return export_minari(self, dataset_id, env_id=env_id, **kwargs)


def _merge_candidates(compacted: Mapping[str, int], target_rows: int, full: bool) -> list[str]:
    """Compacted files to merge again: undersized ones of one size tier, or all with ``full``."""
    undersized = sorted(
        (n for n, r in compacted.items() if r < target_rows // 2), key=compacted.get
    )
    if full:
        return undersized if len(undersized) > 1 else []
    tiers: dict[int, list[str]] = {}
    for name in undersized:
        tiers.setdefault(int(math.log(max(compacted[name], 1), MERGE_FANOUT)), []).append(name)
    for tier in sorted(tiers):
        if len(tiers[tier]) >= MERGE_FANOUT:
            return tiers[tier]
    return []


def _unlink(path: Path) -> int:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return 0
    return 1


__all__ = [
    "COMPACTED_DIR",
    "DEFAULT_DIRNAME",
    "ENV_VAR",
    "STEPS_DIR",
    "CompactionResult",
    "CorruptFileWarning",
    "Manifest",
    "Snapshot",
    "Store",
    "deep_check",
    "normalize_table",
    "open_store",
    "quick_check",
    "resolve_store_path",
    "rows_to_table",
    "warn_corrupt",
]
