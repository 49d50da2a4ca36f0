"""Replay-v0 says which recorded run answered a step, and never passes one off silently."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pyarrow.parquet as pq
import pytest

import researchgym  # noqa: F401 - registers the envs
from researchgym.engine import TaskRef
from researchgym.envs.replay import REFERENCE_STORE, ReplayExecutor, load_runs
from researchgym.envs.suites import suite_of
from researchgym.errors import ConfigError
from researchgym.store import open_store

SOURCE = "researchgym/Tabular-v0"
#: Settings no recorded run of the reference store has.
FAR_AWAY = {"optim.lr": 1.0, "optim.name": "sgd", "optim.momentum": 0.0, "train.batch_size": 8}


@pytest.fixture(scope="module")
def runs() -> dict[str, dict]:
    """The reference runs of SOURCE by run id."""
    return {row["run_id"]: row for row in load_runs(None, SOURCE)}


def _step(env, settings, task="wine"):
    env.reset(seed=0, options={"task": task})
    return env.step(env.unwrapped.to_action(settings))


@pytest.mark.parametrize("interface", ["dict", "flat"])
def test_an_exact_match_says_so_with_the_recorded_settings(runs, interface) -> None:
    row = next(r for r in runs.values() if r["task"] == "iris")
    recorded = json.loads(row["metaprogram"])
    env = gym.make("researchgym/Replay-v0", source=SOURCE, interface=interface)
    _, reward, _, _, info = _step(env, recorded, task="iris")
    answered = info["answered_by"]
    assert info["status"] == "ok" and answered["match"] == "exact"
    assert answered["distance"] == pytest.approx(0.0, abs=1e-6)
    assert answered["metaprogram"] == recorded
    same = [
        r for r in runs.values() if r["task"] == "iris" and r["metaprogram"] == row["metaprogram"]
    ]
    assert answered["run_id"] in {r["run_id"] for r in same}
    assert info["metrics"] == json.loads(runs[answered["run_id"]]["val_metrics"])
    assert reward == info["metrics"]["score"]


def test_an_action_never_recorded_is_an_error_by_default() -> None:
    env = gym.make("researchgym/Replay-v0", source=SOURCE)
    _, reward, _, _, info = _step(env, FAR_AWAY)
    assert info["status"] == "error" and reward == env.unwrapped.failure_reward
    assert info["metrics"] == {} and info["answered_by"] is None
    error = info["error"]
    assert "no recorded run of this metaprogram" in error
    # the settings that differ, first the one the recorded sweep pinned
    assert "differs in train.epochs=10 (recorded: 20 in every run), " in error
    assert "distance" in error and "missing='nearest'" in error


def test_nearest_reports_and_records_the_run_that_answered(runs, tmp_path) -> None:
    env = gym.make("researchgym/Replay-v0", source=SOURCE, missing="nearest", store=tmp_path)
    _, reward, _, _, info = _step(env, FAR_AWAY)
    env.close()
    answered = info["answered_by"]
    assert info["status"] == "ok" and answered["match"] == "nearest"
    row = runs[answered["run_id"]]
    assert row["task"] == "wine"
    assert answered["metaprogram"] == json.loads(row["metaprogram"]) != info["metaprogram"]
    schema = env.unwrapped.schema
    gap = schema.encode(answered["metaprogram"]) - schema.encode(info["metaprogram"])
    assert answered["distance"] > 0
    assert answered["distance"] == pytest.approx(float(np.linalg.norm(gap)), rel=1e-5)
    assert info["metrics"] == json.loads(row["val_metrics"]) and reward == info["metrics"]["score"]
    with open_store(tmp_path) as store:
        (stored,) = store.sql("SELECT status, metaprogram, answered_by FROM steps").to_pylist()
    assert stored["status"] == "ok"
    assert json.loads(stored["metaprogram"]) == info["metaprogram"]  # what the agent chose
    assert json.loads(stored["answered_by"]) == answered  # and what answered it


def test_stores_written_before_the_answered_by_column_read_it_as_null() -> None:
    files = list(REFERENCE_STORE.rglob("*.parquet"))
    assert any("answered_by" not in pq.read_schema(f).names for f in files)
    with open_store(REFERENCE_STORE) as store:
        [counts] = store.sql(
            "SELECT count(*) AS n, count(answered_by) AS answered FROM steps"
        ).to_pylist()
    assert counts["n"] > 0 and counts["answered"] == 0


def test_an_unknown_policy_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="did you mean 'nearest'.*choose one of"):
        gym.make("researchgym/Replay-v0", source=SOURCE, missing="neares")


def test_each_recorded_metaprogram_is_encoded_once_and_each_answer_is_fresh(
    runs, monkeypatch
) -> None:
    schema = suite_of(SOURCE).make_schema()
    calls = []
    encode = schema.encode
    monkeypatch.setattr(schema, "encode", lambda values: calls.append(values) or encode(values))
    rows = list(runs.values())
    executor = ReplayExecutor(rows, schema)
    assert len({r["metaprogram"] for r in rows}) == len(calls) < len(rows)  # seeds share one
    row = rows[0]
    task = TaskRef(row["task"])
    first = executor.run(json.loads(row["metaprogram"]), task=task, seed=0)
    first.val_metrics.clear()
    first.curve.append({"epoch": -1})
    again = executor.run(json.loads(row["metaprogram"]), task=task, seed=0)
    recorded = runs[again.answered_by["run_id"]]
    assert again.val_metrics == json.loads(recorded["val_metrics"]) != {}
    assert again.curve == json.loads(recorded["curve"])
