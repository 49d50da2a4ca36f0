"""stable-baselines3 PPO: train on the flat interface across tasks, save, reload, act as a planner."""

from __future__ import annotations

import json

import pytest
from planner_testing import CHEAPEST, ENV_ID, assert_in_space, rows_by_agent

from researchgym.planning import Planner, PlannerError, make_planner, run_campaign

pytest.importorskip("stable_baselines3")

from agents.ppo_sb3 import PPOPlanner, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """A policy trained for 128 env steps on two envs (DummyVecEnv), campaigns of 4 on random tasks."""
    root = tmp_path_factory.mktemp("ppo_sb3")
    done: list[int] = []
    path = train(
        ENV_ID,
        total_timesteps=128,
        n_envs=2,
        n_steps=32,
        batch_size=32,
        n_epochs=2,
        seed=0,
        fixed=CHEAPEST,
        budget=4,
        save_path=root / "policy",
        store=root / "store",
        progress=done.append,
    )
    return path, root / "store", done


def test_training_saves_a_policy_and_records_its_steps(trained) -> None:
    path, store_dir, done = trained
    assert path.name == "policy.zip" and path.exists()
    metadata = json.loads(path.with_suffix(".json").read_text())
    assert (
        metadata["env_id"] == ENV_ID
        and metadata["fixed"] == CHEAPEST
        and metadata["total_timesteps"] == 128
    )
    assert done[-1] == 128
    assert rows_by_agent(store_dir) == {"ppo-sb3-train": 128}


def test_reloaded_policy_acts_as_a_planner(trained, make_env, store_dir) -> None:
    path, _, _ = trained
    planner = make_planner("ppo-sb3", policy=str(path))
    assert isinstance(planner, Planner) and planner.interface == "flat"
    env = make_env(interface="flat")
    result = run_campaign(env, planner, seed=5, fixed=CHEAPEST)
    assert len(result.steps) == 3 and all(s.status == "ok" for s in result.steps)
    for s in result.steps:
        assert_in_space(env.unwrapped.schema, s.metaprogram, CHEAPEST)
    assert rows_by_agent(store_dir) == {"ppo-sb3": 3}
    # deterministic: the same campaign twice proposes the same settings
    again = run_campaign(env, make_planner("ppo-sb3", policy=path), seed=5, fixed=CHEAPEST)
    assert [s.metaprogram for s in again.steps][:1] == [s.metaprogram for s in result.steps][:1]


def test_planner_reads_flat_observations_only(trained, make_env) -> None:
    path, _, _ = trained
    with pytest.raises(PlannerError, match="interface='flat'"):
        run_campaign(make_env(interface="dict"), PPOPlanner(path), seed=0)


def test_planner_needs_a_policy_that_exists(tmp_path) -> None:
    with pytest.raises(
        PlannerError, match="needs a trained policy.*researchgym train --agent ppo-sb3"
    ):
        make_planner("ppo-sb3")
    with pytest.raises(PlannerError, match="does not exist"):
        make_planner("ppo-sb3", policy=tmp_path / "missing.zip")


def test_policy_of_another_env_is_refused(trained) -> None:
    import gymnasium as gym

    path, _, _ = trained
    digits = gym.make(
        "researchgym/Digits-v0", store=False, interface="flat", disable_env_checker=True
    ).unwrapped
    with pytest.raises(PlannerError, match="train a policy for this env"):
        PPOPlanner(path).reset(digits.schema, seed=0)


@pytest.mark.slow
def test_trains_on_subprocess_vector_envs(tmp_path) -> None:
    path = train(
        ENV_ID,
        total_timesteps=32,
        n_envs=2,
        vec_env="subproc",
        n_steps=16,
        batch_size=32,
        n_epochs=1,
        fixed=CHEAPEST,
        budget=4,
        save_path=tmp_path / "sub.zip",
        store=tmp_path / "store",
    )
    assert path.exists()
    assert rows_by_agent(tmp_path / "store") == {"ppo-sb3-train": 32}


def test_training_draws_campaigns_from_the_given_tasks_only(tmp_path) -> None:
    path = train(
        "researchgym/Replay-v0",
        total_timesteps=16,
        n_steps=16,
        batch_size=16,
        n_epochs=1,
        budget=4,
        tasks=["synth_cls?seed=0"],
        env_kwargs={"source": "researchgym/Synthetic-v0", "missing": "nearest"},
        save_path=tmp_path / "policy",
        store=tmp_path / "store",
    )
    assert json.loads(path.with_suffix(".json").read_text())["tasks"] == ["synth_cls?seed=0"]
    from researchgym.store import Store

    with Store(tmp_path / "store") as store:
        assert store.tasks() == ["synth_cls?seed=0"]
