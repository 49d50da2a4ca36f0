"""Forkable envs: continue, fork and stop runs; checkpoints; invalid verb uses; recorded rows."""

from __future__ import annotations

import json
import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from researchgym.engine import SubprocessExecutor
from researchgym.envs import ENV_IDS
from researchgym.errors import MAX_ERROR_CHARS
from researchgym.planning import run_campaign
from researchgym.planning.protocol import SearchPlanner
from researchgym.spaces import SettingError

TABULAR = "researchgym/Tabular-v0"
TASK = {"task": "wine"}
# A cosine schedule over max_epochs: continuing a run must not change it.
CHEAP = {"model.family": "linear", "optim.schedule": "cosine", "optim.lr": 0.05}


def make(interface: str = "text", **kwargs) -> gym.Env:
    kwargs.setdefault("store", False)
    kwargs.setdefault("device", "cpu")
    kwargs.setdefault("budget", 6)
    kwargs.setdefault("max_epochs", 4)
    return gym.make(TABULAR, interface=interface, forkable=True, **kwargs)


def step(env: gym.Env, command: dict) -> tuple:
    """Step with the action of the env's interface for a planner's command."""
    return env.step(env.unwrapped.to_action(command))


def new(epochs: int, **settings) -> dict:
    return {**CHEAP, "train.epochs": epochs, **settings}


# --- continue ------------------------------------------------------------------------------------
@pytest.mark.parametrize("interface", ["dict", "text"])
def test_continue_gives_the_metrics_of_one_longer_run(interface):
    env = make(interface)
    env.reset(seed=3, options=TASK)
    *_, first = step(env, new(1))
    *_, info = step(env, {"verb": "continue", "run": 0, "train.epochs": 3})
    assert info["status"] == "ok", info["error"]
    assert (info["run"], info["verb"], info["parent_run"], info["epochs"]) == (1, "continue", 0, 3)
    assert info["seed"] == first["seed"]  # a continued run keeps its data order
    assert info["metaprogram"] == {**first["metaprogram"], "train.epochs": 3}
    assert info["cost"]["samples"] == 2 * first["cost"]["samples"]  # only the work done now
    env.close()

    fresh = make(interface)
    fresh.reset(seed=3, options=TASK)
    *_, once = step(fresh, new(3))
    fresh.close()
    assert once["seed"] == first["seed"]
    assert info["metrics"] == once["metrics"]
    assert info["test_metrics"] == once["test_metrics"]
    assert info["curve"] == once["curve"]


def test_continue_of_a_continued_run_goes_on():
    env = make("dict")
    env.reset(seed=0, options=TASK)
    step(env, new(1))
    step(env, {"verb": "continue", "run": 0, "train.epochs": 2})
    *_, info = step(env, {"verb": "continue", "run": 1, "train.epochs": 4})
    assert (info["status"], info["parent_run"], info["epochs"]) == ("ok", 1, 4)
    assert [point["epoch"] for point in info["curve"]] == [1, 2, 3, 4]
    env.close()


@pytest.mark.slow  # starts a worker process
def test_continue_through_a_worker_process():
    env = make("dict", executor=SubprocessExecutor(device="cpu"))
    env.reset(seed=3, options=TASK)
    step(env, new(1))
    *_, info = step(env, {"verb": "continue", "run": 0, "train.epochs": 2})
    env.close()
    assert (info["status"], info["epochs"]) == ("ok", 2), info["error"]
    fresh = make("dict")
    fresh.reset(seed=3, options=TASK)
    *_, once = step(fresh, new(2))
    fresh.close()
    assert info["curve"] == once["curve"]


# --- fork ----------------------------------------------------------------------------------------
def test_fork_starts_from_the_parent_weights_with_its_other_settings():
    env = make("text")
    env.reset(seed=0, options=TASK)
    *_, parent = step(env, new(2))
    *_, info = step(env, {"verb": "fork", "run": 0, "optim.lr": 0.01, "train.epochs": 3})
    assert info["status"] == "ok", info["error"]
    assert (info["run"], info["verb"], info["parent_run"], info["epochs"]) == (1, "fork", 0, 3)
    # settings left out are the parent's (a linear model, not the default MLP)
    assert info["metaprogram"] == {**parent["metaprogram"], "optim.lr": 0.01, "train.epochs": 3}
    assert info["seed"] != parent["seed"]
    first, last = info["curve"][0], parent["curve"][-1]
    assert first["epoch"] == 2
    assert (first["val_loss"], first["val_score"]) == (last["val_loss"], last["val_score"])
    env.close()


