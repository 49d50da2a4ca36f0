"""ResearchEnv: steps, observations, rewards, budgets, tasks, determinism and failures."""

from __future__ import annotations

import json
import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from researchgym.engine import InProcessExecutor, LambdaHook, SubprocessExecutor, load_task_data
from researchgym.envs.research_env import (
    MIN_OK_REWARD,
    NotAResearchEnvError,
    unwrap_research_env,
)
from researchgym.envs.suites import get_suite
from researchgym.spaces import SettingError
from tests.conftest import (
    assert_same_metaprogram,
    capped_executor,
    slow_params,
    without_measurements,
)

TABULAR = "researchgym/Tabular-v0"
DIGITS = "researchgym/Digits-v0"
INTERFACES = ("dict", "flat", "text")
CHEAP = {"model.family": "linear", "train.epochs": 2}
FAILURE_REWARD = -2.5


def make(env_id: str = TABULAR, **kwargs) -> gym.Env:
    kwargs.setdefault("store", False)
    kwargs.setdefault("device", "cpu")
    return gym.make(env_id, **kwargs)


def act(env: gym.Env, settings: dict):
    """The action of the env's interface for a partial metaprogram."""
    return env.unwrapped.to_action(settings)


def chance(task: str) -> float:
    data = load_task_data(task)
    return 1.0 / data.n_classes if data.kind == "classification" else 0.0


# --- one step --------------------------------------------------------------------------------
@pytest.mark.parametrize("interface", INTERFACES)
def test_step_returns_observation_reward_and_info(interface):
    env = make(interface=interface, budget=3)
    schema = env.unwrapped.schema
    obs, info = env.reset(seed=0, options={"task": "wine"})
    assert env.observation_space.contains(obs)
    assert info["task"] == "wine" and info["budget"] == 3
    obs, reward, terminated, truncated, info = env.step(act(env, CHEAP))
    assert env.observation_space.contains(obs)
    assert (terminated, truncated) == (False, False)
    assert info["status"] == "ok" and info["error"] is None
    assert_same_metaprogram(schema, info["metaprogram"], schema.validate(CHEAP))
    metrics = info["metrics"]
    assert {"loss", "accuracy", "score"} <= set(metrics)
    assert set(info["test_metrics"]) == set(metrics)
    assert reward == metrics["score"]
    assert 0.0 <= metrics["score"] <= 1.0
    assert [p["epoch"] for p in info["curve"]] == [1, 2]
    assert info["curve"][-1]["val_score"] == metrics["score"]
    assert set(info["cost"]) == {"samples", "seconds", "flops"}
    assert info["cost"]["flops"] is None  # counted only by an env that needs FLOPs
    assert info["spent"] == info["cost"] and info["cost_left"] is None
    assert info["objectives"] == {
        "score": metrics["score"],
        "seconds": info["cost"]["seconds"],
        "n_params": 13 * 3 + 3,  # linear: 13 wine features to 3 classes, and biases
    }
    assert type(info["cost"]["samples"]) is int and type(info["cost"]["seconds"]) is float
    assert info["cost"]["samples"] >= 2 * (len(load_task_data("wine").x_train) - 1)
    assert info["cost"]["seconds"] > 0
    assert info["best_score"] == metrics["score"]
    env.close()


def test_flat_observation_is_the_dict_observation_flattened():
    dict_env, flat_env = make(interface="dict"), make(interface="flat")
    obs_d, _ = dict_env.reset(seed=3, options={"task": "iris"})
    obs_f, _ = flat_env.reset(seed=3, options={"task": "iris"})
    dict_space = dict_env.observation_space
    np.testing.assert_array_equal(obs_f, spaces.flatten(dict_space, obs_d))
    schema = flat_env.unwrapped.schema
    for settings in (CHEAP, {**CHEAP, "optim.lr": 0.05}):
        flat_action = act(flat_env, settings)
        obs_f, r_f, *_ = flat_env.step(flat_action)
        obs_d, r_d, *_ = dict_env.step(act(dict_env, schema.decode(flat_action)))
        assert r_d == r_f
        np.testing.assert_array_equal(obs_f, spaces.flatten(dict_space, obs_d))


