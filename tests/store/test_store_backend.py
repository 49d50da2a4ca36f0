"""A second storage backend plugs in as one class: the store runs on it unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import pytest
from arrow_fs_backend import ArrowFileSystemBackend
from store_rows import make_episode, make_row

from researchgym.store import Store
from researchgym.store.store import BACKENDS


@pytest.fixture
def backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh in-memory filesystem, registered as the ``arrow-fs`` backend."""
    monkeypatch.setattr(ArrowFileSystemBackend, "filesystem", pafs._MockFileSystem())
    monkeypatch.setitem(BACKENDS, "arrow-fs", ArrowFileSystemBackend)
    yield "arrow-fs"
    assert list(tmp_path.iterdir()) == []  # nothing reached the local disk


def _count(store: Store) -> int:
    return store.sql("SELECT count(*) FROM steps").column(0)[0].as_py()


def test_append_compact_query_and_iterate(store: Store) -> None:
    assert _count(store) == 0 and store.compact(min_files=1).inputs == 0
    for step in range(3):
        assert store.append(make_row(campaign_id="a" * 32, step=step)).startswith("mock://")
    store.append_many(make_episode(4, campaign_id="b" * 32))
    assert (_count(store), store.snapshot().steps_files) == (7, 4)
    before = store.sql("SELECT * FROM steps ORDER BY campaign_id, step").to_pylist()

    result = store.compact(min_files=1)
    assert (result.inputs, result.outputs, result.rows, result.removed) == (4, 1, 7, 4)
    assert store.files.backend.list_files("steps") == []
    assert store.read_manifest().generation == 1
    assert store.sql("SELECT * FROM steps ORDER BY campaign_id, step").to_pylist() == before

    store.append(make_row(campaign_id="c" * 32, step=0))  # one compacted file, one small one
    assert store.episodes()["n_steps"].tolist() == [3, 4, 1]
    episodes = list(store.iter_episodes(batch_rows=2))
    assert [len(e) for e in episodes] == [3, 4, 1]
    assert [e.campaign_id for e in episodes] == ["a" * 32, "b" * 32, "c" * 32]
    np.testing.assert_array_equal(episodes[1].steps, np.arange(4))
    assert episodes[1].observations.shape == (4, 6)
    assert store.run(before[0]["run_id"])["campaign_id"] == "a" * 32

    info = store.info()
    assert (info["rows"], info["files"]["compacted"], info["files"]["steps"]) == (8, 1, 1)
    assert 0 < info["size_bytes"] <= info["disk_bytes"]