def test_fork_that_changes_the_architecture_is_an_invalid_action():
    env = make("text")
    env.reset(seed=0, options=TASK)
    step(env, new(1))
    *_, info = step(env, {"verb": "fork", "run": 0, "model.family": "mlp", "train.epochs": 2})
    assert info["status"] == "invalid_action"
    assert "model.family" in info["error"]
    env.close()


# --- stop ----------------------------------------------------------------------------------------
def test_stop_ends_the_campaign_without_training(tmp_path):
    env = make("text", store=tmp_path)
    env.reset(seed=0, options=TASK)
    obs, reward, terminated, truncated, info = step(env, {"verb": "stop"})
    assert (reward, terminated, truncated) == (0.0, True, False)
    assert (info["status"], info["verb"], info["epochs"], info["cost"]["samples"]) == (
        "stopped",
        "stop",
        0,
        0,
    )
    assert json.loads(obs)["budget_left"] == 5
    with pytest.raises(gym.error.ResetNeeded, match="stopped"):
        step(env, new(1))
    env.reset(seed=1, options=TASK)  # a new campaign goes on as usual
    assert step(env, new(1))[-1]["status"] == "ok"
    rows = env.unwrapped.store.runs(columns=("status", "verb", "terminated")).to_pylist()
    assert {"status": "stopped", "verb": "stop", "terminated": True} in rows
    env.close()


# --- invalid uses ----------------------------------------------------------------------------------
INVALID = {
    "unknown run": ({"verb": "continue", "run": 4, "train.epochs": 3}, "run=4 does not exist"),
    "failed run": ({"verb": "fork", "run": 1, "train.epochs": 3}, "no trained weights"),
    "same fidelity": ({"verb": "continue", "run": 0, "train.epochs": 1}, "no further than"),
    "fidelity left out": ({"verb": "fork", "run": 0, "optim.lr": 0.1}, "no further than"),
    "over max_epochs": ({"verb": "continue", "run": 0, "train.epochs": 9}, "max_epochs=4"),
    "new over max_epochs": (new(5), "max_epochs=4"),
    "continue changing settings": (
        {"verb": "continue", "run": 0, "train.epochs": 2, "optim.lr": 0.5},
        "fork run 0 to change",
    ),
    "no run": ({"verb": "continue", "train.epochs": 2}, "needs the run"),
    "unknown verb": ({"verb": "resume", "run": 0}, "not one of"),
    "nested junk verb": ({"verb": {"a": [1] * 1000}}, "not one of"),
    "huge run": ({"verb": "fork", "run": 10**400}, "not a run index"),
    "fractional run": ({"verb": "fork", "run": 0.5}, "not a run index"),
    "NaN run": ({"verb": "continue", "run": math.nan}, "not a run index"),
    "junk run": ({"verb": "continue", "run": [[0] * 5000]}, "not a run index"),
    "bad setting": ({"verb": "fork", "run": 0, "optim.lr": -1}, "optim.lr"),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_verb_uses_are_invalid_actions_and_the_campaign_goes_on(case):
    command, reason = INVALID[case]
    env = make("text")
    env.reset(seed=0, options=TASK)
    step(env, new(1))
    env.step(json.dumps({"model.family": "nope"}))  # run 1 fails
    _, reward, terminated, _, info = env.step(json.dumps(command))
    assert (info["status"], terminated, info["run"]) == ("invalid_action", False, 2)
    assert reason in info["error"] and len(info["error"]) <= MAX_ERROR_CHARS
    assert reward == env.unwrapped.failure_reward
    *_, info = step(env, {"verb": "continue", "run": 0, "train.epochs": 2})
    assert info["status"] == "ok"
    env.close()


def test_strict_env_raises_for_an_invalid_verb_use():
    env = make("text", strict=True)
    env.reset(seed=0, options=TASK)
    with pytest.raises(SettingError, match="does not exist"):
        step(env, {"verb": "continue", "run": 0, "train.epochs": 2})
    env.close()


@pytest.mark.parametrize("interface", ["dict", "text"])
def test_env_that_is_not_forkable_answers_verbs_with_how_to_make_one(interface):
    env = gym.make(TABULAR, interface=interface, store=False, device="cpu")
    plain = gym.make(TABULAR, interface=interface, store=False)
    assert env.observation_space == plain.observation_space
    assert env.action_space == plain.action_space
    env.reset(seed=0, options=TASK)
    action = {"verb": "continue", "run": 0, "train.epochs": 2}
    _, _, terminated, _, info = env.step(json.dumps(action) if interface == "text" else action)
    assert (info["status"], terminated) == ("invalid_action", False)
    assert "forkable=True" in info["error"]
    with pytest.raises(SettingError, match="forkable=True"):
        env.unwrapped.to_action(action)
    env.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_epochs": 200}, "max_epochs=200 must be an integer in"),
        ({"max_epochs": True}, "max_epochs=True"),
        ({"checkpoint_bytes": 0}, "checkpoint_bytes=0"),
        ({"curve_length": -1}, "curve_length=-1"),
        ({"budget": 1}, "budget=1"),
    ],
)
def test_bad_forking_arguments_are_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(**kwargs)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_every_training_env_can_be_forkable(env_id):
    env = gym.make(env_id, forkable=True, store=False, budget=5)
    assert env.action_space["verb"] == spaces.Discrete(4)
    assert env.action_space["run"] == spaces.Discrete(5)
    assert {"history_curves", "history_epochs"} <= set(env.observation_space.spaces)
    env.close()