def test_dict_observation_shows_the_recent_history():
    env = make(interface="dict", budget=4, history=2, failure_reward=FAILURE_REWARD)
    schema = env.unwrapped.schema
    obs, _ = env.reset(seed=1, options={"task": "wine"})
    assert obs["history_mask"].sum() == 0 and obs["budget_left"][0] == 1.0
    assert obs["best_score"][0] == -1.0
    actions = [
        act(env, CHEAP),
        {"train.epochs": np.int64(999)},
        act(env, {**CHEAP, "optim.lr": 0.05}),
    ]
    steps = []
    for k, action in enumerate(actions, start=1):
        obs, _, _, _, info = env.step(action)
        steps.append(info)
        shown = steps[-2:]
        assert obs["history_mask"].tolist() == [1.0] * len(shown) + [0.0] * (2 - len(shown))
        assert obs["budget_left"][0] == pytest.approx((4 - k) / 4)
        for row, past in enumerate(shown):
            if past["status"] == "ok":
                np.testing.assert_array_equal(
                    obs["history_settings"][row], schema.encode(past["metaprogram"])
                )
                assert obs["history_scores"][row] == pytest.approx(past["metrics"]["score"])
            else:
                assert obs["history_scores"][row] == -1.0
                assert not obs["history_settings"][row].any()
        scores = [s["metrics"]["score"] for s in steps if s["status"] == "ok"]
        assert obs["best_score"][0] == pytest.approx(max(scores))
    assert [s["status"] for s in steps] == ["ok", "invalid_action", "ok"]


def test_text_observation_shows_the_history():
    env = make(interface="text", budget=3)
    obs, _ = env.reset(seed=1, options={"task": "iris"})
    first = json.loads(obs)
    assert first["task"] == "iris" and first["budget_left"] == 3 and first["history"] == []
    assert [s["name"] for s in first["settings_schema"]] == env.unwrapped.schema.names
    obs, reward, _, _, info = env.step(json.dumps({"model.family": "linear", "train.epochs": 2}))
    obs, _, _, _, bad = env.step('{"optim.lr": 7}')
    view = json.loads(obs)
    assert view["budget_left"] == 1
    assert view["best_score"] == pytest.approx(info["metrics"]["score"])
    assert view["history"][0] == {"settings": info["metaprogram"], "score": reward, "status": "ok"}
    assert view["history"][1] == {"settings": None, "score": None, "status": "invalid_action"}
    assert bad["status"] == "invalid_action"


@pytest.mark.filterwarnings("ignore:.*render_fps")
def test_render_ansi_lists_the_steps():
    env = make(budget=2, render_mode="ansi")
    env.reset(seed=0, options={"task": "iris"})
    env.step(act(env, CHEAP))
    env.step({"train.epochs": np.int64(0)})
    text = env.render()
    assert "task=iris" in text and "budget_left=0" in text
    assert "step 0: ok" in text and "step 1: invalid_action" in text


# --- rewards -------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["metric", "improvement", "regret"])
@pytest.mark.parametrize("task", ["wine", "diabetes"])
def test_reward_modes(mode, task):
    env = make(reward=mode, budget=5, failure_reward=FAILURE_REWARD)
    env.reset(seed=2, options={"task": task})
    plan = [
        act(env, CHEAP),
        {"train.epochs": np.int64(500)},  # invalid: a failure in the middle
        act(env, {**CHEAP, "optim.lr": 0.03, "train.epochs": 5}),
        act(env, {"model.family": "mlp", "train.epochs": 1, "model.width": 16}),
        act(env, {"model.family": "mlp", "train.epochs": 6, "optim.lr": 0.01}),
    ]
    best, base = None, chance(task)
    rewards, expected = [], []
    for action in plan:
        _, reward, _, _, info = env.step(action)
        rewards.append(reward)
        if info["status"] != "ok":
            expected.append(FAILURE_REWARD)
            continue
        score = info["metrics"]["score"]
        if mode == "metric":
            expected.append(score)
        elif mode == "improvement":
            expected.append(max(0.0, score - (base if best is None else best)))
        else:
            expected.append(max(MIN_OK_REWARD, -(1.0 - score) / (1.0 - base)))
        best = score if best is None else max(best, score)
        assert info["best_score"] == best
    assert rewards == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert rewards[1] == FAILURE_REWARD
    if mode == "improvement":
        assert all(r >= 0 for i, r in enumerate(rewards) if i != 1)
    if mode == "regret":
        assert all(r <= 0 for r in rewards)


# A regression that finishes with R² about -1.6: worse than predicting the mean, not a failure.
BAD_REGRESSION = {
    "model.family": "linear",
    "optim.name": "adam",
    "optim.lr": 1.0,
    "train.epochs": 3,
}


