"""The generation loop: train, measure on held-out tasks, run new campaigns, retrain."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest
from typer.testing import CliRunner

pytest.importorskip("transformers")

from researchgym.cli import app
from researchgym.store import open_store


@pytest.mark.slow
def test_two_rounds_learn_from_the_campaigns_they_ran(tmp_path):
    out, store = tmp_path / "loop", tmp_path / "store"
    result = CliRunner().invoke(
        app,
        [
            "generation-loop",
            "--env",
            "researchgym/Synthetic-v0",
            "--rounds",
            "2",
            "--campaigns",
            "2",
            "--steps",
            "2",
            "--timesteps",
            "2",
            "--later-timesteps",
            "1",
            "--eval-seeds",
            "1",
            "--n-candidates",
            "2",
            "--n-layer",
            "1",
            "--n-embd",
            "16",
            "--set",
            "train.epochs=2",
            "--store",
            str(store),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    rounds = json.loads((out / "rounds.json").read_text())
    assert [r["round"] for r in rounds] == [0, 1]
    assert (
        rounds[1]["training_runs"] == rounds[0]["training_runs"] + 4
    )  # 2 campaigns x 2 experiments
    assert all(
        0.0 <= r["held_out_median_regret"] <= 1.0 and r["held_out_campaigns"] == 8 for r in rounds
    )
    with open_store(store) as opened:
        steps = opened.sql("SELECT agent, task, metaprogram FROM steps").to_pylist()
    assert len(steps) == 8 and {s["agent"] for s in steps} == {"transformer"}
    assert all(json.loads(s["metaprogram"])["train.epochs"] == 2 for s in steps)
    training = json.loads((out / "round1" / "training.json").read_text())
    assert training["config"]["init_from"] == str(out / "round0")
    assert (out / "rounds.png").stat().st_size > 1000
    assert "round 1: trained on" in result.output and "held-out normalized regret" in result.output


def test_clear_errors_for_envs_without_held_out_tasks_and_used_stores(tmp_path):
    runner = CliRunner()
    paths = ["--out", str(tmp_path / "out"), "--store", str(tmp_path / "new")]
    result = runner.invoke(app, ["generation-loop", "--env", "researchgym/Replay-v0", *paths])
    assert result.exit_code == 2 and "no tasks of its own" in result.output
    result = runner.invoke(app, ["generation-loop", "--env", "researchgym/Tabular-v0", *paths])
    assert result.exit_code == 2 and "no held-out tasks" in result.output
    used = tmp_path / "used"
    env = gym.make(
        "researchgym/Replay-v0", source="researchgym/Synthetic-v0", store=str(used), budget=1
    )
    env.reset(seed=0)
    env.step(env.action_space.sample())
    env.close()
    result = runner.invoke(
        app, ["generation-loop", "--store", str(used), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 2 and "give the loop a new --store" in result.output
