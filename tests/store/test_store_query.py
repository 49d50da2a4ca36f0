"""DuckDB catalog: views, helpers, episode iteration, schema evolution, bad files."""

from __future__ import annotations

import math
import uuid
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from arrow_fs_backend import ArrowFileSystemBackend
from store_rows import make_episode, make_row

import researchgym.store.catalog as catalog_module
from researchgym.errors import ConfigError, NotFound
from researchgym.store import CorruptFileWarning, Store, StoreError
from researchgym.store.store import BACKENDS
from researchgym.store.tables import rows_to_table


@pytest.fixture(autouse=True, params=["cached", "in_place", "arrow_fs"])
def read_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run every test with small files cached, all read in place, and on an Arrow filesystem."""
    if request.param == "in_place":
        monkeypatch.setattr(catalog_module, "_CACHE_FILE_ROWS", 0)
    return request.param


@pytest.fixture
def backend(read_mode: str, monkeypatch: pytest.MonkeyPatch) -> str:
    if read_mode != "arrow_fs":
        return "local"
    monkeypatch.setattr(ArrowFileSystemBackend, "filesystem", pafs._MockFileSystem())
    monkeypatch.setitem(BACKENDS, "arrow-fs", ArrowFileSystemBackend)
    return "arrow-fs"


def _count(store: Store) -> int:
    return store.sql("SELECT count(*) FROM steps").column(0)[0].as_py()


@pytest.fixture
def filled(store: Store) -> Store:
    """Two envs, three tasks, two agents; one failed step without a score."""
    store.append_many(make_episode(4, campaign_id="a" * 32, task="t1", agent="random"))
    store.append_many(make_episode(3, campaign_id="b" * 32, task="t2", agent="tpe"))
    for step, row in enumerate(
        make_episode(2, campaign_id="c" * 32, env_id="researchgym/Wine-v0", task="wine")
    ):
        if step == 1:
            row.update(val_score=None, reward=-1.0, status="diverged", error="NaN loss")
        store.append(row)
    store.append(make_row("d" * 32, 0, task="t1", agent="tpe", val_score=float("nan")))
    return store


def test_helpers(filled: Store) -> None:
    assert filled.envs() == ["researchgym/Digits-v0", "researchgym/Wine-v0"]
    assert filled.tasks() == ["t1", "t2", "wine"]
    assert filled.tasks("researchgym/Wine-v0") == ["wine"]
    assert filled.agents() == ["random", "tpe"]
    assert filled.agents("researchgym/Wine-v0") == ["random"]


def test_episodes_view(filled: Store) -> None:
    eps = filled.episodes().set_index("campaign_id")
    assert len(eps) == 4
    a = eps.loc["a" * 32]
    rows = filled.sql("SELECT * FROM steps WHERE campaign_id = ?", ["a" * 32]).to_pylist()
    assert a["n_steps"] == 4 and a["env_id"] == "researchgym/Digits-v0" and a["agent"] == "random"
    assert a["best_val_score"] == pytest.approx(max(r["val_score"] for r in rows))
    assert a["total_reward"] == pytest.approx(sum(r["reward"] for r in rows))
    assert bool(a["terminated"]) and not bool(a["truncated"])
    assert a["started_at"] == min(r["started_at"] for r in rows)
    assert a["finished_at"] == max(r["finished_at"] for r in rows)
    c = eps.loc["c" * 32]
    assert c["n_failed"] == 1
    assert (
        math.isnan(eps.loc["d" * 32]["best_val_score"])
        or eps.loc["d" * 32]["best_val_score"] is None
    )
    assert len(filled.episodes(env_id="researchgym/Wine-v0")) == 1
    assert len(filled.episodes(agent="tpe")) == 2


def test_best_runs(filled: Store) -> None:
    best = filled.best_runs()
    assert list(zip(best["env_id"], best["task"])) == [
        ("researchgym/Digits-v0", "t1"),
        ("researchgym/Digits-v0", "t2"),
        ("researchgym/Wine-v0", "wine"),
    ]
    t1 = filled.sql(
        "SELECT run_id, val_score FROM steps WHERE task = 't1' AND NOT isnan(val_score) "
        "ORDER BY val_score DESC LIMIT 1"
    ).to_pylist()[0]
    row = best.iloc[0]
    assert row["run_id"] == t1["run_id"] and row["best_val_score"] == t1["val_score"]
    assert row["n_runs"] == 4  # the NaN score is not a run with a score
    assert list(filled.best_runs("researchgym/Wine-v0")["n_runs"]) == [1]


def test_curves(filled: Store) -> None:
    run_ids = filled.sql("SELECT run_id FROM steps WHERE campaign_id = ? ORDER BY step", ["a" * 32])
    ids = run_ids.column(0).to_pylist()[:2]
    curves = filled.curves(ids)
    assert list(curves.columns[:2]) == ["run_id", "epoch"] and "val_accuracy" in curves
    assert curves.groupby("run_id").size().to_dict() == {ids[0]: 3, ids[1]: 3}
    assert len(filled.curves(ids[0])) == 3
    assert filled.curves([uuid.uuid4().hex]).empty


def test_sql_and_df(filled: Store) -> None:
    table = filled.sql("SELECT env_id, count(*) AS n FROM steps GROUP BY 1 ORDER BY 1")
    assert isinstance(table, pa.Table)
    assert table.to_pylist() == [
        {"env_id": "researchgym/Digits-v0", "n": 8},
        {"env_id": "researchgym/Wine-v0", "n": 2},
    ]
    df = filled.df("SELECT * FROM episodes WHERE n_steps > $n", {"n": 2})
    assert sorted(df["n_steps"]) == [3, 4]


def test_iter_episodes(filled: Store) -> None:
    episodes = list(filled.iter_episodes(batch_rows=3))  # episodes span fetch batches
    assert [e.campaign_id for e in episodes] == ["a" * 32, "b" * 32, "c" * 32, "d" * 32]
    a = episodes[0]
    rows = filled.sql(
        "SELECT * FROM steps WHERE campaign_id = ? ORDER BY step", ["a" * 32]
    ).to_pylist()
    assert len(a) == 4 and a.observations.shape == (4, 6) and a.actions.shape == (4, 3)
    np.testing.assert_array_equal(a.observations, np.array([r["obs"] for r in rows]))
    np.testing.assert_array_equal(a.actions, np.array([r["action_flat"] for r in rows]))
    np.testing.assert_array_equal(a.rewards, [r["reward"] for r in rows])
    assert a.terminations.tolist() == [False, False, False, True]
    assert a.truncations.dtype == bool and not a.truncations.any()
    assert a.steps.tolist() == [0, 1, 2, 3]
    assert list(a.run_ids) == [r["run_id"] for r in rows]
    assert (a.env_id, a.task, a.agent, a.seed) == ("researchgym/Digits-v0", "t1", "random", 0)
    c = episodes[2]
    assert math.isnan(c.val_scores[1]) and not math.isnan(c.val_scores[0])
    assert [e.campaign_id for e in filled.iter_episodes(env_id="researchgym/Wine-v0")] == ["c" * 32]
    assert [e.campaign_id for e in filled.iter_episodes(agent="tpe", task="t1")] == ["d" * 32]


def test_iter_episodes_missing_actions(store: Store) -> None:
    rows = make_episode(3)
    rows[1]["action_flat"] = None
    store.append_many(rows)
    (episode,) = store.iter_episodes()
    assert episode.actions.shape == (3, 3)
    assert np.isnan(episode.actions[1]).all() and not np.isnan(episode.actions[[0, 2]]).any()


def test_schema_evolution_new_column(store: Store) -> None:
    old = make_episode(3)
    store.append_many(old)
    # a file from an older writer that lacked a contract column altogether
    legacy = rows_to_table(make_episode(2)).drop_columns(["cost_samples", "code_version"])
    store.files.backend.write_table(f"steps/{uuid.uuid4().hex}.parquet", legacy)
    # a later version adds a column
    new = make_episode(4, flops=2.5e9)
    store.append_many(new)
    for _ in range(2):
        got = store.sql(
            "SELECT count(*) AS n, count(flops) AS with_flops, sum(flops) AS flops, "
            "count(cost_samples) AS with_samples FROM steps"
        ).to_pylist()[0]
        assert got == {"n": 9, "with_flops": 4, "flops": 4 * 2.5e9, "with_samples": 7}
        assert len(store.episodes()) == 3
        assert "flops" in dict(store.info()["schema"])
        store.compact(min_files=1)  # old and new rows merged into one file: still the same
    assert store.snapshot().compacted_files == 1


def test_corrupt_files_are_reported_and_skipped(store: Store) -> None:
    store.append_many(make_episode(5))
    backend = store.files.backend
    (good,) = backend.list_files("steps")
    data = backend.read_bytes(f"steps/{good}")
    assert data is not None
    backend.write_bytes("steps/truncated.parquet", data[: len(data) // 2])
    backend.write_bytes("steps/garbage.parquet", b"not parquet at all\n" * 10)
    truncated = backend.location("steps/truncated.parquet")
    garbage = backend.location("steps/garbage.parquet")
    with pytest.warns(CorruptFileWarning) as record:
        assert _count(store) == 5
    messages = " ".join(str(w.message) for w in record)
    assert truncated in messages and garbage in messages
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reported once, not on every query
        assert _count(store) == 5
    info = store.info()
    assert info["files"]["skipped"] == 2
    assert sorted(info["skipped_files"]) == sorted([truncated, garbage])
    with pytest.warns(CorruptFileWarning) as record:
        store.compact(min_files=1)
    assert {Path(str(w.message).split()[4].rstrip(":")).name for w in record} == {
        "truncated.parquet",
        "garbage.parquet",
    }
    assert {"truncated.parquet", "garbage.parquet"} <= set(backend.list_files("steps"))  # kept
    assert next(iter(store.iter_episodes())).observations.shape == (5, 6)


def test_corrupt_pages_behind_an_intact_footer(store: Store) -> None:
    store.append_many(make_episode(3))
    sink = pa.BufferOutputStream()
    pq.write_table(rows_to_table(make_episode(2000)), sink, compression="zstd")
    data = bytearray(sink.getvalue().to_pybytes())
    group = pq.read_metadata(pa.BufferReader(data)).row_group(0)
    chunk = next(
        chunk
        for chunk in (group.column(i) for i in range(group.num_columns))
        if chunk.path_in_schema.startswith("obs")
    )
    start, size = chunk.data_page_offset, chunk.total_compressed_size
    data[start + 40 : start + size - 8] = b"\x13" * (size - 48)  # damage the obs pages
    store.files.backend.write_bytes("steps/bad_pages.parquet", bytes(data))
    with pytest.warns(CorruptFileWarning, match="bad_pages.parquet"):
        got = store.sql("SELECT count(*) AS n, sum(list_sum(obs)) AS s FROM steps").to_pylist()[0]
    assert got["n"] == 3
    assert _count(store) == 3


def test_empty_store(tmp_path: Path) -> None:
    store = Store(tmp_path / "nothing")
    assert _count(store) == 0
    assert store.envs() == [] and store.episodes().empty and store.best_runs().empty
    assert list(store.iter_episodes()) == []
    assert store.info()["rows"] == 0


def test_iteration_survives_compaction_between_episodes(store: Store, backend: str) -> None:
    campaigns = sorted(uuid.uuid4().hex for _ in range(12))
    for campaign in campaigns:
        for row in make_episode(3, campaign_id=campaign):
            store.append(row)
    other = Store(store.path, auto_compact=None, backend=backend)
    seen = []
    for i, episode in enumerate(store.iter_episodes(batch_rows=4)):
        seen.append(episode.campaign_id)
        assert len(episode) == 3
        if i in (2, 7):  # rewrite the store while the iteration is suspended
            other.append_many(make_episode(1, campaign_id="0" * 32))
            other.compact(min_files=1)
    assert seen == campaigns
    assert _count(store) == 38


# ---------------------------------------------------------------------- typed reads


def test_runs_filters_and_orders(filled: Store) -> None:
    runs = filled.runs("researchgym/Digits-v0", columns=("campaign_id", "step", "task"))
    assert runs.column_names == ["campaign_id", "step", "task"]
    assert runs.to_pylist()[:2] == [
        {"campaign_id": "a" * 32, "step": 0, "task": "t1"},
        {"campaign_id": "a" * 32, "step": 1, "task": "t1"},
    ]
    assert runs.num_rows == 8
    assert filled.runs(agent="tpe", columns=("task",))["task"].to_pylist() == ["t2"] * 3 + ["t1"]
    assert filled.runs(tasks=["t2", "wine"], columns=("task",)).num_rows == 5
    assert filled.runs(tasks=[], columns=("task",)).num_rows == 0
    assert filled.runs(status="ok").num_rows == _count(filled) - 1


def test_runs_trained_leaves_out_invalid_actions(store: Store) -> None:
    rows = make_episode(3)
    rows[1].update(metaprogram="null", status="invalid_action", action_flat=None)
    rows[2].update(metaprogram=None)
    store.append_many(rows)
    trained = store.runs(trained=True, columns=("step",))
    assert trained["step"].to_pylist() == [0]


def test_run_by_id(filled: Store) -> None:
    run_id = filled.runs(columns=("run_id",))["run_id"][3].as_py()
    row = filled.run(run_id)
    assert row is not None and row["run_id"] == run_id and row["step"] == 3
    assert filled.run("no-such-run") is None


def test_resolve_run_id_takes_a_unique_prefix(store: Store) -> None:
    ids = ["abc1" + "0" * 28, "abc2" + "0" * 28, "abd0" + "0" * 28]
    store.append_many(make_row("e" * 32, step, run_id=run_id) for step, run_id in enumerate(ids))
    assert store.resolve_run_id("abd") == ids[2]
    assert store.resolve_run_id(ids[0]) == ids[0]  # a whole id is its own prefix
    with pytest.raises(ConfigError, match=f"'ab' matches 3 runs .*{ids[0]}, {ids[1]}, {ids[2]}"):
        store.resolve_run_id("ab")
    with pytest.raises(NotFound, match="no stored step has a run_id starting with 'abe'"):
        store.resolve_run_id("abe")
    with pytest.raises(ConfigError, match="empty"):
        store.resolve_run_id("")


def test_resolve_run_id_lists_a_few_of_many_matches(store: Store) -> None:
    store.append_many(make_row("f" * 32, step, run_id=f"{step:032x}") for step in range(8))
    with pytest.raises(ConfigError, match=r"matches 8 runs \(0{32}, .*, 0{31}4, \.\.\.\)"):
        store.resolve_run_id("0")


def test_runs_rejects_unknown_columns(filled: Store) -> None:
    with pytest.raises(StoreError, match=r"unknown store column\(s\) \['steps; DROP'\]"):
        filled.runs(columns=("steps; DROP",))
    with pytest.raises(ValueError, match="unknown store column"):
        filled.runs(order_by=("nope",))


def test_runs_of_an_empty_store(store: Store) -> None:
    assert store.runs("researchgym/Digits-v0", columns=("task", "metaprogram")).num_rows == 0


def test_added_columns_read_null_in_files_written_before_them(store: Store) -> None:
    old = rows_to_table(make_episode(2, campaign_id="o" * 32))
    added = ("task_features", "source_env_id", "episode_seed", "verb", "parent_run_id", "fidelity")
    old = old.drop_columns(list(added))
    store.files.backend.write_table("steps/old.parquet", old)
    assert store.runs(columns=added).to_pylist() == [dict.fromkeys(added)] * 2
    features = '{"n_train": 10.0}'
    store.append_many(
        make_episode(1, campaign_id="n" * 32, task_features=features, source_env_id="src")
    )
    rows = store.runs(columns=("campaign_id", "task_features", "source_env_id")).to_pylist()
    assert rows == [
        {"campaign_id": "n" * 32, "task_features": features, "source_env_id": "src"},
        {"campaign_id": "o" * 32, "task_features": None, "source_env_id": None},
        {"campaign_id": "o" * 32, "task_features": None, "source_env_id": None},
    ]
    store.compact(min_files=1)
    assert store.runs(columns=("campaign_id", "task_features", "source_env_id")).to_pylist() == rows
