"""Every registered env passes gymnasium's and stable-baselines3's env checkers."""

from __future__ import annotations

import warnings

import gymnasium as gym
import pytest

import researchgym
from tests.conftest import capped_executor, check_env, slow_params

sb3_env_checker = pytest.importorskip("stable_baselines3.common.env_checker")

# Gymnasium asks every env with render modes to declare render_fps; a research
# campaign has no frame rate, so that one warning is expected.
EXPECTED_WARNINGS = ("render_fps",)


def make(env_id: str, interface: str, **kwargs) -> gym.Env:
    # Random actions may ask for 100 epochs of a large model: the checkers test the
    # env's API, so training is cut to one epoch (deterministically) to keep them fast.
    return gym.make(
        env_id, interface=interface, store=False, budget=3, executor=capped_executor(1), **kwargs
    )


def unexpected(caught: list[warnings.WarningMessage]) -> list[str]:
    messages = [str(w.message) for w in caught]
    return [m for m in messages if not any(e in m for e in EXPECTED_WARNINGS)]


@pytest.mark.parametrize("interface", ["dict", "flat", "text"])
@pytest.mark.parametrize("env_id", researchgym.ENV_IDS)
def test_gymnasium_check_env(env_id, interface):
    env = make(env_id, interface)
    env.action_space.seed(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    assert unexpected(caught) == []
    env.close()


@pytest.mark.parametrize("env_id", slow_params(researchgym.ENV_IDS, {"researchgym/Digits-v0"}))
def test_sb3_check_env(env_id):
    env = make(env_id, "flat")
    env.action_space.seed(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_env_checker.check_env(env.unwrapped, warn=True)
    assert unexpected(caught) == []
    env.close()


@pytest.mark.parametrize("interface", ["dict", "flat", "text"])
def test_check_env_on_forkable_envs(interface):
    env = make("researchgym/Tabular-v0", interface, forkable=True, max_epochs=2)
    env.action_space.seed(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
        if interface == "flat":
            sb3_env_checker.check_env(env.unwrapped, warn=True)
    assert unexpected(caught) == []
    env.close()


def test_every_env_id_is_registered_and_versioned():
    assert researchgym.ENV_IDS
    for env_id in researchgym.ENV_IDS:
        assert env_id.startswith("researchgym/")
        assert gym.spec(env_id).version is not None
