"""The generation loop: train, measure on held-out tasks, run new campaigns, retrain."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

pytest.importorskip("transformers")

from researchgym.cli import app
from researchgym.store import open_store


def test_two_rounds_learn_from_the_campaigns_they_ran(tmp_path):
    out, store = tmp_path / "loop", tmp_path / "store"
    result = CliRunner().invoke(app, [
        "generation-loop", "--env", "researchgym/Synthetic-v0", "--rounds", "2", "--campaigns", "2",
        "--budget", "2", "--steps", "2", "--later-steps", "1", "--eval-seeds", "1", "--n-candidates", "2",
        "--n-layer", "1", "--n-embd", "16", "--set", "train.epochs=2", "--store", str(store), "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    rounds = json.loads((out / "rounds.json").read_text())
    assert [r["round"] for r in rounds] == [0, 1]
    assert rounds[1]["training_runs"] == rounds[0]["training_runs"] + 4  # 2 campaigns x 2 experiments
    assert all(0.0 <= r["held_out_median_regret"] <= 1.0 and r["held_out_campaigns"] == 8 for r in rounds)
    steps = open_store(store).sql("SELECT agent, task, metaprogram FROM steps").to_pylist()
    assert len(steps) == 8 and {s["agent"] for s in steps} == {"transformer"}
    assert all(json.loads(s["metaprogram"])["train.epochs"] == 2 for s in steps)
    training = json.loads((out / "round1" / "training.json").read_text())
    assert training["config"]["init_from"] == str(out / "round0")
    assert (out / "rounds.png").stat().st_size > 1000
    assert "round 1: held-out normalized regret median" in result.output
