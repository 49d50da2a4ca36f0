"""The manifest: which files hold a store's visible rows, snapshots, compaction.

Layout of a store::

    <root>/
      steps/<uuid>.parquet        files published by writers (one per append)
      compacted/<uuid>.parquet    files written by compaction
      _manifest.json              generation, compacted files, replaced files
      .compact.lock               held by the one compacting process

Writers never coordinate: file names are random UUIDs, and every file is
published atomically by the storage backend.

Which files hold the visible rows is decided by the manifest, which is only
replaced atomically and whose ``generation`` only grows:

* a ``compacted/`` file is visible iff the manifest lists it in ``compacted``;
* a ``steps/`` file is visible iff the manifest does not list it in
  ``replaced``.

Compaction (one process at a time, under the lock) writes its output to
``compacted/`` (invisible: not yet listed), then publishes a manifest of the
next generation that lists the output and marks its inputs replaced, in one
atomic publish. Only then are the inputs deleted. A file is therefore deleted
only after a published manifest made it invisible, and never becomes visible
again. A reader reads the manifest, lists ``steps/``, and reads the manifest
again; if the generation did not move, the listing is consistent with it (see
:meth:`FileSet.snapshot`). A file listed in a snapshot may still vanish before
it is read (a later compaction deleted it); readers then take a new snapshot
and retry.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

import pyarrow as pa

from researchgym.errors import ConfigError, StateError
from researchgym.store.backend import StorageBackend
from researchgym.store.files import SUFFIX, warn_corrupt
from researchgym.store.tables import unify

STEPS_DIR = "steps"
COMPACTED_DIR = "compacted"
MANIFEST = "_manifest.json"
LOCK = ".compact.lock"

#: Compacted files are merged again once this many have about the same size.
MERGE_FANOUT = 4

ProgressCallback = Callable[[int, int], None]


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
        files: Names of the visible Parquet files in the store's backend
            (``compacted/...`` first, then ``steps/...``).
        steps_files: How many of them are writer files in ``steps/``.
    """

    generation: int
    files: tuple[str, ...]
    steps_files: int

    @property
    def compacted_files(self) -> int:
        return len(self.files) - self.steps_files