def test_forking_arguments_need_forkable():
    with pytest.raises(ValueError, match="forkable=True"):
        gym.make(TABULAR, max_epochs=4, store=False)


# --- checkpoints -----------------------------------------------------------------------------------
def test_evicted_run_cannot_be_continued():
    # A bound below one checkpoint keeps only the best-scoring run's.
    env = make("text", checkpoint_bytes=1)
    env.reset(seed=0, options=TASK)
    *_, a = step(env, new(1, **{"optim.lr": 0.05}))
    *_, b = step(env, new(1, **{"optim.lr": 0.0001}))
    worse = 0 if a["metrics"]["score"] < b["metrics"]["score"] else 1
    *_, info = step(env, {"verb": "continue", "run": worse, "train.epochs": 2})
    assert info["status"] == "invalid_action"
    assert f"run {worse} cannot be continued" in info["error"] and "evicted" in info["error"]
    *_, info = step(env, {"verb": "continue", "run": 1 - worse, "train.epochs": 2})
    assert info["status"] == "ok"
    env.close()


def test_checkpoints_are_cleaned_at_reset_and_close(tmp_path):
    env = make("dict", checkpoint_dir=tmp_path)
    env.reset(seed=0, options=TASK)
    step(env, new(1))
    first = env.unwrapped.checkpoint_dir
    assert first.parent == tmp_path and len(list(first.iterdir())) == 1
    env.reset(seed=1, options=TASK)
    assert not first.exists()
    step(env, new(1))
    second = env.unwrapped.checkpoint_dir
    env.close()
    assert not second.exists() and list(tmp_path.iterdir()) == []


def test_default_checkpoint_directory_is_removed_at_close():
    env = make("dict")
    env.reset(seed=0, options=TASK)
    step(env, new(1))
    root = env.unwrapped.checkpoint_dir.parent
    env.close()
    assert not root.exists()


def test_keep_checkpoints_keeps_them(tmp_path):
    env = make("dict", checkpoint_dir=tmp_path, keep_checkpoints=True)
    env.reset(seed=0, options=TASK)
    step(env, new(1))
    env.reset(seed=1, options=TASK)
    env.close()
    assert sorted(len(list(d.iterdir())) for d in tmp_path.iterdir()) == [0, 1]


# --- observations, records and interfaces ------------------------------------------------------------
def test_observations_show_each_run_fidelity_and_curve():
    env = make("dict", curve_length=3, history=4)
    obs, _ = env.reset(seed=0, options=TASK)
    assert env.observation_space.contains(obs)
    assert (obs["history_curves"] == 0).all() and (obs["history_epochs"] == 0).all()
    step(env, new(1))
    obs, *_, info = step(env, {"verb": "continue", "run": 0, "train.epochs": 4})
    assert env.observation_space.contains(obs)
    scores = [point["val_score"] for point in info["curve"]]
    np.testing.assert_allclose(obs["history_curves"][1], scores[-3:], rtol=1e-6)
    np.testing.assert_allclose(obs["history_curves"][0], [scores[0], -1, -1], rtol=1e-6)
    np.testing.assert_allclose(obs["history_epochs"], [0.25, 1.0, 0, 0])
    env.close()


