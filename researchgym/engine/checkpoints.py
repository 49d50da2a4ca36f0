"""Checkpoints of training runs on disk: written atomically, bounded in size.

:func:`atomic_write` makes a file appear complete or not at all, so a process killed
while writing never leaves a half checkpoint under the final name. :class:`Checkpoints`
keeps an env's checkpoints in one directory within a byte budget, evicting the least
recently used ones but never the best-scoring. Neither needs torch.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import IO, NamedTuple

from researchgym.errors import ConfigError, NotFound, shorten

__all__ = ["CheckpointMissing", "Checkpoints", "atomic_write"]

_KEY = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}")
_SUFFIX = ".pt"
_TEMP_SUFFIX = ".tmp"


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> None:
    """Write a file through ``write(file)`` so that ``path`` holds the old file or the new
    one, complete, never a part of one.

    The bytes go to a temporary file in the same directory, are flushed to the disk and
    then renamed over ``path``. A failed or killed write leaves at most a hidden
    ``.*.tmp`` file (removed on failure; :meth:`Checkpoints.clear` removes those of a
    killed process).
    """
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    fd, temp = tempfile.mkstemp(
        dir=directory, prefix=f".{os.path.basename(path)}.", suffix=_TEMP_SUFFIX
    )
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)  # make the rename itself durable
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class CheckpointMissing(NotFound):
    """A checkpoint that is not there: evicted to stay within the size bound, or never saved.

    Attributes:
        key: the checkpoint asked for.
        reason: ``"evicted"`` or ``"never_saved"``.
    """

    def __init__(self, key: str, reason: str, message: str):
        super().__init__(message)
        self.key = key
        self.reason = reason


class _Entry(NamedTuple):
    score: float | None
    size: int


class Checkpoints:
    """Checkpoints of one campaign in a directory, bounded in total size.

    Keys are strings the caller chooses (an env uses the run's index); each names the
    file :meth:`path_for` gives. After a job wrote that file, :meth:`added` registers it
    and evicts the least recently used checkpoints (written or asked for with
    :meth:`get`) until the total size is within ``max_bytes``, keeping the
    ``keep_best`` best-scoring ones even when they alone exceed it.

    Args:
        root: the directory (created if missing).
        max_bytes: bound on the total size of the checkpoints kept.
        keep_best: how many of the best-scoring checkpoints are never evicted.
    """

    def __init__(self, root: str | os.PathLike[str], *, max_bytes: int, keep_best: int = 1):
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ConfigError(f"max_bytes={shorten(max_bytes)} must be a positive integer")
        if isinstance(keep_best, bool) or not isinstance(keep_best, int) or keep_best < 0:
            raise ConfigError(f"keep_best={shorten(keep_best)} must be an integer >= 0")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.keep_best = keep_best
        self._kept: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first
        self._evicted: set[str] = set()

    def path_for(self, key: str) -> str:
        """The file a job saves the checkpoint ``key`` to."""
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ConfigError(
                f"checkpoint key {shorten(key)} must be 1-100 letters, digits, '_', '-' or "
                "'.', not starting with '.'"
            )
        return str(self.root / f"{key}{_SUFFIX}")

    def added(self, key: str, score: float | None) -> list[str]:
        """Register the checkpoint a job wrote to ``path_for(key)`` and evict others as needed.

        Args:
            key: the checkpoint's key.
            score: its run's validation score (higher is better), or ``None``: never
                counted among the best.

        Returns:
            The keys evicted (possibly ``key`` itself, when it is the only one left to
            evict and alone exceeds ``max_bytes``).
        """
        path = self.path_for(key)
        try:
            size = os.path.getsize(path)
        except FileNotFoundError:
            raise CheckpointMissing(
                key, "never_saved", f"checkpoint {key!r} was not written at {path}"
            ) from None
        self._kept[key] = _Entry(score, size)
        self._kept.move_to_end(key)
        self._evicted.discard(key)
        return self._evict()

    def get(self, key: str) -> str:
        """The path of checkpoint ``key``, marked as used now.

        Raises:
            CheckpointMissing: it was evicted, or never saved (or deleted by someone else).
        """
        path = self.path_for(key)
        if key in self._kept and os.path.exists(path):
            self._kept.move_to_end(key)
            return path
        if key in self._evicted:
            raise CheckpointMissing(
                key,
                "evicted",
                f"checkpoint {key!r} was evicted (least recently used) to keep the "
                f"checkpoints within {self.max_bytes:,} bytes",
            )
        self._kept.pop(key, None)
        raise CheckpointMissing(key, "never_saved", f"no checkpoint {key!r} was saved")

    @property
    def total_bytes(self) -> int:
        """Total size of the checkpoints kept."""
        return sum(entry.size for entry in self._kept.values())

    def __contains__(self, key: object) -> bool:
        return key in self._kept

    def clear(self) -> None:
        """Delete every checkpoint (and temporary files of interrupted writes) and forget them."""
        for key in self._kept:
            Path(self.path_for(key)).unlink(missing_ok=True)
        for temp in self.root.glob(f".*{_SUFFIX}.*{_TEMP_SUFFIX}"):
            temp.unlink(missing_ok=True)
        self._kept.clear()
        self._evicted.clear()

    def _evict(self) -> list[str]:
        scored = [(e.score, k) for k, e in self._kept.items() if e.score is not None]
        best = {k for _, k in sorted(scored, key=lambda e: e[0], reverse=True)[: self.keep_best]}
        total = self.total_bytes
        evicted = []
        for key in list(self._kept):
            if total <= self.max_bytes:
                break
            if key in best:
                continue
            Path(self.path_for(key)).unlink(missing_ok=True)
            total -= self._kept.pop(key).size
            self._evicted.add(key)
            evicted.append(key)
        return evicted