@dataclasses.dataclass(frozen=True)
class CompactionResult:
    """What one :meth:`FileSet.compact` call did.

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


class FileSet:
    """The files holding a store's step rows, governed by its manifest.

    Args:
        backend: Where the files live.
    """

    def __init__(self, backend: StorageBackend) -> None:
        self.backend = backend
        self._manifest_cache: tuple[bytes, Manifest] | None = None

    @property
    def root(self) -> Path:
        """The store's location."""
        return self.backend.root

    def publish(self, table: pa.Table) -> str:
        """Publish ``table`` as a new writer file; return its location."""
        return self.backend.write_table(f"{STEPS_DIR}/{uuid.uuid4().hex}{SUFFIX}", table)

    def small_files(self) -> int:
        """How many writer files exist (visible or replaced but not yet deleted)."""
        return len(self.backend.list_files(STEPS_DIR))

    def read_manifest(self) -> Manifest:
        """Return the currently published manifest (empty if none yet)."""
        for _ in range(20):
            try:
                raw = self.backend.read_bytes(MANIFEST)
                if raw is None:
                    return Manifest()
                cached = self._manifest_cache
                if cached is not None and cached[0] == raw:
                    return cached[1]
                data = json.loads(raw)
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
        raise StateError(f"cannot read store manifest {self.backend.location(MANIFEST)}")

    def snapshot(self) -> Snapshot:
        """List the files holding the visible rows, consistently.

        Returns:
            A snapshot whose listing matches one manifest generation.
        """
        for _ in range(1000):
            manifest = self.read_manifest()
            names = self.backend.list_files(STEPS_DIR)
            if self.read_manifest().generation == manifest.generation:
                break
        else:  # pragma: no cover - compaction publishing continuously
            raise StateError(f"store {self.root} changed during every listing attempt")
        steps = [f"{STEPS_DIR}/{n}" for n in sorted(names) if n not in manifest.replaced]
        compacted = [f"{COMPACTED_DIR}/{n}" for n in sorted(manifest.compacted)]
        return Snapshot(manifest.generation, tuple(compacted + steps), len(steps))

    def lock(self, wait: bool) -> contextlib.AbstractContextManager[bool]:
        """Hold the compaction lock (see :meth:`StorageBackend.lock`)."""
        return self.backend.lock(LOCK, wait)

    def _publish_manifest(self, manifest: Manifest) -> None:
        self.backend.write_bytes(MANIFEST, manifest.to_json().encode())

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

        Raises:
            ValueError: If ``min_files`` or ``target_rows`` is below 1.
        """
        if min_files < 1 or target_rows < 1:
            raise ConfigError(
                f"min_files and target_rows must be >= 1, got {min_files} and {target_rows}"
            )
        if not self.backend.exists():
            return CompactionResult()
        with self.lock(wait) as acquired:
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
        backend = self.backend
        manifest = self.read_manifest()
        removed = self._remove_leftovers(manifest)
        steps = sorted(n for n in backend.list_files(STEPS_DIR) if n not in manifest.replaced)
        if max_files is not None:
            steps = steps[:max_files]
        if len(steps) < min_files:
            steps = []
        small = merge_candidates(manifest.compacted, target_rows, full)
        if not steps and not small:
            if manifest.replaced:  # everything replaced is deleted by now: prune the list
                pruned = Manifest(manifest.generation + 1, manifest.compacted, frozenset())
                self._publish_manifest(pruned)
                return CompactionResult(removed=removed, generation=pruned.generation)
            return CompactionResult(removed=removed, generation=manifest.generation)

        inputs = [(COMPACTED_DIR, n) for n in small] + [(STEPS_DIR, n) for n in steps]
        total = len(inputs)
        outputs: dict[str, int] = {}
        used: dict[str, list[str]] = {STEPS_DIR: [], COMPACTED_DIR: []}
        pending: list[pa.Table] = []
        pending_rows = 0

        def flush() -> None:
            nonlocal pending, pending_rows
            if not pending:
                return
            table = unify(pending)
            name = f"{uuid.uuid4().hex}{SUFFIX}"
            backend.write_table(f"{COMPACTED_DIR}/{name}", table)
            outputs[name] = table.num_rows
            pending, pending_rows = [], 0

        for done, (folder, name) in enumerate(inputs, start=1):
            path = f"{folder}/{name}"
            reason = backend.check(path)
            table = None
            if reason is None:
                try:
                    table = backend.read_table(path)
                except Exception as exc:  # noqa: BLE001 - unreadable file: skip it
                    reason = f"{type(exc).__name__}: {exc}"
            if table is None:
                warn_corrupt(backend.location(path), reason or "unreadable")
            else:
                pending.append(table)
                pending_rows += table.num_rows
                used[folder].append(name)
                if pending_rows >= target_rows:
                    flush()
            if progress is not None:
                progress(done, total)
        flush()

        compacted = {n: r for n, r in manifest.compacted.items() if n not in used[COMPACTED_DIR]}
        compacted.update(outputs)
        new = Manifest(manifest.generation + 1, compacted, frozenset(used[STEPS_DIR]))
        self._publish_manifest(new)
        for folder, names in used.items():
            for name in names:
                removed += backend.delete(f"{folder}/{name}")
        return CompactionResult(
            inputs=len(used[STEPS_DIR]) + len(used[COMPACTED_DIR]),
            outputs=len(outputs),
            rows=sum(outputs.values()),
            removed=removed,
            generation=new.generation,
        )

    def _remove_leftovers(self, manifest: Manifest) -> int:
        """Delete files that no reader can see (caller holds the lock)."""
        backend = self.backend
        removed = 0
        for name in manifest.replaced:  # inputs of a compaction interrupted before deleting
            removed += backend.delete(f"{STEPS_DIR}/{name}")
        for name in backend.list_files(COMPACTED_DIR):  # outputs never published
            if name not in manifest.compacted:
                removed += backend.delete(f"{COMPACTED_DIR}/{name}")
        return removed + backend.remove_stale((STEPS_DIR, COMPACTED_DIR, ""))


def merge_candidates(compacted: Mapping[str, int], target_rows: int, full: bool) -> list[str]:
    """Compacted files to merge again: undersized ones of one size tier, or all with ``full``."""
    undersized = sorted(
        (n for n, r in compacted.items() if r < target_rows // 2), key=lambda n: compacted[n]
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
