"""Compaction: atomic for readers, safe with writers, recovers from interruptions."""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from pathlib import Path

import pytest
from store_rows import make_episode, make_row, spawn

import researchgym.store.files as files_module
from researchgym.store import Store


def _count(store: Store) -> int:
    return store.sql("SELECT count(*) FROM steps").column(0)[0].as_py()


def _on_disk(store: Store, folder: str) -> list[str]:
    return store.files.backend.list_files(folder)


def _fill(store: Store, n_files: int) -> None:
    for i in range(n_files):
        store.append(make_row(step=i))


def test_compact_merges_and_keeps_rows(store: Store) -> None:
    _fill(store, 20)
    store.append_many(make_episode(30))
    before = store.sql("SELECT * FROM steps ORDER BY run_id").to_pylist()
    result = store.compact(min_files=2)
    assert (result.inputs, result.outputs, result.rows, result.removed) == (21, 1, 50, 21)
    assert _on_disk(store, "steps") == []
    assert len(_on_disk(store, "compacted")) == 1
    assert store.sql("SELECT * FROM steps ORDER BY run_id").to_pylist() == before
    assert store.compact(min_files=2).inputs == 0  # nothing left to do


def test_compact_respects_min_files_and_target_rows(store: Store) -> None:
    _fill(store, 3)
    assert store.compact(min_files=4).inputs == 0
    assert store.compact(min_files=3, target_rows=2).outputs == 2  # 2 + 1 rows
    _fill(store, 3)
    result = store.compact(min_files=3, target_rows=100)
    assert (result.inputs, result.outputs) == (3, 1)  # two undersized files do not make a tier
    result = store.compact(min_files=3, target_rows=100, full=True)
    assert (result.inputs, result.outputs, result.rows) == (3, 1, 6)
    assert _count(store) == 6


def test_tiered_merges_bound_rewrites(store: Store) -> None:
    for _ in range(4):
        _fill(store, 1)
        store.compact(min_files=1)
    assert store.snapshot().compacted_files == 4  # four 1-row files: one tier
    _fill(store, 1)
    result = store.compact(min_files=1)
    assert (result.inputs, result.outputs, result.rows) == (5, 1, 5)
    assert list(store.read_manifest().compacted.values()) == [5]


def test_compact_skips_when_locked(store: Store) -> None:
    _fill(store, 3)
    with store.files.lock(wait=True):
        assert store.compact(min_files=1, wait=False).skipped
    assert store.compact(min_files=1, wait=False).inputs == 3


@pytest.mark.slow
def test_reader_never_sees_a_wrong_count_during_compaction(tmp_path: Path) -> None:
    """A reader process counts rows while compaction rewrites the store many times."""
    path = tmp_path / "store"
    store = Store(path, auto_compact=None)
    n = 240
    _fill(store, n)
    stop = tmp_path / "stop"
    reader = spawn("store_reader.py", path, stop)
    counts: list[int] = []
    collector = threading.Thread(
        target=lambda: counts.extend(int(line) for line in reader.stdout if line.strip() != "ready")
    )
    collector.start()
    generations = 0
    try:
        deadline = time.monotonic() + 60
        while len(counts) < 3:  # the reader is up and querying
            assert time.monotonic() < deadline and reader.poll() is None
            time.sleep(0.01)
        during = len(counts)
        # Each round compacts 20 small files (and every few rounds merges the
        # compacted ones), so files the reader has listed keep disappearing.
        while store.compact(min_files=1, max_files=20, target_rows=10**9).inputs:
            generations += 1
            time.sleep(0.02)
        store.compact(min_files=1, target_rows=10**9, full=True)
        during = len(counts) - during
    finally:
        stop.touch()
        reader.wait(timeout=60)
        collector.join(timeout=60)
    assert reader.returncode == 0, reader.stderr.read() if reader.stderr else ""
    assert generations >= n // 20
    assert during >= 3  # reads overlapped the compactions
    assert set(counts) == {n}
    assert _count(store) == n
    assert len(store.snapshot().files) == 1


def test_interrupted_compaction_recovers(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(store, 6)

    def crash(path: Path) -> int:
        raise RuntimeError("killed before deleting inputs")

    monkeypatch.setattr(files_module, "unlink", crash)
    with pytest.raises(RuntimeError, match="killed"):
        store.compact(min_files=1)
    monkeypatch.undo()
    # the new manifest is published: inputs still on disk are invisible, not duplicated
    assert len(_on_disk(store, "steps")) == 6
    assert _count(store) == 6
    result = store.compact(min_files=1)
    assert result.removed == 6 and result.inputs == 0
    assert _on_disk(store, "steps") == []
    assert _count(store) == 6
    assert store.read_manifest().replaced == frozenset()


def test_unpublished_output_and_stale_temp_files_are_ignored_then_removed(store: Store) -> None:
    _fill(store, 4)
    store.compact(min_files=1)
    (compacted,) = _on_disk(store, "compacted")
    orphan = store.path / "compacted" / f"{uuid.uuid4().hex}.parquet"  # renamed, never published
    shutil.copy(store.path / "compacted" / compacted, orphan)
    stale = store.path / "steps" / f".{uuid.uuid4().hex}.parquet.1234.tmp"
    stale.write_bytes(b"PAR1 half written")
    fresh = store.path / "steps" / f".{uuid.uuid4().hex}.parquet.99.tmp"
    fresh.write_bytes(b"PAR1 in flight")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    assert _count(store) == 4
    assert store.info()["files"]["temporary"] == 2
    result = store.compact(min_files=1)
    assert result.removed == 2
    assert not orphan.exists() and not stale.exists() and fresh.exists()
    assert _count(store) == 4


def test_auto_compaction_bounds_small_files(tmp_path: Path) -> None:
    store = Store(tmp_path / "s", auto_compact=10, auto_compact_every=5)
    _fill(store, 40)
    assert store.snapshot().steps_files < 10
    assert _count(store) == 40


def test_extra_column_with_changing_type_compacts(store: Store) -> None:
    store.append(make_row(step=0, note=3))
    store.append(make_row(step=1, note="three"))
    store.append(make_row(step=2, note=None))
    before = store.sql("SELECT note FROM steps ORDER BY step").column(0).to_pylist()
    assert [None if v is None else str(v) for v in before] == ["3", "three", None]
    store.compact(min_files=1)
    notes = store.sql("SELECT note FROM steps ORDER BY step").column(0).to_pylist()
    assert notes == ["3", "three", None]