@pytest.mark.parametrize("mode", ["metric", "improvement", "regret"])
def test_a_finished_bad_run_keeps_its_raw_metric_and_is_rewarded_above_a_failure(mode, tmp_path):
    from researchgym.store import open_store

    env = make(reward=mode, budget=2, store=tmp_path)
    env.reset(seed=0, options={"task": "diabetes"})
    _, bad, _, _, info = env.step(act(env, BAD_REGRESSION))
    assert info["status"] == "ok"
    r2 = info["metrics"]["r2"]
    assert r2 < -1.0 and info["metrics"]["score"] == -1.0  # the score is clipped, r2 is not
    _, failed, _, _, failure = env.step({"train.epochs": np.int64(500)})
    assert failure["status"] == "invalid_action"
    assert failed == env.unwrapped.failure_reward < MIN_OK_REWARD <= bad
    env.close()
    with open_store(tmp_path) as store:
        row = store.sql(
            "SELECT val_score, val_metrics, reward FROM steps WHERE step = 0"
        ).to_pylist()
    assert row == [{"val_score": -1.0, "val_metrics": json.dumps(info["metrics"]), "reward": bad}]
    assert json.loads(row[0]["val_metrics"])["r2"] == r2


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="reward="):
        make(reward="accuracy")
    with pytest.raises(ValueError, match="budget="):
        make(budget=0)
    with pytest.raises(ValueError, match="interface="):
        make(interface="image")


# --- budget and tasks --------------------------------------------------------------------------
def test_budget_terminates_the_episode():
    env = make(budget=2)
    with pytest.raises(gym.error.ResetNeeded):
        env.step(act(env, CHEAP))
    env.reset(seed=0, options={"task": "iris"})
    assert env.step(act(env, CHEAP))[2] is False
    assert env.step(act(env, CHEAP))[2] is True
    with pytest.raises(gym.error.ResetNeeded):
        env.step(act(env, CHEAP))
    obs, _ = env.reset(seed=1)
    assert obs["budget_left"][0] == 1.0 and obs["history_mask"].sum() == 0
    assert env.step(act(env, CHEAP))[2] is False


def test_task_is_drawn_at_reset_from_the_suite():
    env = make()
    tasks = get_suite("tabular").tasks
    drawn = [env.reset(seed=seed)[1]["task"] for seed in range(30)]
    assert set(drawn) <= set(tasks)
    assert len(set(drawn)) >= 3
    assert [env.reset(seed=seed)[1]["task"] for seed in range(30)] == drawn
    obs_iris, _ = env.reset(seed=0, options={"task": "iris"})
    obs_diabetes, info = env.reset(seed=0, options={"task": "diabetes"})
    assert info["task"] == "diabetes"
    assert not np.array_equal(obs_iris["task"], obs_diabetes["task"])
    _, _, _, _, step_info = env.step(act(env, CHEAP))
    assert step_info["task"] == "diabetes" and "r2" in step_info["metrics"]


def test_unknown_task_raises():
    env = make()
    for task in ("mnist", "digits", "wines"):
        with pytest.raises(ValueError, match=task):
            env.reset(seed=0, options={"task": task})


def test_held_out_tasks_are_reached_by_name_and_never_drawn():
    held_out = get_suite("synthetic").held_out_tasks
    env = make("researchgym/Synthetic-v0", budget=1)
    assert env.unwrapped.held_out_tasks == held_out
    assert not {env.reset(seed=seed)[1]["task"] for seed in range(40)} & set(held_out)
    _, info = env.reset(seed=0, options={"task": held_out[0]})
    assert info["task"] == held_out[0] == "synth_cls?seed=1000"
    _, _, _, _, step_info = env.step(act(env, CHEAP))
    assert (step_info["task"], step_info["status"]) == (held_out[0], "ok")
    assert env.unwrapped.env_kwargs["tasks"] == list(env.unwrapped.tasks)  # held-out ones apart
    with pytest.raises(ValueError, match=r"synth_cls\?seed=1004.*did you mean.*held-out one of"):
        env.reset(seed=0, options={"task": "synth_cls?seed=1004"})
    replay = gym.make("researchgym/Replay-v0", source="researchgym/Synthetic-v0")
    replay.reset(seed=0, options={"task": held_out[-1]})
    assert replay.step(act(replay, CHEAP))[4]["task"] == held_out[-1]


# --- determinism -------------------------------------------------------------------------------
def _episode(seed: int, interface: str = "dict"):
    env = make(interface=interface, budget=3)
    env.reset(seed=seed, options={"task": "wine"})
    out = []
    for settings in (
        {"model.family": "mlp", "train.epochs": 2, "model.dropout": 0.3},
        {"model.family": "mlp", "train.epochs": 2, "train.batch_size": 16},
        CHEAP,
    ):
        obs, reward, _, _, info = env.step(act(env, settings))
        out.append((obs, reward, info))
    return out


