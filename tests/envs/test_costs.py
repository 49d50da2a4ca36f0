"""Campaign costs: cost budgets that truncate, rewards that subtract cost, step objectives."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import pytest

from researchgym.engine import Executor, Result, estimate
from researchgym.errors import MAX_ERROR_CHARS, ConfigError
from researchgym.spaces import SettingError
from researchgym.store import Store

TABULAR = "researchgym/Tabular-v0"
CHEAP = {"model.family": "linear", "train.epochs": 1}
FAILURE_REWARD = -2.0


class Scripted(Executor):
    """Answers each job at once with the next of a list of results."""

    def __init__(self, results: list[Result]):
        self.results = list(results)

    def run(self, metaprogram: Mapping[str, Any], *, task: Any, seed: int, **_: Any) -> Result:
        return self.results.pop(0)


def ok(score: float = 0.5, seconds: float = 1.0, samples: int = 100, n_params: int = 42) -> Result:
    return Result(
        status="ok",
        val_metrics={"score": score},
        seconds=seconds,
        samples=samples,
        n_params=n_params,
    )


def make(results: list[Result], **kwargs: Any) -> gym.Env:
    kwargs.setdefault("budget", 10)
    env = gym.make(TABULAR, store=False, executor=Scripted(results), **kwargs)
    env.reset(seed=0, options={"task": "wine"})
    return env


def cheap(env: gym.Env) -> Any:
    return env.unwrapped.to_action(CHEAP)


# --- cost budgets ----------------------------------------------------------------------------
def flops_of_one_example() -> int:
    metaprogram = gym.make(TABULAR, store=False).unwrapped.schema.validate(CHEAP)
    return estimate(metaprogram, task="wine").flops


@pytest.mark.parametrize("unit", ["seconds", "samples", "flops"])
def test_a_cost_budget_truncates_the_campaign_once_spent(unit):
    per_step = {"seconds": 1.5, "samples": 100, "flops": 3 * flops_of_one_example() * 100}[unit]
    env = make([ok(seconds=1.5, samples=100)] * 4, cost_budget={unit: 2.5 * per_step})
    ends, spent, left = [], [], []
    for _ in range(3):
        _, _, terminated, truncated, info = env.step(cheap(env))
        ends.append((terminated, truncated))
        spent.append(info["spent"][unit])
        left.append(info["cost_left"][unit])
    assert ends == [(False, False), (False, False), (False, True)]  # the step over it ends it
    assert spent == pytest.approx([per_step, 2 * per_step, 3 * per_step])
    assert left == pytest.approx([1.5 * per_step, 0.5 * per_step, 0.0])
    assert info["cost"] == pytest.approx(
        {"seconds": 1.5, "samples": 100, "flops": per_step if unit == "flops" else None}
    )
    with pytest.raises(gym.error.ResetNeeded, match="cost budget"):
        env.step(cheap(env))
    env.reset(seed=1, options={"task": "wine"})  # a new campaign has spent nothing
    _, _, _, truncated, info = env.step(cheap(env))
    assert not truncated and info["spent"][unit] == pytest.approx(per_step)


def test_reaching_the_cost_budget_exactly_truncates_and_an_invalid_action_costs_nothing():
    env = make([ok(samples=100), ok(samples=100)], cost_budget={"samples": 200})
    _, _, _, truncated, info = env.step({"train.epochs": 10**6})  # rejected: trains nothing
    assert info["status"] == "invalid_action" and not truncated
    assert info["cost"] == {"samples": 0, "seconds": 0.0, "flops": None}
    assert env.step(cheap(env))[3] is False
    _, _, terminated, truncated, info = env.step(cheap(env))
    assert (terminated, truncated) == (False, True) and info["cost_left"] == {"samples": 0.0}


def test_a_truncated_step_is_recorded_so(tmp_path):
    env = gym.make(
        TABULAR,
        store=tmp_path,
        executor=Scripted([ok(samples=60), ok(samples=60)]),
        cost_budget={"samples": 100},
    )
    env.reset(seed=0, options={"task": "wine"})
    env.step(cheap(env))
    env.step(cheap(env))
    env.close()
    with Store(tmp_path) as store:
        rows = store.sql("SELECT truncated, n_params FROM steps ORDER BY step").to_pylist()
        assert rows == [{"truncated": False, "n_params": 42}, {"truncated": True, "n_params": 42}]
        assert store.episodes()["truncated"].tolist() == [True]


def test_flops_are_three_times_the_forward_flops_of_each_sample_trained():
    env = gym.make(TABULAR, store=False, device="cpu", cost_budget={"flops": 1e15})
    env.reset(seed=0, options={"task": "wine"})
    _, _, _, _, info = env.step(cheap(env))
    assert info["status"] == "ok" and info["cost"]["samples"] > 0
    assert info["cost"]["flops"] == 3 * info["estimate"]["flops"] * info["cost"]["samples"]
    assert info["spent"]["flops"] == info["cost"]["flops"]


def test_a_design_whose_flops_cannot_be_estimated_is_rejected_under_a_flops_budget(monkeypatch):
    def fails(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the model does not build")

    env = make([ok()], cost_budget={"flops": 1e12})
    monkeypatch.setattr("researchgym.engine.estimate", fails)
    _, reward, _, truncated, info = env.step(cheap(env))
    assert info["status"] == "invalid_action" and "FLOPs cannot be estimated" in info["error"]
    assert (reward, truncated, info["spent"]["flops"]) == (FAILURE_REWARD, False, 0.0)
    strict = make([ok()], cost_budget={"flops": 1e12}, strict=True)
    with pytest.raises(SettingError, match="count cost in seconds or samples"):
        strict.step(cheap(strict))


@pytest.mark.parametrize(
    ("cost_budget", "message"),
    [
        ({}, "must be a dict of one unit and its amount"),
        ({"seconds": 1, "samples": 2}, "must be a dict of one unit and its amount"),
        ([("seconds", 60)], "must be a dict of one unit and its amount"),
        (60, "must be a dict of one unit and its amount"),
        ({"secs": 60}, "did you mean 'seconds'"),
        ({"seconds": float("nan")}, "finite, positive number of seconds"),
        ({"flops": float("inf")}, "finite, positive number of flops"),
        ({"samples": 0}, "finite, positive number of samples"),
        ({"samples": -5}, "finite, positive number of samples"),
        ({"seconds": True}, "finite, positive number of seconds"),
        ({"seconds": "60"}, "finite, positive number of seconds"),
        ({"seconds": "x" * 100_000}, "finite, positive number of seconds"),
        ({"x" * 100_000: 1}, "is not one of ('seconds', 'samples', 'flops')"),
    ],
)
def test_bad_cost_budgets_are_refused_with_a_bounded_message(cost_budget, message):
    with pytest.raises(ConfigError, match="cost_budget") as caught:
        gym.make(TABULAR, store=False, cost_budget=cost_budget)
    assert message in str(caught.value) and len(str(caught.value)) < MAX_ERROR_CHARS


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reward": "metric_minus_cost"}, "needs the unit its cost is counted in"),
        ({"reward": "metric_minus_cost", "cost_unit": "flop"}, "did you mean 'flops'"),
        ({"reward": "metric_minus_cost", "cost_unit": "samples", "cost_weight": -1}, "0 or more"),
        ({"reward": "metric_minus_cost", "cost_unit": "samples", "cost_weight": float("nan")}, "finite"),
        (
            {"reward": "metric_minus_cost", "cost_budget": {"seconds": 60}, "cost_unit": "samples"},
            "differs from the unit of cost_budget",
        ),
        ({"reward": "metric", "cost_weight": 0.5}, "subtracts none"),
        ({"reward": "regret", "cost_unit": "seconds"}, "subtracts none"),
        ({"reward": "metric_plus_cost"}, "is not one of"),
    ],
)  # fmt: skip
def test_bad_cost_reward_arguments_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        gym.make(TABULAR, store=False, **kwargs)


# --- rewards that subtract cost --------------------------------------------------------------
SCRIPT = [
    ok(score=0.6, samples=200, seconds=2.0),
    Result(status="timeout", error="ran out of time", samples=50, seconds=4.0),
    ok(score=0.8, samples=300, seconds=1.0),
    ok(score=0.7, samples=0, seconds=0.5),
]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        # score - 0.5 x samples / 1000; a failure is -2 less its cost too
        ("metric_minus_cost", [0.6 - 0.1, -2.0 - 0.025, 0.8 - 0.15, 0.7]),
        # gain over the best before (chance, 1/3, at first), 0 or more
        ("improvement_minus_cost", [0.6 - 1 / 3 - 0.1, -2.0 - 0.025, 0.2 - 0.15, 0.0]),
        # minus the regret normalized by 1 - chance = 2/3
        ("regret_minus_cost", [-0.6 - 0.1, -2.0 - 0.025, -0.3 - 0.15, -0.45]),
    ],
)
def test_rewards_subtract_the_cost_as_a_fraction_of_the_budget(mode, expected):
    env = make(SCRIPT, reward=mode, cost_budget={"samples": 1000}, cost_weight=0.5)
    rewards = [env.step(cheap(env))[1] for _ in SCRIPT]
    assert rewards == pytest.approx(expected, abs=1e-12)


def test_without_a_budget_the_cost_is_counted_in_its_unit():
    env = make(SCRIPT[:3], reward="metric_minus_cost", cost_unit="seconds", cost_weight=0.1)
    rewards = [env.step(cheap(env))[1] for _ in SCRIPT[:3]]
    assert rewards == pytest.approx([0.6 - 0.2, -2.0 - 0.4, 0.8 - 0.1], abs=1e-12)


# --- objectives ------------------------------------------------------------------------------
def test_every_step_reports_its_objectives():
    env = make([ok(score=0.9, seconds=2.5, n_params=1234), SCRIPT[1], ok(n_params=0)])
    objectives = [env.step(cheap(env))[4]["objectives"] for _ in range(2)]
    assert objectives == [
        {"score": 0.9, "seconds": 2.5, "n_params": 1234},
        {"score": None, "seconds": None, "n_params": None},  # a failure is no point
    ]
    assert env.step(cheap(env))[4]["objectives"]["n_params"] is None  # not reported


def test_trained_runs_land_on_the_stores_pareto_front(tmp_path):
    env = gym.make(TABULAR, store=tmp_path, device="cpu", budget=2)
    env.reset(seed=0, options={"task": "wine"})
    infos = [env.step(env.unwrapped.to_action({**CHEAP, "train.epochs": e}))[4] for e in (1, 2)]
    env.close()
    with Store(tmp_path) as store:
        front = store.pareto_front(TABULAR)
    points = {(i["objectives"]["score"], i["objectives"]["n_params"]) for i in infos}
    assert len(front) >= 1 and set(front["task"]) == {"wine"}
    assert set(zip(front["val_score"], front["n_params"], strict=True)) <= points
