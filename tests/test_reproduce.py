"""``rerun``: a stored step trained again from its metaprogram and seed."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest
from typer.testing import CliRunner

import researchgym  # noqa: F401
from researchgym.cli import app
from researchgym.reproduce import rerun
from researchgym.store import Store


@pytest.fixture
def recorded_run(tmp_path):
    env = gym.make("researchgym/Tabular-v0", store=tmp_path, budget=1, agent="test")
    env.reset(seed=3, options={"task": "iris"})
    env.step(env.unwrapped.to_action({"train.epochs": 3, "model.width": 32}))
    env.close()
    with Store(tmp_path) as store:
        yield store, store.sql("SELECT run_id FROM steps").to_pylist()[0]["run_id"]


def _tampered(store: Store, path, score_delta: float, **columns) -> Store:
    """A store at ``path`` holding the one step of ``store``, its score moved by
    ``score_delta`` and the given columns changed."""
    row = store.sql("SELECT * FROM steps").to_pylist()[0]
    metrics = json.loads(row["val_metrics"])
    metrics["score"] += score_delta
    tampered = Store(path)
    tampered.append({**row, **columns, "val_metrics": json.dumps(metrics)})
    return tampered


def test_rerun_reproduces_the_recorded_metrics(recorded_run) -> None:
    store, run_id = recorded_run
    report = rerun(store, run_id)
    assert report.matches
    assert report.max_abs_diff == 0.0
    assert report.measured == json.loads(
        store.sql("SELECT val_metrics FROM steps").to_pylist()[0]["val_metrics"]
    )


def test_rerun_detects_a_changed_metric(recorded_run, tmp_path) -> None:
    store, run_id = recorded_run
    with _tampered(store, tmp_path / "tampered", 0.25) as other:
        report = rerun(other, run_id)
    assert report.same_host and not report.matches
    assert report.max_abs_diff == pytest.approx(0.25)


def test_rerun_on_the_recording_host_compares_bitwise(recorded_run, tmp_path) -> None:
    store, run_id = recorded_run
    with _tampered(store, tmp_path / "tampered", 1e-9) as other:
        report = rerun(other, run_id)
    assert report.same_host and not report.matches


def test_rerun_of_a_run_from_another_host_compares_with_a_tolerance(recorded_run, tmp_path) -> None:
    store, run_id = recorded_run
    with _tampered(store, tmp_path / "close", 1e-9, host="elsewhere") as other:
        report = rerun(other, run_id)
    assert not report.same_host and report.max_abs_diff > 0.0
    assert report.matches
    with _tampered(store, tmp_path / "far", 1e-3, host="elsewhere") as other:
        assert not rerun(other, run_id).matches


def test_rerun_of_a_replay_step_uses_its_source_and_arguments(tmp_path) -> None:
    env = gym.make(
        "researchgym/Replay-v0",
        source="researchgym/Tabular-v0",
        missing="nearest",
        store=tmp_path,
        budget=2,
    )
    env.reset(seed=0, options={"task": "iris"})
    env.step(env.action_space.sample())
    env.close()
    with Store(tmp_path) as store:
        row = store.sql("SELECT run_id, status, val_metrics FROM steps").to_pylist()[0]
        report = rerun(store, row["run_id"])
    assert row["status"] == report.status == "ok"
    assert report.measured == json.loads(row["val_metrics"])
    assert report.matches


def test_rerun_cli_takes_a_unique_prefix_of_a_run_id(recorded_run, tmp_path) -> None:
    store, run_id = recorded_run
    result = CliRunner().invoke(app, ["rerun", run_id[:6], "--store", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "match" in result.output and f"rerun of {run_id} " in result.output
    missing = CliRunner().invoke(app, ["rerun", "nope", "--store", str(tmp_path)])
    assert missing.exit_code == 2
    assert "no stored step has a run_id starting with 'nope'" in " ".join(missing.output.split())

    twin = run_id[:6] + "0" * 26  # a second run whose id starts the same
    store.append({**store.sql("SELECT * FROM steps").to_pylist()[0], "run_id": twin})
    ambiguous = CliRunner().invoke(app, ["rerun", run_id[:6], "--store", str(tmp_path)])
    assert ambiguous.exit_code == 2
    message = " ".join(ambiguous.output.split())
    assert f"run id prefix '{run_id[:6]}' matches 2 runs" in message
    assert run_id in message and twin in message and "give more of its characters" in message
    full = CliRunner().invoke(app, ["rerun", run_id, "--store", str(tmp_path)])
    assert full.exit_code == 0, full.output
