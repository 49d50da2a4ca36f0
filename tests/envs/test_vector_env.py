"""``gymnasium.make_vec`` on ResearchGym envs: batched (the default), sync and async, dict and
flat interfaces."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import researchgym  # noqa: F401  (registers the envs)

ENV_ID = "researchgym/Tabular-v0"
CHEAP = {"train.epochs": 1, "train.batch_size": 256}


@pytest.fixture
def parent_threads():
    """Give this process a multi-threaded torch pool, as a user's process has (the suite runs with one)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.randn(512, 512) @ torch.randn(512, 512)  # start the pool
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def schema():
    return gym.make(ENV_ID, store=False, disable_env_checker=True).unwrapped.schema


@pytest.mark.timeout(180)
@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("interface", ["flat", "dict"])
def test_make_vec_steps_through_campaigns(
    mode: str, interface: str, schema, tmp_path, parent_threads
) -> None:
    from researchgym.store import open_store

    # train in this process first: forked async workers must still train (no OpenMP hang)
    single = gym.make(ENV_ID, store=False, budget=1, disable_env_checker=True)
    single.reset(seed=0)
    single.step(single.unwrapped.to_action(CHEAP))
    single.close()

    envs = gym.make_vec(
        ENV_ID,
        num_envs=2,
        vectorization_mode=mode,
        store=tmp_path / "store",
        budget=2,
        interface=interface,
        agent=f"vec-{mode}",
    )
    try:
        obs, info = envs.reset(seed=0)
        assert envs.observation_space.contains(obs)
        assert len(info["task"]) == 2
        rewards, terminated = [], []
        for step in range(2):
            action = _batch(envs, schema, interface, seed=step)
            obs, reward, term, _, info = envs.step(action)
            assert envs.observation_space.contains(obs)
            assert list(info["status"]) == ["ok", "ok"], info.get("error")
            assert info["cost"]["seconds"].dtype == np.float64  # plain numbers, not objects
            assert info["cost"]["samples"].dtype.kind == "i"
            rewards.append(reward)
            terminated.append(term)
        assert not terminated[0].any() and terminated[1].all()
        assert np.isfinite(np.concatenate(rewards)).all()
    finally:
        envs.close()
    with open_store(tmp_path / "store") as store:
        rows = store.sql(
            "SELECT agent, count(*) AS n, count(DISTINCT campaign_id) AS c FROM steps GROUP BY agent"
        ).to_pylist()
    assert rows == [{"agent": f"vec-{mode}", "n": 4, "c": 2}]


def _batch(envs, schema, interface: str, seed: int):
    rng = np.random.default_rng(seed)
    metaprograms = [
        schema.decode(rng.uniform(-1, 1, len(schema))) | CHEAP for _ in range(envs.num_envs)
    ]
    if interface == "flat":
        return np.stack([schema.encode(m) for m in metaprograms])
    actions = [schema.to_space(m) for m in metaprograms]
    return {name: np.stack([a[name] for a in actions]) for name in actions[0]}


def _report_threads(queue) -> None:
    import torch

    torch.randn(256, 256) @ torch.randn(256, 256)  # hangs in a fork that inherited a live pool
    queue.put(torch.get_num_threads())


@pytest.mark.timeout(60)
def test_forked_workers_train_single_threaded(parent_threads) -> None:
    """Forked workers (AsyncVectorEnv's default) get one torch thread; the parent keeps its own."""
    import multiprocessing

    import torch

    import researchgym.envs.research_env  # noqa: F401  (installs the fork hook)

    threads = torch.get_num_threads()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    worker = context.Process(target=_report_threads, args=(queue,))
    worker.start()
    try:
        assert queue.get(timeout=30) == 1
    finally:
        worker.join(timeout=30)
    assert torch.get_num_threads() == threads == 2


@pytest.mark.timeout(120)
def test_make_vec_batches_each_step_and_steps_as_sync(digits_schema) -> None:
    """The default vector env trains a step's jobs as one batch; its steps are the sync env's."""
    from researchgym.envs.vector import ResearchVectorEnv

    settings = [
        {"train.epochs": 1, "model.width": w, "optim.lr": lr}
        for w, lr in ((16, 1e-3), (32, 3e-3), (16, 1e-2))
    ]
    settings[2]["model.family"] = "cnn"  # trained alone, in the same vector step
    outcomes = {}
    for mode in (None, "sync"):
        envs = gym.make_vec(
            "researchgym/Digits-v0", num_envs=3, vectorization_mode=mode, store=False, budget=1
        )
        try:
            assert isinstance(envs, ResearchVectorEnv) == (mode is None)
            envs.reset(seed=3)
            actions = [digits_schema.to_space(digits_schema.validate(s)) for s in settings]
            batch = {name: np.stack([a[name] for a in actions]) for name in actions[0]}
            _, reward, terminated, _, info = envs.step(batch)
            assert list(info["status"]) == ["ok"] * 3 and terminated.all()
            _, after_reward, terminated, _, after = envs.step(batch)  # autoreset (next step)
            assert not terminated.any() and (after_reward == 0).all() and "status" not in after
            outcomes[mode] = reward, info["seed"]
        finally:
            envs.close()
    assert list(outcomes[None][1]) == list(outcomes["sync"][1])  # same jobs...
    assert outcomes[None][0] == pytest.approx(outcomes["sync"][0], abs=2 / 360)  # ...same runs