def test_same_seed_and_actions_give_the_same_metrics():
    a, b = _episode(11), _episode(11)
    for (obs_a, r_a, info_a), (obs_b, r_b, info_b) in zip(a, b):
        assert r_a == r_b
        assert info_a["metrics"] == info_b["metrics"]
        assert info_a["test_metrics"] == info_b["test_metrics"]
        assert info_a["curve"] == info_b["curve"]
        assert info_a["seed"] == info_b["seed"]
        assert without_measurements(info_a) == without_measurements(info_b)
        for key in obs_a:
            np.testing.assert_array_equal(obs_a[key], obs_b[key])


def test_different_seed_gives_a_different_curve():
    a, b = _episode(11), _episode(12)
    assert a[0][2]["seed"] != b[0][2]["seed"]
    assert a[0][2]["curve"] != b[0][2]["curve"]


# --- failures ----------------------------------------------------------------------------------
INVALID_ACTIONS = [
    ("dict", {"train.epochs": np.int64(1000)}, ["train.epochs=1000", "[1, 100]", "omit it"]),
    ("dict", {"model.family": np.int64(7)}, ["model.family=7", "choice index"]),
    ("dict", "model.family=linear", ["must be a dict of settings"]),
    ("text", '{"optim.lr": 5.0}', ["optim.lr=5.0", "[1e-05, 1]", "omit it"]),
    ("text", '{"optim.lrr": 0.1}', ["did you mean 'optim.lr'"]),
    ("text", "train faster", ["not valid JSON"]),
    ("text", '["optim.lr", 0.1]', ["must be an object"]),
    ("flat", np.zeros(3, dtype=np.float32), ["flat action has shape (3,)"]),
]


@pytest.mark.parametrize("interface, action, words", INVALID_ACTIONS)
def test_invalid_action_is_a_failed_step(interface, action, words):
    env = make(interface=interface, budget=3, failure_reward=FAILURE_REWARD)
    env.reset(seed=0, options={"task": "iris"})
    _, reward, terminated, _, info = env.unwrapped.step(action)
    assert info["status"] == "invalid_action"
    assert reward == FAILURE_REWARD
    for word in words:
        assert word in info["error"]
    assert info["metaprogram"] is None and info["metrics"] == {} and info["curve"] == []
    assert terminated is False
    _, reward, terminated, _, info = env.step(act(env, CHEAP))  # the episode goes on
    assert info["status"] == "ok" and reward == info["metrics"]["score"]
    assert env.unwrapped._view.budget_left == 1


@pytest.mark.parametrize("interface, action, words", INVALID_ACTIONS)
def test_strict_mode_raises_a_setting_error(interface, action, words):
    env = make(interface=interface, strict=True)
    env.reset(seed=0, options={"task": "iris"})
    with pytest.raises(SettingError) as err:
        env.unwrapped.step(action)
    for word in words:
        assert word in str(err.value)


def test_finite_flat_actions_are_clipped_and_non_finite_ones_invalid():
    env = make(interface="flat", budget=2)
    schema = env.unwrapped.schema
    env.reset(seed=0, options={"task": "iris"})
    action = np.full(len(schema), -5.0, dtype=np.float32)
    _, _, _, _, info = env.step(action)
    assert info["status"] == "ok"
    assert info["metaprogram"] == schema.decode(np.clip(action, -1, 1))
    assert info["metaprogram"]["train.epochs"] == 1
    action[schema.names.index("model.family")] = np.nan
    _, _, _, _, info = env.step(action)
    assert info["status"] == "invalid_action"
    assert "non-finite entries: model.family=nan" in info["error"]


def _hook_error_executor():
    def explode(state):
        raise RuntimeError("the loss exploded in a hook")

    return InProcessExecutor(device="cpu", hooks=[LambdaHook(explode)])


DIVERGES = {
    "optim.name": "sgd",
    "optim.lr": 1.0,
    "optim.momentum": 0.99,
    "model.depth": 4,
    "data.scaling": "none",
}
SLOW = {"train.epochs": 100, "train.batch_size": 8, "model.width": 512}

# case -> (env id, task, executor factory, settings, words in the error, status of a next cheap step)
FAILURES = {
    "diverged": (TABULAR, "diabetes", lambda: None, DIVERGES, "non-finite", "ok"),
    "error": (TABULAR, "iris", _hook_error_executor, CHEAP, "the loss exploded in a hook", "error"),
    "timeout-in-process": (
        TABULAR,
        "breast_cancer",
        lambda: InProcessExecutor(device="cpu", timeout=0.5),
        SLOW,
        "budget",
        "ok",
    ),
    "timeout-subprocess": (
        TABULAR,
        "breast_cancer",
        lambda: SubprocessExecutor(device="cpu", timeout=0.5),
        SLOW,
        "0.5s budget",
        "ok",
    ),
    "oom": (
        DIGITS,
        "digits",
        lambda: SubprocessExecutor(device="cpu", memory_limit_mb=800),
        {},
        "",
        "oom",
    ),
}