def test_text_observation_lists_runs_with_verbs_parents_and_curves():
    env = make("text", curve_length=2)
    env.reset(seed=0, options=TASK)
    step(env, new(1))
    obs, *_ = step(env, {"verb": "continue", "run": 0, "train.epochs": 3})
    payload = json.loads(obs)
    assert "continue" in payload["reply_with"] and payload["max_epochs"] == 4
    runs = [{k: run[k] for k in ("run", "verb", "parent", "epochs")} for run in payload["history"]]
    assert runs == [
        {"run": 0, "verb": "new", "parent": None, "epochs": 1},
        {"run": 1, "verb": "continue", "parent": 0, "epochs": 3},
    ]
    assert [len(run["curve"]) for run in payload["history"]] == [1, 2]
    env.close()


def test_recorded_rows_have_verb_parent_run_and_fidelity(tmp_path):
    env = make("dict", store=tmp_path)
    env.reset(seed=0, options=TASK)
    step(env, new(1))
    step(env, {"verb": "continue", "run": 0, "train.epochs": 2})
    step(env, {"verb": "fork", "run": 1, "optim.lr": 0.01, "train.epochs": 3})
    step(env, {"verb": "fork", "run": 5})
    columns = ("step", "run_id", "verb", "parent_run_id", "fidelity", "status", "env_kwargs")
    rows = env.unwrapped.store.runs(columns=columns).to_pylist()
    env.close()
    rows.sort(key=lambda row: row["step"])
    ids = [row["run_id"] for row in rows]
    assert [(r["verb"], r["parent_run_id"], r["fidelity"]) for r in rows] == [
        ("new", None, 1),
        ("continue", ids[0], 2),
        ("fork", ids[1], 3),
        ("fork", None, 0),
    ]
    assert rows[-1]["status"] == "invalid_action"
    assert json.loads(rows[0]["env_kwargs"])["forkable"] is True


@pytest.mark.filterwarnings("ignore:.*render_fps")
def test_render_shows_verbs_parents_and_fidelities():
    env = make("dict", render_mode="ansi")
    env.reset(seed=0, options=TASK)
    step(env, new(1))
    step(env, {"verb": "continue", "run": 0, "train.epochs": 2})
    lines = env.render().splitlines()
    assert lines[1].endswith("new epochs=1") and lines[2].endswith("continue of run 0 epochs=2")
    env.close()


def test_flat_actions_carry_the_verb_and_the_run():
    env = make("flat")
    base = env.unwrapped
    assert env.action_space.shape == (len(base.schema) + 2,)
    env.reset(seed=0, options=TASK)
    step(env, new(1))
    action = base.to_action({"verb": "fork", "run": 0, "optim.lr": 0.01, "train.epochs": 2})
    assert env.action_space.contains(action)
    command = base.interface.parse_command(action)
    assert (command.verb, command.run, command.settings["model.family"]) == ("fork", 0, "linear")
    *_, info = env.step(action)
    assert (info["status"], info["parent_run"]) == ("ok", 0)
    *_, info = env.step(np.full(len(base.schema) + 2, np.nan))
    assert info["status"] == "invalid_action" and "verb and run" in info["error"]
    *_, info = env.step(np.zeros(len(base.schema)))
    assert info["status"] == "invalid_action" and "verb and the run" in info["error"]
    env.close()


class ScriptedPlanner(SearchPlanner):
    """Proposes a new run, continues it, then stops."""

    name = "scripted"
    script = (new(1), {"verb": "continue", "run": 0, "train.epochs": 2}, {"verb": "stop"})

    def reset(self, schema, *, seed=None, fixed=None):
        super().reset(schema, seed=seed, fixed=fixed)
        self.proposals = iter(self.script)
        self.seen = []

    def propose(self, observation):
        return next(self.proposals)

    def observe(self, metaprogram, reward, info):
        self.seen.append((info["verb"], metaprogram))


def test_campaign_loop_passes_verbs_to_the_env():
    env = make("dict")
    planner = ScriptedPlanner()
    result = run_campaign(env, planner, seed=0, options=TASK, fixed={"train.batch_size": 32})
    env.close()
    assert [s.status for s in result.steps] == ["ok", "ok", "stopped"]
    assert [verb for verb, _ in planner.seen] == ["new", "continue", "stop"]
    trained = planner.seen[1][1]
    assert (trained["train.epochs"], trained["train.batch_size"]) == (2, 32)
    assert planner.seen[2][1] is None
