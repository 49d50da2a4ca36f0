"""Replay-v0 and Surrogate-v0 on the shipped reference runs, and sweeps that make such runs."""

from __future__ import annotations

import json
from types import MappingProxyType

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from scipy.stats import spearmanr
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import researchgym
from researchgym.engine import START_MODES, Start, TaskRef
from researchgym.envs.replay import REFERENCE_STORE, REFERENCE_SURROGATES, load_runs
from researchgym.envs.research_env import unwrap_research_env
from researchgym.envs.surrogate import SurrogateModel, is_held_out
from researchgym.store import open_store
from researchgym.sweeps import pending_jobs, plan_sweep, run_sweep

SOURCES = ("researchgym/Digits-v0", "researchgym/Tabular-v0")


@pytest.fixture(scope="module")
def reference_runs() -> dict[str, list[dict]]:
    return {source: load_runs(None, source) for source in SOURCES}


def test_fast_envs_are_registered() -> None:
    assert set(researchgym.FAST_ENV_IDS) == {"researchgym/Replay-v0", "researchgym/Surrogate-v0"}


@pytest.mark.parametrize("env_id", ["researchgym/Replay-v0", "researchgym/Surrogate-v0"])
@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("interface", ["dict", "flat", "text"])
def test_gymnasium_check_env(env_id: str, source: str, interface: str) -> None:
    env = gym.make(env_id, source=source, interface=interface, budget=4)
    check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("env_id", ["researchgym/Replay-v0", "researchgym/Surrogate-v0"])
def test_sb3_check_env(env_id: str) -> None:
    env = gym.make(env_id, source="researchgym/Tabular-v0", interface="flat", budget=4)
    sb3_check_env(env.unwrapped)


@pytest.mark.parametrize("source", SOURCES)
def test_replay_has_the_source_envs_spaces(source: str) -> None:
    real = gym.make(source, store=False, interface="flat")
    replay = gym.make("researchgym/Replay-v0", source=source, interface="flat")
    assert replay.action_space == real.action_space
    assert replay.observation_space == real.observation_space


