"""SeqArch-v0 and CharLM-v0: unit-tree designs as actions, budgets, tree-shaped JSON, checkers."""

import json
import warnings

import gymnasium as gym
import pytest
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import researchgym
from researchgym.spaces import SettingError
from tests.conftest import check_env

SMALL = "n_train=64&n_val=32&n_test=32"
# Cheap configurations: small tasks, and limits that keep the checkers' random designs quick.
CHEAP = {
    "researchgym/SeqArch-v0": {
        "tasks": [f"mqar?{SMALL}", f"brackets?length=8&{SMALL}"],
        "max_train_steps": 40,
    },
    "researchgym/CharLM-v0": {
        "tasks": ["pysource?context=16&n_chars=10000"],
        "max_train_steps": 40,
    },
}


def make(env_id, **kwargs):
    return gym.make(env_id, store=False, **kwargs)


def test_registered_out_of_the_box():
    assert {"researchgym/SeqArch-v0", "researchgym/CharLM-v0"} <= set(researchgym.ENV_IDS)
    assert {"researchgym/MNIST-v0", "researchgym/CIFAR10-v0"} == set(researchgym.FILE_ENV_IDS)
    assert not set(researchgym.ENV_IDS) & set(researchgym.FILE_ENV_IDS)


@pytest.mark.parametrize("env_id", sorted(CHEAP))
@pytest.mark.parametrize("interface", ["dict", "flat", "text"])
def test_gymnasium_check_env(env_id, interface):
    env = make(env_id, interface=interface, **CHEAP[env_id])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # render_fps is not declared: there is no human rendering
        check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("env_id", sorted(CHEAP))
def test_stable_baselines3_check_env(env_id):
    sb3_check_env(make(env_id, interface="flat", **CHEAP[env_id]).unwrapped, warn=True)


def test_default_design_trains_on_every_task_kind():
    env = make("researchgym/SeqArch-v0", tasks=[f"copy?length=4&{SMALL}"])
    env.reset(seed=0)
    _, reward, _, _, info = env.step(env.unwrapped.to_action({}))
    assert info["status"] == "ok", info["error"]
    assert set(info["metrics"]) == {"loss", "accuracy", "sequence_accuracy", "score"}
    assert reward == info["metrics"]["score"]
    estimate = info["estimate"]
    assert estimate["params"] == sum(u["params"] for u in estimate["units"].values())
    assert estimate["train_steps"] == 4 * 2  # 4 epochs of 64 examples in batches of 32


def test_same_seed_same_design_same_result():
    results = []
    for _ in range(2):
        env = make("researchgym/SeqArch-v0", **CHEAP["researchgym/SeqArch-v0"])
        env.reset(seed=3)
        action = env.unwrapped.to_action(
            {"arch": {"layers": [{"mixer": "recurrent"}]}, "train.epochs": 2}
        )
        _, reward, _, _, info = env.step(action)
        assert info["status"] == "ok", info["error"]
        results.append((reward, info["metrics"], info["test_metrics"], info["curve"], info["task"]))
    assert results[0] == results[1]


def test_charlm_rewards_bits_per_character():
    env = make("researchgym/CharLM-v0", **CHEAP["researchgym/CharLM-v0"])
    env.reset(seed=0)
    _, reward, _, _, info = env.step(env.unwrapped.to_action({"train.epochs": 1}))
    assert info["status"] == "ok", info["error"]
    assert reward == pytest.approx(1 - info["metrics"]["bpc"] / 8)
    assert 0 < reward < 1


def test_over_budget_designs_are_invalid_actions_with_the_reason():
    env = make("researchgym/SeqArch-v0", tasks=[f"mqar?{SMALL}"], max_params=25_000)
    env.reset(seed=0)
    wide = env.unwrapped.to_action({"arch": {"width": 128, "layers": [{"mixer": "attention"}] * 3}})
    before = env.unwrapped.estimate(wide)
    assert before["params"] > 25_000 and "rule: parameter budget" in before["rejected"]
    assert env.unwrapped.estimate(env.unwrapped.to_action({}))["rejected"] is None
    _, reward, _, _, info = env.step(wide)
    assert info["status"] == "invalid_action" and reward == env.unwrapped.failure_reward
    assert "rule: parameter budget" in info["error"] and "max_params=25,000" in info["error"]
    assert "arch.layers[" in info["error"]  # names the largest units
    assert info["estimate"] is None and info["metaprogram"]["arch.width"] == 128

    strict = make("researchgym/SeqArch-v0", tasks=[f"mqar?{SMALL}"], max_params=25_000, strict=True)
    strict.reset(seed=0)
    with pytest.raises(SettingError, match="rule: parameter budget"):
        strict.step(wide)


