"""stable-baselines3 trains on the flat interface unchanged."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

from researchgym.envs.research_env import FAILURE_STATUSES, MIN_OK_REWARD

sb3 = pytest.importorskip("stable_baselines3")
from stable_baselines3.common.monitor import Monitor


class StepLog(gym.Wrapper):
    """Keeps the status and reward of every step."""

    def __init__(self, env):
        super().__init__(env)
        self.steps: list[tuple[str, float]] = []

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps.append((info["status"], reward))
        return obs, reward, terminated, truncated, info


@pytest.mark.slow
def test_ppo_learns_on_the_flat_interface():
    budget, total = 4, 32
    env = gym.make(
        "researchgym/Tabular-v0",
        interface="flat",
        store=False,
        budget=budget,
        device="cpu",
        timeout=0.25,  # PPO's random actions may ask for 100 epochs; a step stops after ~0.25 s
    )
    log = StepLog(env)
    monitored = Monitor(log)
    model = sb3.PPO(
        "MlpPolicy", monitored, n_steps=16, batch_size=8, n_epochs=1, seed=0, device="cpu"
    )
    model.learn(total_timesteps=total)
    assert model.num_timesteps == total
    assert monitored.get_episode_lengths() == [budget] * (total // budget)
    assert all(math.isfinite(r) for r in monitored.get_episode_rewards())
    assert len(log.steps) == total
    assert {status for status, _ in log.steps} <= {"ok", *FAILURE_STATUSES}
    assert any(status == "ok" for status, _ in log.steps)
    failure_reward = env.unwrapped.failure_reward
    for status, reward in log.steps:  # scores: accuracy, or r2 clipped to [-1, 1]
        assert MIN_OK_REWARD <= reward <= 1.0 if status == "ok" else reward == failure_reward

    schema = env.unwrapped.schema
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action.astype(np.float32))
    metaprogram = schema.decode(action)
    assert schema.validate(metaprogram) == metaprogram
    env.close()
