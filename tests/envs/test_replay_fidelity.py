"""A forkable Replay-v0 answers new and continue at any fidelity from recorded curves."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import researchgym  # noqa: F401 - registers the envs
from researchgym.engine import TaskRef, train
from researchgym.envs.replay import REFERENCE_STORE, load_runs, recorded_horizons
from researchgym.errors import ConfigError
from researchgym.store import Store, StoreError
from researchgym.sweeps import Job, pending_jobs, run_sweep

SYNTHETIC = "researchgym/Synthetic-v0"
TASK = "synth_cls?seed=0"
HORIZON = 27  # of the shipped runs with full curves (researchgym/reference/README.md)


@pytest.fixture(scope="module")
def full_run() -> dict:
    """A shipped run of TASK recorded at the horizon that trained all its epochs."""
    runs = load_runs(None, SYNTHETIC, HORIZON)
    return next(r for r in runs if r["task"] == TASK and len(json.loads(r["curve"])) == HORIZON)


def _replay(**kwargs) -> gym.Env:
    env = gym.make("researchgym/Replay-v0", source=SYNTHETIC, forkable=True, budget=4, **kwargs)
    env.reset(seed=0, options={"task": TASK})
    return env


def _step(env: gym.Env, command: dict) -> dict:
    return env.step(env.unwrapped.to_action(command))[4]


def test_new_answers_the_recorded_curve_at_its_fidelity(full_run) -> None:
    env = _replay()
    assert env.unwrapped.max_epochs == HORIZON  # the data's one horizon
    curve = json.loads(full_run["curve"])
    info = _step(env, {**json.loads(full_run["metaprogram"]), "train.epochs": 5})
    assert info["status"] == "ok" and info["answered_by"]["run_id"] == full_run["run_id"]
    assert info["epochs"] == 5 and info["curve"] == curve[:5]
    assert info["metrics"] == {"score": curve[4]["val_score"], "loss": curve[4]["val_loss"]}
    assert info["test_metrics"] == {}  # measured only at the recorded run's end
    assert info["cost"]["samples"] == full_run["cost_samples"] * 5 // HORIZON
    assert info["cost"]["seconds"] == pytest.approx(full_run["cost_seconds"] * 5 / HORIZON)


def test_continue_answers_the_curve_further_on_charging_only_the_epochs_between(
    full_run,
) -> None:
    env = _replay()
    _step(env, {**json.loads(full_run["metaprogram"]), "train.epochs": 9})
    obs, _, _, _, info = env.step(
        env.unwrapped.to_action({"verb": "continue", "run": 0, "train.epochs": HORIZON})
    )
    assert info["status"] == "ok" and info["parent_run"] == 0
    scores = [entry["val_score"] for entry in json.loads(full_run["curve"])]
    shown = obs["history_curves"]  # the last 16 scores of each run
    assert np.allclose(shown[0][:9], scores[:9]) and np.allclose(shown[1], scores[-16:])
    assert info["answered_by"]["run_id"] == full_run["run_id"]
    assert info["curve"] == json.loads(full_run["curve"]) and info["epochs"] == HORIZON
    assert info["metrics"] == json.loads(full_run["val_metrics"])
    assert info["test_metrics"] == json.loads(full_run["test_metrics"])
    assert info["cost"]["samples"] == full_run["cost_samples"] * (HORIZON - 9) // HORIZON
    assert info["spent"]["samples"] == full_run["cost_samples"]  # as one run of HORIZON


def test_a_nearest_match_ignores_the_fidelity_and_answers_it(full_run) -> None:
    env = _replay(missing="nearest")
    asked = {**json.loads(full_run["metaprogram"]), "train.epochs": 2}
    info = _step(env, {**asked, "optim.lr": asked["optim.lr"] * 1.01})
    assert info["answered_by"]["match"] == "nearest"
    assert info["answered_by"]["run_id"] == full_run["run_id"]
    assert info["curve"] == json.loads(full_run["curve"])[:2]


def test_a_run_that_stopped_early_answers_any_later_fidelity_as_it_ended() -> None:
    runs = load_runs(None, SYNTHETIC, HORIZON)
    row = next(r for r in runs if r["task"] == TASK and len(json.loads(r["curve"])) < HORIZON)
    stopped = len(json.loads(row["curve"]))
    env = _replay()
    info = _step(env, {**json.loads(row["metaprogram"]), "train.epochs": HORIZON})
    assert info["epochs"] == stopped and info["metrics"] == json.loads(row["val_metrics"])
    assert info["cost"]["samples"] == row["cost_samples"]


def test_fork_cannot_be_replayed_and_says_why(full_run) -> None:
    env = _replay()
    _step(env, {**json.loads(full_run["metaprogram"]), "train.epochs": 3})
    info = _step(env, {"verb": "fork", "run": 0, "train.epochs": 9, "optim.lr": 0.01})
    assert info["status"] == "invalid_action"
    assert "cannot fork a run" in info["error"] and "never recorded" in info["error"]
    assert _step(env, {"verb": "stop"})["status"] == "stopped"


def test_a_horizon_without_recorded_runs_is_an_error_naming_the_recorded_ones() -> None:
    with pytest.raises(StoreError, match=r"max_epochs=9.*max_epochs in \[27\].*--max-epochs 9"):
        gym.make("researchgym/Replay-v0", source=SYNTHETIC, forkable=True, max_epochs=9)
    rows = load_runs(None, SYNTHETIC, HORIZON)
    with pytest.raises(StoreError, match="not forkable.*max_epochs in \\[27\\]"):
        gym.make("researchgym/Replay-v0", source=SYNTHETIC, data=rows)
    with pytest.raises(ConfigError, match=r"max_epochs in \[\]"):
        gym.make("researchgym/Replay-v0", source="researchgym/Tabular-v0", forkable=True)


def test_the_shipped_horizon_runs_have_full_curves() -> None:
    for source, tasks in ((SYNTHETIC, {TASK}), ("researchgym/Digits-v0", {"digits"})):
        runs = load_runs(REFERENCE_STORE, source, HORIZON)
        assert {r["task"] for r in runs} == tasks and len(runs) >= 16
        for row in runs:
            assert json.loads(row["metaprogram"])["train.epochs"] == HORIZON
            curve = json.loads(row["curve"])
            assert [entry["epoch"] for entry in curve] == list(range(1, len(curve) + 1))
            assert row["status"] == "ok" and "val_score" in curve[-1]
        full = sum(len(json.loads(r["curve"])) == HORIZON for r in runs)
        assert full >= len(runs) // 4  # the others stopped early, as they were asked to
    assert recorded_horizons(load_runs(None, "researchgym/Digits-v0", HORIZON)) == [HORIZON]


def test_a_recorded_prefix_is_what_training_to_that_fidelity_gives(tmp_path) -> None:
    """The key fact replay rests on, with a sweep recorded at a horizon of 4 epochs."""
    metaprogram = {
        "model.family": "linear",
        "optim.schedule": "cosine",
        "optim.lr": 0.05,
        "train.epochs": 4,
    }
    env = gym.make("researchgym/Tabular-v0", store=False, forkable=True, max_epochs=4)
    metaprogram = env.unwrapped.schema.validate(metaprogram)
    env.close()
    job = Job("wine", metaprogram, seed=7)
    statuses = list(
        run_sweep("researchgym/Tabular-v0", [job], store_path=tmp_path, agent="a", max_epochs=4)
    )
    assert statuses[0][0] == "ok"
    (row,) = load_runs(tmp_path, "researchgym/Tabular-v0", 4)
    assert json.loads(row["env_kwargs"])["max_epochs"] == 4
    with Store(tmp_path) as store:  # a sweep resumes at its own horizon
        assert pending_jobs([job], store, "researchgym/Tabular-v0", "a", max_epochs=4) == []
        assert pending_jobs([job], store, "researchgym/Tabular-v0", "a") == [job]
    trained = train(
        {**metaprogram, "train.epochs": 2},
        task=TaskRef("wine"),
        seed=row["seed"],  # the training seed the env drew
        device="cpu",
        schedule_epochs=4,
    )
    replay = gym.make(
        "researchgym/Replay-v0",
        source="researchgym/Tabular-v0",
        data=tmp_path,
        forkable=True,
        tasks=["wine"],
        budget=2,
    )
    replay.reset(seed=0, options={"task": "wine"})
    info = _step(replay, {**metaprogram, "train.epochs": 2})
    assert info["curve"] == trained.curve  # bitwise, through the store's JSON
    assert info["metrics"]["score"] == trained.val_metrics["score"]


def test_a_forkable_surrogate_answers_new_but_not_continue_nor_fork() -> None:
    env = gym.make(
        "researchgym/Surrogate-v0", source="researchgym/Tabular-v0", forkable=True, budget=3
    )
    env.reset(seed=0, options={"task": "wine"})
    assert _step(env, {"train.epochs": 3})["status"] == "ok"
    for verb in ("continue", "fork"):
        info = _step(env, {"verb": verb, "run": 0, "train.epochs": 9})
        assert info["status"] == "invalid_action"
        assert f"cannot {verb} a run: it predicts a run's final metrics" in info["error"]