def test_step_and_compute_budgets():
    env = make(
        "researchgym/SeqArch-v0", tasks=[f"mqar?{SMALL}"], max_train_steps=10, max_train_flops=1e15
    )
    env.reset(seed=0)
    _, _, _, _, info = env.step(env.unwrapped.to_action({"train.epochs": 6}))
    assert info["status"] == "invalid_action" and "max_train_steps=10" in info["error"]
    env = make("researchgym/SeqArch-v0", tasks=[f"mqar?{SMALL}"], max_train_flops=1e6)
    env.reset(seed=0)
    _, _, _, _, info = env.step(env.unwrapped.to_action({}))
    assert "rule: compute budget" in info["error"]
    with pytest.raises(ValueError, match="max_params=-1"):
        make("researchgym/SeqArch-v0", max_params=-1)


def test_text_interface_speaks_trees():
    env = make("researchgym/SeqArch-v0", interface="text", tasks=[f"mqar?{SMALL}"])
    obs, _ = env.reset(seed=0)
    shown = json.loads(obs)
    (form,) = shown["nested_forms"]
    assert form["key"] == "arch" and "attention" in form["layers"]["items"]["mixer"]["units"]
    action = json.dumps(
        {
            "arch": {
                "width": 16,
                "layers": [{"mixer": {"type": "conv", "kernel": 2}, "ffn": "none"}],
            },
            "train.epochs": 1,
        }
    )
    assert env.unwrapped.to_action(env.unwrapped.interface.parse_action(action)).startswith(
        '{"arch": {'
    )
    obs, _, _, _, info = env.step(action)
    assert info["status"] == "ok", info["error"]
    assert info["metaprogram"]["arch.layer0.mixer_kernel"] == 2
    (past,) = json.loads(obs)["history"]
    assert past["settings"]["arch"]["layers"] == [
        {"mixer": {"type": "conv", "kernel": 2}, "ffn": "none"}
    ]
    _, _, _, _, info = env.step(json.dumps({"arch": {"layers": [{"mixer": "lstm"}]}}))
    assert info["status"] == "invalid_action"
    assert "arch.layers[0].mixer: unknown mixer unit 'lstm'" in info["error"]


def test_tasks_are_configuration_checked_at_make():
    with pytest.raises(ValueError, match="not a task of suite 'seqarch'"):
        make("researchgym/SeqArch-v0", tasks=["digits"])
    with pytest.raises(ValueError, match="raise vocab"):
        make("researchgym/SeqArch-v0", tasks=["mqar?n_pairs=40"])
    with pytest.raises(ValueError, match="reads none"):
        make("researchgym/SeqArch-v0", data_dir="/tmp")
    env = make("researchgym/SeqArch-v0", tasks=[f"mqar?{SMALL}"])
    with pytest.raises(ValueError, match="not one of this env's tasks"):
        env.reset(seed=0, options={"task": "mqar"})
    with pytest.raises(gym.error.ResetNeeded):
        env.unwrapped.estimate({})


@pytest.mark.slow
def test_attention_beats_a_token_mlp_mixer_at_equal_parameter_budget():
    """On associative recall, content-based routing matters: the search space is meaningful."""
    env = make("researchgym/SeqArch-v0", tasks=["mqar"], max_params=25_000)
    env.reset(seed=0)
    attention = env.unwrapped.to_action(
        {"arch": {"width": 32, "layers": [{"mixer": "attention"}] * 2}}
    )
    token_mlp = env.unwrapped.to_action(
        {"arch": {"width": 32, "layers": [{"mixer": "token_mlp"}] * 3}}
    )
    sizes = [env.unwrapped.estimate(a)["params"] for a in (attention, token_mlp)]
    assert max(sizes) <= 25_000 and min(sizes) / max(sizes) > 0.95
    scores = {}
    for name, action in (("attention", attention), ("token_mlp", token_mlp)):
        _, _, _, _, info = env.step(action)
        assert info["status"] == "ok", info["error"]
        scores[name] = info["test_metrics"]["score"]
    assert scores["attention"] > 0.9
    assert scores["attention"] - scores["token_mlp"] > 0.4, scores
