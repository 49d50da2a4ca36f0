"""A restored RLlib PPO policy acts exactly like the policy the algorithm trained."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from researchgym.planning import make_planner, run_campaign

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("ray") is None,
        reason="needs ray[rllib]: pip install 'researchgym[rllib]'",
    ),
]

# Replay-v0 answers from recorded runs: training steps cost no training jobs.
ENV_ID = "researchgym/Replay-v0"
FIXED = {"train.epochs": 1}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, object, object]:
    """Train a tiny policy; return its checkpoint, the algorithm's own trained module and
    that module as built, before training."""
    import ray
    from ray.rllib.algorithms.ppo import PPOConfig

    from agents.ppo_rllib import train

    captured, initial = [], []
    build_algo = PPOConfig.build_algo

    def build_and_capture(config, *args, **kwargs):
        algo = build_algo(config, *args, **kwargs)
        initial.append(copy.deepcopy(algo.get_module()))
        stop = algo.stop

        def capture_then_stop() -> None:
            captured.append(copy.deepcopy(algo.get_module()))
            stop()

        algo.stop = capture_then_stop
        return algo

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PPOConfig, "build_algo", build_and_capture)
        try:
            path = train(
                ENV_ID,
                total_timesteps=64,
                train_batch_size=32,
                minibatch_size=16,
                num_epochs=1,
                budget=4,
                fixed=FIXED,
                save_path=tmp_path_factory.mktemp("rllib") / "policy",
                store=False,
                num_cpus=1,
                seed=0,
            )
        finally:
            ray.shutdown()
    [module], [untrained] = captured, initial
    module.eval()
    return path, module, untrained


def test_restored_module_computes_bitwise_the_trained_outputs(trained) -> None:
    import torch

    path, module, untrained = trained
    restored = make_planner("ppo-rllib", policy=str(path)).module
    # training moved the weights, so equal weights below mean restored, not just built alike
    before = untrained.state_dict()
    assert any(not torch.equal(before[name], v) for name, v in module.state_dict().items())
    space = gym.make(ENV_ID, interface="flat", store=False).observation_space
    space.seed(0)
    obs = torch.as_tensor(np.stack([space.sample() for _ in range(16)]), dtype=torch.float32)
    with torch.no_grad():
        want = module.forward_inference({"obs": obs})["action_dist_inputs"]
        got = restored.forward_inference({"obs": obs})["action_dist_inputs"]
    assert torch.equal(got, want)  # same machine, same weights: bitwise
    for name, value in module.state_dict().items():
        assert torch.equal(restored.state_dict()[name], value), name


@pytest.mark.parametrize("deterministic", [True, False])
def test_restored_planner_proposes_what_the_trained_policy_proposes(trained, deterministic) -> None:
    path, module, _ = trained
    restored = make_planner("ppo-rllib", policy=str(path), deterministic=deterministic)
    as_trained = make_planner("ppo-rllib", policy=str(path), deterministic=deterministic)
    as_trained.module = module
    campaigns = []
    for planner in (restored, as_trained):
        env = gym.make(ENV_ID, interface="flat", budget=4, store=False)
        result = run_campaign(env, planner, seed=3, fixed=FIXED)
        env.close()
        campaigns.append([step.metaprogram for step in result.steps])
    assert len(campaigns[0]) == 4
    assert campaigns[0] == campaigns[1]
    assert all(m["train.epochs"] == 1 for m in campaigns[0])
