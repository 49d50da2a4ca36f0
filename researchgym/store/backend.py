"""Where a store keeps its files: the storage interface and the local-disk backend.

A backend stores Parquet tables and small blobs (the manifest) under names
relative to the store's root (``steps/<uuid>.parquet``, ``_manifest.json``),
publishes each atomically, opens them for pyarrow, and serializes compactions
with a lock. The manifest and the catalog above it reach storage only through
this interface, so a second backend (e.g. Parquet on a ``pyarrow.fs``
filesystem) is one new subclass listed in :data:`researchgym.store.store.BACKENDS`.
"""

from __future__ import annotations

import abc
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from researchgym.store import files

try:
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX platforms
    fcntl = None  # type: ignore[assignment]


class FileInfo(NamedTuple):
    """Size and modification time of a stored file."""

    size: int
    mtime_ns: int


class StorageBackend(abc.ABC):
    """Storage of a store's files under one root.

    Files are named by ``/``-separated paths relative to the root. Methods that
    read a file raise :class:`FileNotFoundError` when it is gone (a compaction
    may delete a file between listing and reading it).

    Args:
        root: The store's location.
    """

    #: Whether DuckDB's ``read_parquet`` reads :meth:`location` itself; when
    #: False the catalog scans the files through :meth:`open_input`.
    duckdb_reads_locations: ClassVar[bool] = True

    def __init__(self, root: Path) -> None:
        self.root = root

    @abc.abstractmethod
    def location(self, name: str) -> str:
        """Where the file ``name`` is: the path or URL DuckDB reads, and messages show."""

    @abc.abstractmethod
    def exists(self) -> bool:
        """Whether anything has been stored yet."""

    @abc.abstractmethod
    def list_files(self, folder: str) -> list[str]:
        """Names (without the folder) of the published Parquet files in ``folder``."""

    @abc.abstractmethod
    def stat(self, name: str) -> FileInfo:
        """Size and modification time of the file ``name``."""

    @abc.abstractmethod
    def open_input(self, name: str) -> pa.NativeFile:
        """Open the file ``name`` for random-access reading by pyarrow."""

    @abc.abstractmethod
    def write_table(self, name: str, table: pa.Table) -> str:
        """Atomically publish ``table`` as the Parquet file ``name``; return its location.

        Written with :func:`researchgym.store.files.write_parquet`; folders are
        created as needed.
        """

    @abc.abstractmethod
    def delete(self, name: str) -> int:
        """Delete the file ``name``; return 1 if it was there, else 0."""

    @abc.abstractmethod
    def read_bytes(self, name: str) -> bytes | None:
        """The blob ``name``, or None when there is none."""

    @abc.abstractmethod
    def write_bytes(self, name: str, data: bytes) -> None:
        """Atomically publish the blob ``name``."""

    @abc.abstractmethod
    def lock(self, name: str, wait: bool) -> contextlib.AbstractContextManager[bool]:
        """Hold the exclusive lock ``name``; yields False when ``wait`` is False and it is taken."""

    @abc.abstractmethod
    def remove_stale(self, folders: tuple[str, ...]) -> int:
        """Delete temporary files that killed writers left in ``folders``; return how many."""

    @abc.abstractmethod
    def usage(self) -> tuple[int, int]:
        """Bytes stored under the root, and how many of its files are temporary."""

    def read_table(self, name: str) -> pa.Table:
        """Read the Parquet file ``name``."""
        with self.open_input(name) as file:
            return pq.read_table(file)

    def check(self, name: str, *, deep: bool = False) -> str | None:
        """Check that ``name`` is a complete Parquet file; None, or why it is not.

        Args:
            name: The file.
            deep: Decode every page instead of checking the header and footer.
        """
        with self.open_input(name) as file:
            return files.deep_check(file) if deep else files.quick_check(file)


class LocalBackend(StorageBackend):
    """Files in a directory of the local file system, published by rename."""

    def location(self, name: str) -> str:
        return str(self.root / name)

    def exists(self) -> bool:
        return self.root.exists()

    def list_files(self, folder: str) -> list[str]:
        return files.list_parquet(self.root / folder)

    def stat(self, name: str) -> FileInfo:
        st = os.stat(self.root / name)
        return FileInfo(st.st_size, st.st_mtime_ns)

    def open_input(self, name: str) -> pa.NativeFile:
        return pa.OSFile(str(self.root / name))

    def write_table(self, name: str, table: pa.Table) -> str:
        path = self.root / name
        try:
            files.publish_bytes(path, lambda f: files.write_parquet(table, f))
        except FileNotFoundError:  # first write, or the folder was removed under us
            path.parent.mkdir(parents=True, exist_ok=True)
            files.publish_bytes(path, lambda f: files.write_parquet(table, f))
        return str(path)

    def delete(self, name: str) -> int:
        return files.unlink(self.root / name)

    def read_bytes(self, name: str) -> bytes | None:
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            return None

    def write_bytes(self, name: str, data: bytes) -> None:
        files.publish_bytes(self.root / name, lambda f: f.write(data))

    @contextlib.contextmanager
    def lock(self, name: str, wait: bool) -> Iterator[bool]:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / name, os.O_RDWR | os.O_CREAT, 0o644)
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

    def remove_stale(self, folders: tuple[str, ...]) -> int:
        return sum(files.remove_stale_temporaries(self.root / folder) for folder in folders)

    def usage(self) -> tuple[int, int]:
        size = temporary = 0
        for root, _dirs, names in os.walk(self.root):
            for name in names:
                if name.startswith(".") and name.endswith(files.TMP_SUFFIX):
                    temporary += 1
                with contextlib.suppress(FileNotFoundError):
                    size += os.stat(os.path.join(root, name)).st_size
        return size, temporary
