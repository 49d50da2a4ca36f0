"""RLlib PPO: train on the flat interface with a small local Ray, save, restore, act as a planner.

Skipped where ray[rllib] is not installed (it is an opt-in extra: ray 2.60 pins
gymnasium==1.2.2); the error a user then gets is tested instead.
"""

from __future__ import annotations

import importlib.util
import json

import pytest
from planner_testing import CHEAPEST, ENV_ID, assert_in_space, rows_by_agent

from researchgym.planning import Planner, PlannerError, make_planner, make_trainer, run_campaign

HAS_RAY = importlib.util.find_spec("ray") is not None


@pytest.mark.usefixtures("without_ray")
def test_missing_ray_is_a_clear_error() -> None:
    for build in (
        lambda: make_planner("ppo-rllib", policy="runs/ppo_rllib"),
        lambda: make_trainer("ppo-rllib"),
    ):
        with pytest.raises(PlannerError, match=r"needs the package 'ray'.*researchgym\[rllib\]"):
            build()


@pytest.mark.slow
@pytest.mark.skipif(not HAS_RAY, reason="needs ray[rllib]: pip install 'researchgym[rllib]'")
def test_train_save_restore_and_act(tmp_path, make_env, store_dir) -> None:
    import ray

    from agents.ppo_rllib import train

    done: list[int] = []
    try:
        path = train(
            ENV_ID,
            total_timesteps=128,
            n_envs=2,
            train_batch_size=64,
            minibatch_size=32,
            num_epochs=2,
            seed=0,
            fixed=CHEAPEST,
            budget=4,
            save_path=tmp_path / "policy",
            store=store_dir,
            num_cpus=1,
            progress=done.append,
        )
    finally:
        ray.shutdown()
    assert done[-1] >= 128
    assert json.loads((path / "researchgym.json").read_text())["fixed"] == CHEAPEST
    assert rows_by_agent(store_dir) == {"ppo-rllib-train": done[-1]}

    planner = make_planner("ppo-rllib", policy=str(path))
    assert isinstance(planner, Planner) and planner.interface == "flat"
    env = make_env(interface="flat")
    result = run_campaign(env, planner, seed=1, fixed=CHEAPEST)
    assert all(s.status == "ok" for s in result.steps)
    for s in result.steps:
        assert_in_space(env.unwrapped.schema, s.metaprogram, CHEAPEST)
    assert rows_by_agent(store_dir)["ppo-rllib"] == 3

    with pytest.raises(PlannerError, match="not an RLlib checkpoint"):
        make_planner("ppo-rllib", policy=tmp_path)
