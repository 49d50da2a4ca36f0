"""``ResearchEnv.step_many``: the steps ``step`` takes one by one, their jobs trained as one batch."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

import researchgym  # noqa: F401  (registers the envs)
from researchgym.engine import load_task_data, train
from researchgym.envs.research_env import unwrap_research_env
from researchgym.errors import ConfigError
from researchgym.spaces import SettingError
from researchgym.store import Store

# MLPs of one depth, activation and batch size: one population job.
ACTIONS = [
    {"train.epochs": 2, "model.width": 16, "train.batch_size": 128},
    {"train.epochs": 2, "model.width": 32, "train.batch_size": 128, "optim.lr": 3e-3},
    {"model.width": 5},  # out of range: answered without training
    {"train.epochs": 1, "model.width": 16, "train.batch_size": 128, "optim.name": "sgd"},
]
# Columns of a step's store row that do not depend on how its job was trained.
SAME_COLUMNS = ("step", "seed", "status", "metaprogram", "action", "terminated", "fidelity")


def _campaign(tmp_path, batched: bool, **kwargs):
    """The infos and store rows of one campaign of ``ACTIONS``, batched or step by step."""
    store = tmp_path / ("batched" if batched else "alone")
    env = gym.make(
        "researchgym/Digits-v0", store=store, budget=len(ACTIONS), device="cpu", **kwargs
    )
    try:
        env.reset(seed=7)
        if batched:
            steps = unwrap_research_env(env).step_many(ACTIONS)
        else:
            steps = [env.step(action) for action in ACTIONS]
    finally:
        env.close()
    with Store(store) as opened:
        rows = opened.sql("SELECT * FROM steps ORDER BY step").to_pylist()
    return steps, rows


def test_step_many_takes_the_steps_step_takes(tmp_path) -> None:
    batched, batched_rows = _campaign(tmp_path, batched=True)
    alone, alone_rows = _campaign(tmp_path, batched=False)
    assert [s[4]["status"] for s in batched] == ["ok", "ok", "invalid_action", "ok"]
    assert [s[2] for s in batched] == [False, False, False, True]  # the budget ends it
    assert batched[2][1] == alone[2][1] == -2.0  # the failure reward, untrained
    n_val = len(load_task_data("digits").x_val)  # a score may differ by one example
    for (_, reward, _, _, ours), (_, their_reward, _, _, theirs) in zip(
        batched, alone, strict=True
    ):
        for key in ("status", "seed", "run", "metaprogram", "epochs", "error", "verb"):
            assert ours[key] == theirs[key], key
        assert reward == pytest.approx(their_reward, abs=1.5 / n_val)
        assert ours["best_score"] == pytest.approx(theirs["best_score"], abs=1.5 / n_val)
    assert len(batched_rows) == len(alone_rows) == len(ACTIONS)
    for ours, theirs in zip(batched_rows, alone_rows, strict=True):
        assert {c: ours[c] for c in SAME_COLUMNS} == {c: theirs[c] for c in SAME_COLUMNS}
        assert ours["reward"] == pytest.approx(theirs["reward"], abs=1.5 / n_val)
        assert len(json.loads(ours["curve"])) == len(json.loads(theirs["curve"]))


def test_step_many_trains_the_new_runs_with_one_run_many_call(monkeypatch) -> None:
    env = gym.make("researchgym/Digits-v0", store=False, budget=4)
    base = unwrap_research_env(env)
    calls: list[int] = []
    run_many = base.executor.run_many
    monkeypatch.setattr(
        base.executor, "run_many", lambda jobs: calls.append(len(jobs)) or run_many(jobs)
    )
    env.reset(seed=0)
    base.step_many(ACTIONS)
    assert calls == [3]  # the invalid action trains nothing
    env.close()


def test_a_diverging_member_of_a_batch_diverges_alone() -> None:
    shape = {"train.epochs": 1, "model.depth": 4, "train.batch_size": 16}
    diverging = {
        **shape,
        "model.width": 512,
        "optim.name": "sgd",
        "optim.lr": 1.0,
        "optim.momentum": 0.99,
    }
    env = gym.make("researchgym/Digits-v0", store=False, budget=3)
    env.reset(seed=0)
    steps = unwrap_research_env(env).step_many(
        [{**shape, "model.width": 16}, diverging, shape | {"model.width": 16}]
    )
    env.close()
    assert [s[4]["status"] for s in steps] == ["ok", "diverged", "ok"]
    assert "non-finite" in steps[1][4]["error"]
    assert steps[0][4]["best_score"] is not None


def test_bad_batches_are_refused_before_anything_is_taken() -> None:
    env = gym.make("researchgym/Digits-v0", store=False, budget=2)
    base = unwrap_research_env(env)
    with pytest.raises(gym.error.ResetNeeded, match="reset"):
        base.step_many(ACTIONS[:1])
    env.reset(seed=0)
    for bad, words in (
        ([], "non-empty list"),
        (ACTIONS[0], "non-empty list"),
        ("text", "non-empty list"),
        (ACTIONS[:3], "3 actions but the campaign has 2 experiment"),
    ):
        with pytest.raises(ConfigError, match=words):
            base.step_many(bad)
    assert base.step_many([ACTIONS[2]] * 2)[-1][2]  # the budget is spent
    with pytest.raises(gym.error.ResetNeeded, match="budget is spent"):
        base.step_many([ACTIONS[2]])
    env.close()


def test_strict_takes_the_steps_before_a_malformed_action_then_raises(tmp_path) -> None:
    env = gym.make("researchgym/Digits-v0", store=tmp_path, budget=3, strict=True)
    base = unwrap_research_env(env)
    env.reset(seed=0)
    with pytest.raises(SettingError, match="model.width"):
        base.step_many([ACTIONS[3], ACTIONS[2], ACTIONS[3]])
    assert [s["status"] for s in base._view.history] == ["ok"]
    env.close()
    with Store(tmp_path) as opened:
        assert opened.sql("SELECT count(*) AS n FROM steps").to_pylist() == [{"n": 1}]


def test_a_spent_cost_budget_ends_the_batch_early(tmp_path) -> None:
    env = gym.make("researchgym/Digits-v0", store=tmp_path, budget=3, cost_budget={"samples": 1})
    env.reset(seed=0)
    steps = unwrap_research_env(env).step_many([ACTIONS[3]] * 3)
    env.close()
    assert len(steps) == 1 and steps[0][3]  # truncated: the other two are not taken
    with Store(tmp_path) as opened:
        assert opened.sql("SELECT count(*) AS n FROM steps").to_pylist() == [{"n": 1}]


def test_a_forkable_env_continues_a_run_of_the_same_batch_and_stops() -> None:
    env = gym.make("researchgym/Digits-v0", store=False, budget=4, forkable=True, max_epochs=2)
    env.reset(seed=0)
    base = unwrap_research_env(env)
    steps = base.step_many(
        [
            ACTIONS[3],
            {"verb": "continue", "run": 0, "train.epochs": 2},
            {"verb": "stop"},
            ACTIONS[3],  # after the stop: not taken
        ]
    )
    env.close()
    assert [(s[4]["status"], s[4]["verb"], s[4]["epochs"]) for s in steps] == [
        ("ok", "new", 1),
        ("ok", "continue", 2),
        ("stopped", "stop", 0),
    ]
    assert steps[-1][2]  # terminated by the stop


def test_step_trains_a_lone_job_as_train_does() -> None:
    env = gym.make("researchgym/Digits-v0", store=False, budget=1, device="cpu")
    env.reset(seed=5)
    _, _, _, _, info = env.step(ACTIONS[0])
    env.close()
    alone = train(info["metaprogram"], task=info["task"], seed=info["seed"], device="cpu")
    assert info["metrics"] == alone.val_metrics