@pytest.mark.parametrize("case", slow_params(FAILURES, {"timeout-subprocess", "oom"}))
def test_failures_give_the_failure_reward_and_the_episode_goes_on(case):
    env_id, task, make_executor, settings, words, next_status = FAILURES[case]
    executor = make_executor()
    kwargs = {} if executor is None else {"executor": executor}
    env = make(env_id, budget=3, failure_reward=FAILURE_REWARD, **kwargs)
    try:
        env.reset(seed=0, options={"task": task})
        obs, reward, terminated, _, info = env.step(act(env, settings))
        assert info["status"] == case.split("-")[0]
        assert reward == FAILURE_REWARD
        assert info["error"] and words in info["error"]
        assert info["metrics"] == {} and info["best_score"] is None
        assert terminated is False
        assert env.observation_space.contains(obs)
        obs, reward, terminated, _, info = env.step(act(env, CHEAP if env_id == TABULAR else {}))
        assert info["status"] == next_status, info["error"]
        assert terminated is False and env.observation_space.contains(obs)
        assert obs["history_mask"].sum() == 2 and obs["budget_left"][0] == pytest.approx(1 / 3)
        assert math.isfinite(reward)
    finally:
        env.close()


def test_text_interface_with_no_history_shows_none():
    env = make(TABULAR, interface="text", history=0, budget=3)
    env.reset(seed=0, options={"task": "iris"})
    obs, *_ = env.step(json.dumps(CHEAP))
    assert json.loads(obs)["history"] == []


def test_negative_history_is_rejected():
    with pytest.raises(ValueError, match="history=-1"):
        make(TABULAR, history=-1)


def test_campaign_id_and_store_are_public(tmp_path):
    env = gym.make("researchgym/Tabular-v0", store=tmp_path / "s").unwrapped
    assert env.campaign_id == ""
    _, info = env.reset(seed=0)
    assert env.campaign_id == info["campaign_id"] != ""
    assert env.store.path == (tmp_path / "s").absolute()
    assert gym.make("researchgym/Tabular-v0", store=False).unwrapped.store is None


def test_reset_records_the_campaign_id_it_is_given(tmp_path):
    env = gym.make("researchgym/Tabular-v0", store=tmp_path / "s", budget=1).unwrapped
    _, info = env.reset(seed=0, options={"campaign_id": "board-v1-0a1b"})
    assert info["campaign_id"] == env.campaign_id == "board-v1-0a1b"
    env.step(env.to_action(CHEAP))
    assert env.store.sql("SELECT campaign_id FROM steps").to_pylist() == [
        {"campaign_id": "board-v1-0a1b"}
    ]
    _, again = env.reset(seed=0)
    assert again["campaign_id"] not in ("", "board-v1-0a1b")


@pytest.mark.parametrize("bad", ["", "a b", "../x", "x" * 129, 7])
def test_reset_rejects_an_unusable_campaign_id(bad):
    env = make(TABULAR, store=False)
    with pytest.raises(ValueError, match="campaign_id=.* is not a usable id; give a string of 1"):
        env.reset(seed=0, options={"campaign_id": bad})


def test_unwrap_research_env_sees_through_wrappers_and_rejects_other_envs():
    env = make(TABULAR)
    assert isinstance(env, gym.Wrapper)
    assert unwrap_research_env(env) is env.unwrapped
    with pytest.raises(NotAResearchEnvError, match="CartPoleEnv, not a ResearchGym env"):
        unwrap_research_env(gym.make("CartPole-v1"))


def test_a_plain_dict_of_settings_is_an_action_of_the_dict_interface():
    env = make("researchgym/Digits-v0", executor=capped_executor(1))
    env.reset(seed=0)
    _, _, _, _, info = env.step({"model.family": "cnn", "optim.lr": 3e-3, "model.kernel": 5})
    assert info["status"] == "ok"
    m = info["metaprogram"]
    assert (m["model.family"], m["optim.lr"], m["model.kernel"]) == ("cnn", 3e-3, 5)
    # the space's own elements still work, and hold choice indices
    sample = env.action_space.sample()
    _, _, _, _, info = env.step(sample)
    assert info["status"] == "ok"
    family = env.unwrapped.schema["model.family"]
    assert info["metaprogram"]["model.family"] == family.choices[int(sample["model.family"])]
