"""Durable appends: single rows, batches, SIGKILL mid-campaign, concurrent writers."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import pytest
from store_rows import make_episode, make_row, spawn

from researchgym.store import Store
from researchgym.store.tables import rows_to_table


def _count(store: Store) -> int:
    return store.sql("SELECT count(*) FROM steps").column(0)[0].as_py()


def test_append_round_trip(store: Store) -> None:
    row = make_row(step=3, val_score=None, action_flat=None, error="boom", status="error")
    location = Path(store.append(row))
    assert location.parent == store.path / "steps" and location.suffix == ".parquet"
    got = store.sql("SELECT * FROM steps").to_pylist()[0]
    for key, value in row.items():
        assert got[key] == value, key
    assert store.info()["files"]["temporary"] == 0


def test_append_many_rows_and_table(store: Store) -> None:
    rows = make_episode(7)
    assert store.append_many(rows) == 7
    assert store.append_many(rows_to_table(make_episode(5))) == 5
    assert store.append_many([]) == 0
    assert _count(store) == 12
    assert store.snapshot().steps_files == 2  # one file per batch


def test_invalid_row_writes_nothing(store: Store) -> None:
    with pytest.raises(ValueError):
        store.append({"campaign_id": "x"})
    assert _count(store) == 0


@pytest.mark.slow
@pytest.mark.parametrize("auto_compact", [0, 6], ids=["plain", "compacting"])
def test_sigkill_loses_at_most_the_step_in_flight(tmp_path: Path, auto_compact: int) -> None:
    """Kill -9 a real writer mid-campaign; every step it reported done is there."""
    path = tmp_path / "store"
    campaign = uuid.uuid4().hex
    proc = spawn("store_writer.py", path, 100_000, campaign, auto_compact)
    completed: list[int] = []
    try:
        assert proc.stdout is not None
        while len(completed) < 40:
            line = proc.stdout.readline()
            if not line:
                raise AssertionError(
                    f"writer exited early: {proc.stderr.read() if proc.stderr else ''}"
                )
            completed.append(int(line))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with Store(path, auto_compact=None) as store:
        steps = (
            store.sql("SELECT step FROM steps WHERE campaign_id = ? ORDER BY step", [campaign])
            .column(0)
            .to_pylist()
        )
        assert steps == list(range(len(steps)))  # no gaps, no duplicates
        assert set(completed) <= set(steps)
        episodes = store.episodes()
        assert episodes["n_steps"].tolist() == [len(steps)]
        if auto_compact:
            assert store.read_manifest().generation > 0  # the writer did compact
        store.compact(min_files=1)  # also cleans up what an interrupted compaction left
        assert _count(store) == len(steps)


@pytest.mark.slow
def test_concurrent_writers_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    path = tmp_path / "store"
    n_writers, n_steps = 4, 40
    campaigns = [uuid.uuid4().hex for _ in range(n_writers)]
    # auto-compaction every few appends makes compactions race with the writers
    procs = [spawn("store_writer.py", path, n_steps, c, 8) for c in campaigns]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    with Store(path, auto_compact=None) as store:
        total, distinct = (
            store.sql("SELECT count(*), count(DISTINCT (campaign_id, step)) FROM steps")
            .to_pylist()[0]
            .values()
        )
        assert total == distinct == n_writers * n_steps
        per = store.sql("SELECT campaign_id, count(*) AS n FROM steps GROUP BY 1").to_pylist()
        assert {r["campaign_id"]: r["n"] for r in per} == dict.fromkeys(campaigns, n_steps)
        assert store.read_manifest().generation > 0  # compactions ran alongside the writers


def test_write_table_publishes_side_tables_that_duckdb_reads(tmp_path):
    import duckdb
    import pyarrow as pa

    from researchgym.store import open_store

    store = open_store(tmp_path / "s")
    path = store.write_table("designs", "abc123", pa.table({"x": [1, 2]}))
    store.write_table("designs", "abc123", pa.table({"x": [3]}))  # replaced whole
    assert path == str(store.path / "designs" / "abc123.parquet")
    assert duckdb.sql(
        f"SELECT sum(x) FROM read_parquet('{store.path}/designs/*.parquet')"
    ).fetchall() == [(3,)]
    assert store.info()["rows"] == 0  # not steps
    for folder, name in (("steps", "a"), ("../x", "a"), ("designs", "../a")):
        with pytest.raises(ValueError, match="plain file names"):
            store.write_table(folder, name, pa.table({"x": [1]}))


def test_unknown_backend_is_refused(tmp_path: Path) -> None:
    from researchgym.store import StoreError

    with pytest.raises(StoreError, match="unknown store backend 's3'; use one of local"):
        Store(tmp_path / "store", backend="s3")
