"""``rerun``: a stored step trained again from its metaprogram and seed."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest
from typer.testing import CliRunner

import researchgym  # noqa: F401
from researchgym.cli import app
from researchgym.reproduce import rerun
from researchgym.store import open_store


@pytest.fixture
def recorded_run(tmp_path):
    env = gym.make("researchgym/Tabular-v0", store=tmp_path, budget=1, agent="test")
    env.reset(seed=3, options={"task": "iris"})
    env.step(env.unwrapped.to_action({"train.epochs": 3, "model.width": 32}))
    env.close()
    store = open_store(tmp_path)
    return store, store.sql("SELECT run_id FROM steps").to_pylist()[0]["run_id"]


def test_rerun_reproduces_the_recorded_metrics(recorded_run) -> None:
    store, run_id = recorded_run
    report = rerun(store, run_id)
    assert report.matches
    assert report.max_abs_diff == 0.0
    assert report.measured == json.loads(store.sql("SELECT val_metrics FROM steps").to_pylist()[0]["val_metrics"])


def test_rerun_detects_a_changed_metric(recorded_run, tmp_path) -> None:
    store, run_id = recorded_run
    row = store.sql("SELECT * FROM steps").to_pylist()[0]
    metrics = json.loads(row["val_metrics"])
    metrics["score"] += 0.25
    other = open_store(tmp_path / "tampered")
    other.append({**row, "val_metrics": json.dumps(metrics)})
    report = rerun(other, run_id)
    assert not report.matches
    assert report.max_abs_diff == pytest.approx(0.25)


def test_rerun_cli(recorded_run, tmp_path) -> None:
    _, run_id = recorded_run
    result = CliRunner().invoke(app, ["rerun", run_id, "--store", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "match" in result.output
    missing = CliRunner().invoke(app, ["rerun", "nope", "--store", str(tmp_path)])
    assert missing.exit_code == 2
    assert "no stored step has run_id 'nope'" in " ".join(missing.output.split())