@pytest.mark.parametrize("source", SOURCES)
def test_replay_returns_exactly_the_stored_metrics(source: str, reference_runs) -> None:
    env = gym.make("researchgym/Replay-v0", source=source, budget=50)
    rows = reference_runs[source][:: max(1, len(reference_runs[source]) // 40)]
    for row in rows:
        env.reset(seed=0, options={"task": row["task"]})
        metaprogram = json.loads(row["metaprogram"])
        _, reward, _, _, info = env.step(env.unwrapped.to_action(metaprogram))
        # every recorded seed of this metaprogram on this task
        candidates = [
            r
            for r in reference_runs[source]
            if r["task"] == row["task"] and r["metaprogram"] == row["metaprogram"]
        ]
        assert info["metrics"] in [json.loads(r["val_metrics"]) for r in candidates]
        assert info["curve"] in [json.loads(r["curve"]) for r in candidates]
        assert info["cost"]["seconds"] in [r["cost_seconds"] for r in candidates]
        assert info["status"] == "ok"
        assert reward == info["metrics"]["score"]


def test_replay_without_data_says_how_to_make_it(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="researchgym generate"):
        gym.make("researchgym/Replay-v0", data=tmp_path / "nothing-here")


@pytest.mark.parametrize("source", SOURCES)
def test_shipped_surrogate_fidelity_on_held_out_runs(source: str, reference_runs) -> None:
    """Recompute the shipped surrogate's held-out Spearman from the runs themselves."""
    model = SurrogateModel.load(REFERENCE_SURROGATES / f"{source.split('/')[-1]}.npz")
    schema = gym.make(source, store=False).unwrapped.schema
    held_out = [
        r
        for r in reference_runs[source]
        if r["status"] == "ok" and is_held_out(r["task"], r["metaprogram"])
    ]
    assert len(held_out) >= 100
    vectors = np.stack([schema.encode(json.loads(r["metaprogram"])) for r in held_out])
    predicted = model.predict(model.features(vectors, [r["task"] for r in held_out]))[:, 0]
    recorded = [json.loads(r["val_metrics"])["score"] for r in held_out]
    rho = spearmanr(predicted, recorded).statistic
    # The shipped Spearman was computed on another machine: BLAS kernels and thread counts
    # change the last digits of the predictions (observed: 3e-6), so ties and near-ties may
    # swap ranks. 1e-4 still catches a different model or different runs.
    assert rho == pytest.approx(model.fidelity.spearman, abs=1e-4)
    assert rho >= 0.8


def test_surrogate_is_deterministic_and_noisy_across_seeds() -> None:
    env = gym.make("researchgym/Surrogate-v0", source="researchgym/Tabular-v0", budget=20)
    action = env.unwrapped.to_action({"optim.lr": 0.01})
    scores = []
    for seed in (0, 0, 1):
        env.reset(seed=seed, options={"task": "breast_cancer"})
        scores.append(env.step(action)[4]["metrics"]["score"])
    assert scores[0] == scores[1]
    assert scores[0] != scores[2]
    assert all(-1.0 <= s <= 1.0 for s in scores)


@pytest.mark.parametrize("env_id", researchgym.FAST_ENV_IDS)
def test_fast_executors_take_any_mapping(env_id: str) -> None:
    env = unwrap_research_env(gym.make(env_id, source="researchgym/Tabular-v0"))
    metaprogram = env.schema.validate({"optim.lr": 0.01})
    run = env.executor.run
    task = TaskRef("wine")
    assert run(MappingProxyType(metaprogram), task=task, seed=3) == run(
        metaprogram, task=task, seed=3
    )


def test_sweep_fills_the_store_and_resumes(tmp_path) -> None:
    env_id, agent = "researchgym/Tabular-v0", "sweep-sobol"
    jobs = plan_sweep(
        env_id, sampler="sobol", n=3, seed=0, repeats=2, fixed={"train.epochs": 2}, tasks=["iris"]
    )
    assert len(jobs) == 6
    assert all(job.metaprogram["train.epochs"] == 2 for job in jobs)
    store = open_store(tmp_path)
    first = jobs[:4]
    results = list(run_sweep(env_id, first, store_path=tmp_path, agent=agent))
    assert len(results) == 4 and all(status for status, _ in results)
    pending = pending_jobs(jobs, open_store(tmp_path), env_id, agent)
    assert pending == jobs[4:]
    list(run_sweep(env_id, pending, store_path=tmp_path, agent=agent))
    assert pending_jobs(jobs, open_store(tmp_path), env_id, agent) == []
    rows = store.sql(
        "SELECT count(*) AS n, count(DISTINCT metaprogram) AS m FROM steps"
    ).to_pylist()[0]
    assert rows == {"n": 6, "m": 3}


def test_reference_store_is_shipped() -> None:
    rows = (
        open_store(REFERENCE_STORE)
        .sql("SELECT env_id, count(*) AS n FROM steps GROUP BY 1")
        .to_pylist()
    )
    counts = {r["env_id"]: r["n"] for r in rows}
    assert counts["researchgym/Digits-v0"] >= 1000
    assert counts["researchgym/Tabular-v0"] >= 1000


@pytest.mark.parametrize("env_id", researchgym.FAST_ENV_IDS)
def test_fast_executors_cannot_start_from_a_checkpoint(env_id: str) -> None:
    env = unwrap_research_env(gym.make(env_id, source="researchgym/Tabular-v0"))
    metaprogram = env.schema.validate({"optim.lr": 0.01})
    for mode in START_MODES:
        start = Start("run.pt", mode)
        result = env.executor.run(metaprogram, task=TaskRef("wine"), seed=3, start=start)
        assert result.status == "invalid_action"
        assert f"cannot {mode} a run" in (result.error or "")
