"""Parquet files: the store's write options, integrity checks, local atomic publish.

On a local disk every file is written under a temporary dot-name in its final directory,
fsynced, then renamed into place, so a reader or a killed writer never sees
half a file.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

SUFFIX = ".parquet"
TMP_SUFFIX = ".tmp"
#: Temporary files older than this (seconds) are left over from a killed writer.
STALE_TMP_SECONDS = 3600.0

# Dictionary encoding pays off for repetitive columns only; statistics only for
# columns queries filter or group on. Both cost time per row on other columns.
_DICTIONARY_COLUMNS = [
    "campaign_id", "step", "env_id", "env_version", "task", "agent", "seed", "metaprogram",
    "action", "curve", "status", "error", "schema_version", "host", "researchgym_version",
    "library_versions", "code_version", "task_features", "source_env_id",
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
_SMALL_WRITE_OPTIONS: dict[str, Any] = {
    "compression": "none",
    "use_dictionary": False,
    "write_statistics": _STATISTICS_COLUMNS,
}
_SMALL_ROWS = 64


class CorruptFileWarning(UserWarning):
    """A Parquet file in the store could not be read and was skipped."""


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


def publish_bytes(path: Path, write: Callable[[Any], None]) -> None:
    """Write a file under a temporary name next to ``path``, fsync, rename.

    Args:
        path: Final location.
        write: Called with the open binary file to fill it.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
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


def write_parquet(table: pa.Table, sink: Any) -> None:
    """Write ``table`` as Parquet to the writable file ``sink`` with the store's options."""
    if table.num_rows >= _SMALL_ROWS:
        pq.write_table(table, sink, **_WRITE_OPTIONS)
        return
    # A small file is built in memory and written at once, not in many small writes.
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer, **_SMALL_WRITE_OPTIONS)
    sink.write(buffer.getvalue())


def list_parquet(directory: Path) -> list[str]:
    """Names of the published Parquet files in ``directory`` (none if it is missing)."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return [n for n in names if n.endswith(SUFFIX) and not n.startswith(".")]


def unlink(path: Path) -> int:
    """Delete ``path``; return 1 if it was there, else 0."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return 0
    return 1


def remove_stale_temporaries(directory: Path, now: float | None = None) -> int:
    """Delete temporary files of killed writers (older than an hour) in ``directory``.

    Returns:
        How many were deleted.
    """
    now = time.time() if now is None else now
    removed = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(directory):
            if entry.name.startswith(".") and entry.name.endswith(TMP_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    if now - entry.stat().st_mtime > STALE_TMP_SECONDS:
                        removed += unlink(Path(entry.path))
    return removed


def quick_check(file: pa.NativeFile) -> str | None:
    """Cheaply check that a file looks like a complete Parquet file.

    Args:
        file: The file, open for random access.

    Returns:
        None when the header, footer magic and footer length are consistent,
        else a short reason.
    """
    try:
        size = file.size()
        if size < 12:
            return f"file too short ({size} bytes)"
        head = file.read_at(4, 0)
        tail = file.read_at(8, size - 8)
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


def deep_check(file: pa.NativeFile) -> str | None:
    """Read a whole Parquet file to check that it decodes.

    Args:
        file: The file, open for random access.

    Returns:
        None when it reads, else the error text.
    """
    reason = quick_check(file)
    if reason is not None:
        return reason
    try:
        pq.read_table(file)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoding failure means unreadable
        return f"{type(exc).__name__}: {exc}"
    return None


def warn_corrupt(location: str, reason: str) -> None:
    """Emit a :class:`CorruptFileWarning` naming the file at ``location``."""
    warnings.warn(
        f"skipping unreadable Parquet file {location}: {reason}. It was not written by a "
        f"completed store publish; move it out of the store or delete it.",
        CorruptFileWarning,
        stacklevel=3,
    )
