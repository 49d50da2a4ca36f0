"""A second storage backend for tests: Parquet on a ``pyarrow.fs`` filesystem DuckDB cannot open.

It keeps files in pyarrow's in-memory filesystem, so nothing above the
backend may touch a local path: the catalog has to read through
``open_input``.
"""

from __future__ import annotations

import contextlib
import posixpath
import threading
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.fs as pafs

from researchgym.store.backend import FileInfo, StorageBackend
from researchgym.store.files import SUFFIX, TMP_SUFFIX, write_parquet


class ArrowFileSystemBackend(StorageBackend):
    """Files on :attr:`filesystem` under the store's root, published by move."""

    duckdb_reads_locations = False
    #: Where every store of this backend lives (tests replace it with a fresh one).
    filesystem: ClassVar[pafs.FileSystem] = pafs._MockFileSystem()
    _locks: ClassVar[dict[str, threading.Lock]] = {}

    def _path(self, name: str) -> str:
        return posixpath.join(self.root.as_posix().strip("/"), name).rstrip("/")

    def _publish(self, name: str, write: Callable[[Any], None]) -> None:
        path = self._path(name)
        folder, base = posixpath.split(path)
        tmp = posixpath.join(folder, f".{base}{TMP_SUFFIX}")
        self.filesystem.create_dir(folder)
        with self.filesystem.open_output_stream(tmp) as f:
            write(f)
        self.filesystem.move(tmp, path)

    def _infos(self, folder: str, recursive: bool = False) -> list[pafs.FileInfo]:
        selector = pafs.FileSelector(self._path(folder), allow_not_found=True, recursive=recursive)
        return [info for info in self.filesystem.get_file_info(selector) if info.is_file]

    def location(self, name: str) -> str:
        return f"mock://{self._path(name)}"

    def exists(self) -> bool:
        return self.filesystem.get_file_info(self._path("")).type != pafs.FileType.NotFound

    def list_files(self, folder: str) -> list[str]:
        names = [info.base_name for info in self._infos(folder)]
        return [n for n in names if n.endswith(SUFFIX) and not n.startswith(".")]

    def stat(self, name: str) -> FileInfo:
        info = self.filesystem.get_file_info(self._path(name))
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(self.location(name))
        return FileInfo(info.size, info.mtime_ns)

    def open_input(self, name: str) -> pa.NativeFile:
        return self.filesystem.open_input_file(self._path(name))

    def write_table(self, name: str, table: pa.Table) -> str:
        self._publish(name, lambda f: write_parquet(table, f))
        return self.location(name)

    def delete(self, name: str) -> int:
        try:
            self.filesystem.delete_file(self._path(name))
        except FileNotFoundError:
            return 0
        return 1

    def read_bytes(self, name: str) -> bytes | None:
        try:
            with self.filesystem.open_input_stream(self._path(name)) as f:
                return f.read()
        except FileNotFoundError:
            return None

    def write_bytes(self, name: str, data: bytes) -> None:
        self._publish(name, lambda f: f.write(data))

    @contextlib.contextmanager
    def lock(self, name: str, wait: bool) -> Iterator[bool]:
        lock = self._locks.setdefault(self._path(name), threading.Lock())  # one process
        acquired = lock.acquire(blocking=wait)
        try:
            yield acquired
        finally:
            if acquired:
                lock.release()

    def remove_stale(self, folders: tuple[str, ...]) -> int:
        return 0  # a writer's temporary file dies with the process that holds the memory

    def usage(self) -> tuple[int, int]:
        infos = self._infos("", recursive=True)
        temporary = sum(info.base_name.endswith(TMP_SUFFIX) for info in infos)
        return sum(info.size for info in infos), temporary
