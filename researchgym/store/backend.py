"""Where a store keeps its files: the storage interface and the local-disk backend.

A backend stores Parquet tables and small blobs (the manifest) under folder
and file names, publishes each atomically, and serializes compactions with a
lock. The manifest and the catalog above it only use this interface, so a
second backend (e.g. Parquet on a ``pyarrow.fs`` filesystem) is one new class
listed in :data:`researchgym.store.store.BACKENDS`.
"""

from __future__ import annotations

import abc
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from researchgym.store import files

try:
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX platforms
    fcntl = None  # type: ignore[assignment]


class StorageBackend(abc.ABC):
    """Storage of a store's files under one root.

    Args:
        root: The store's location.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    @abc.abstractmethod
    def location(self, folder: str, name: str) -> Path:
        """Where the file ``folder/name`` is read from (what DuckDB and pyarrow open)."""

    @abc.abstractmethod
    def list_files(self, folder: str) -> list[str]:
        """Names of the published Parquet files in ``folder`` (none if it is missing)."""

    @abc.abstractmethod
    def write_table(self, folder: str, name: str, table: pa.Table) -> Path:
        """Atomically publish ``table`` as ``folder/name``, creating the folder; return its location."""

    @abc.abstractmethod
    def read_table(self, folder: str, name: str) -> pa.Table:
        """Read the Parquet file ``folder/name``."""

    @abc.abstractmethod
    def check(self, folder: str, name: str) -> str | None:
        """Cheaply check that ``folder/name`` is a complete Parquet file; None or a reason."""

    @abc.abstractmethod
    def delete(self, folder: str, name: str) -> int:
        """Delete ``folder/name``; return 1 if it was there, else 0."""

    @abc.abstractmethod
    def read_bytes(self, name: str) -> bytes | None:
        """The blob ``name`` at the root, or None when there is none."""

    @abc.abstractmethod
    def write_bytes(self, name: str, data: bytes) -> None:
        """Atomically publish the blob ``name`` at the root."""

    @abc.abstractmethod
    def lock(self, name: str, wait: bool) -> contextlib.AbstractContextManager[bool]:
        """Hold the exclusive lock ``name``; yields False when ``wait`` is False and it is taken."""

    @abc.abstractmethod
    def remove_stale(self, folders: tuple[str, ...]) -> int:
        """Delete temporary files that killed writers left in ``folders``; return how many."""


class LocalBackend(StorageBackend):
    """Files in a directory of the local file system, published by rename."""

    def location(self, folder: str, name: str) -> Path:
        return self.root / folder / name

    def list_files(self, folder: str) -> list[str]:
        return files.list_parquet(self.root / folder)

    def write_table(self, folder: str, name: str, table: pa.Table) -> Path:
        path = self.root / folder / name
        try:
            files.write_parquet(table, path)
        except FileNotFoundError:  # first write, or the folder was removed under us
            path.parent.mkdir(parents=True, exist_ok=True)
            files.write_parquet(table, path)
        return path

    def read_table(self, folder: str, name: str) -> pa.Table:
        return pq.read_table(self.root / folder / name)

    def check(self, folder: str, name: str) -> str | None:
        return files.quick_check(self.root / folder / name)

    def delete(self, folder: str, name: str) -> int:
        return files.unlink(self.root / folder / name)

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
