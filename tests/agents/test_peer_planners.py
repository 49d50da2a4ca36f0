"""The peer baselines (Optuna GP and CMA-ES, nevergrad NGOpt) and the template planner."""

from __future__ import annotations

import json
import math

import gymnasium as gym
import nevergrad as ng
import numpy as np
import optuna
import pytest
from planner_testing import CHEAP, ENV_ID, assert_in_space
from typer.testing import CliRunner

from researchgym.cli import app
from researchgym.errors import DependencyNotInstalled
from researchgym.planning import PlannerError, make_planner, optimize, rollout
from researchgym.spaces import Bool, Categorical, Float, Int, Schema

PEERS = ["gp", "cmaes", "ngopt", "template"]
# Options that keep each planner's short runs short: the GP models after two random trials.
QUICK = {"gp": {"n_startup_trials": 2}, "ngopt": {"budget": 8}}

# Choices, a boolean and a setting that exists only under one choice.
MIXED = Schema(
    [
        Categorical("optim", "adam", choices=("adam", "sgd")),
        Float("lr", 1e-3, low=1e-5, high=1.0, log=True),
        Float("momentum", 0.9, low=0.0, high=0.99, when={"optim": ("sgd",)}),
        Int("width", 64, low=8, high=1024, log=True),
        Bool("norm", False),
    ]
)

# A smooth objective of four numbers with its optimum inside the box.
SMOOTH = Schema(
    [
        Float("lr", 1e-3, low=1e-5, high=1.0, log=True),
        Int("width", 64, low=8, high=1024, log=True),
        Float("dropout", 0.0, low=0.0, high=0.5),
        Float("decay", 0.0, low=0.0, high=0.1),
    ]
)


def smooth(m: dict) -> float:
    return (
        -((math.log10(m["lr"]) + 2.5) ** 2)
        - (math.log2(m["width"]) - 8.0) ** 2 / 8.0
        - 4.0 * (m["dropout"] - 0.1) ** 2
        - 100.0 * (m["decay"] - 0.03) ** 2
    )


def mixed(m: dict) -> float:
    value = -((math.log10(m["lr"]) + 2.5) ** 2) - (math.log2(m["width"]) - 8.0) ** 2 / 8.0
    return value + (0.3 if m["norm"] else 0.0) + (m.get("momentum", 0.5) - 0.5)


def proposals(name: str, seed: int, n_trials: int = 4) -> list[dict]:
    planner = make_planner(name, **QUICK.get(name, {}))
    return [m for m, _ in optimize(planner, MIXED, mixed, n_trials=n_trials, seed=seed)]


@pytest.mark.parametrize(
    "name", [pytest.param("gp", marks=pytest.mark.slow), "cmaes", "ngopt", "template"]
)
def test_short_campaign_proposes_valid_metaprograms_deterministically(name: str) -> None:
    first = proposals(name, seed=0)
    for metaprogram in first:
        assert_in_space(MIXED, metaprogram)
    assert len({json.dumps(m, sort_keys=True) for m in first}) == len(first)
    assert first == proposals(name, seed=0)
    assert first != proposals(name, seed=1)


@pytest.mark.parametrize("name", PEERS)
def test_pins_are_kept_and_not_searched(name: str) -> None:
    fixed = {"optim": "sgd", "width": 32}
    planner = make_planner(name, **QUICK.get(name, {}))
    history = optimize(planner, MIXED, mixed, n_trials=5, seed=0, fixed=fixed)
    for metaprogram, _ in history:
        assert_in_space(MIXED, metaprogram, fixed)
        assert "momentum" in metaprogram  # active under the pinned optimizer
    assert len({m["lr"] for m, _ in history}) == 5


@pytest.mark.parametrize("name", PEERS)
def test_a_campaign_on_a_real_env(name: str) -> None:
    (result,) = rollout(make_planner(name), ENV_ID, budget=3, fixed=CHEAP, store=False)
    schema = gym.make(ENV_ID, store=False, disable_env_checker=True).unwrapped.schema
    assert result.agent == name and len(result.steps) == 3
    for step in result.steps:
        assert step.status == "ok", step.info["error"]
        assert_in_space(schema, step.metaprogram, CHEAP)


def best_values(name: str, n_trials: int, seeds: range) -> np.ndarray:
    options = {"budget": n_trials} if name == "ngopt" else {}
    return np.array(
        [
            max(
                v
                for _, v in optimize(
                    make_planner(name, **options), SMOOTH, smooth, n_trials=n_trials, seed=s
                )
            )
            for s in seeds
        ]
    )


@pytest.mark.parametrize(
    ("name", "n_trials", "seeds"),
    [
        ("template", 20, range(8)),
        ("cmaes", 20, range(8)),
        ("ngopt", 20, range(8)),
        pytest.param("gp", 12, range(4), marks=pytest.mark.slow),
    ],
)
def test_beats_random_search_on_a_smooth_objective(name: str, n_trials: int, seeds: range) -> None:
    """The median best value over seeds is clearly above random search's, on the same seeds."""
    found = best_values(name, n_trials, seeds)
    rand = best_values("random", n_trials, seeds)
    assert np.median(found) > np.median(rand) + 0.08, (found, rand)


def relative_space(name: str, fixed: dict | None = None) -> set[str]:
    """The settings the planner's sampler models jointly after a few trials."""
    planner = make_planner(name)
    optimize(planner, MIXED, mixed, n_trials=6, seed=0, fixed=fixed)
    study = planner.study
    assert {t.params.get("optim", "sgd") for t in study.trials} == {"adam", "sgd"} or fixed
    return set(study.sampler.infer_relative_search_space(study, study.trials[-1]))


def test_cmaes_models_the_numbers_and_draws_choices_and_conditions_at_random() -> None:
    planner = make_planner("cmaes")
    assert isinstance(planner.make_sampler(0)._independent_sampler, optuna.samplers.RandomSampler)
    assert relative_space("cmaes") == {"lr", "width"}
    assert relative_space("cmaes", fixed={"optim": "sgd"}) == {"lr", "width", "momentum"}


def test_gp_models_numbers_and_choices_and_draws_conditions_at_random() -> None:
    planner = make_planner("gp")
    sampler = planner.make_sampler(0)
    assert isinstance(sampler, optuna.samplers.GPSampler)
    assert isinstance(sampler._independent_sampler, optuna.samplers.RandomSampler)
    assert relative_space("gp") == {"optim", "lr", "width", "norm"}


def test_failed_steps_are_told_as_the_worst_value_to_optuna_planners() -> None:
    planner = make_planner("cmaes")
    planner.reset(MIXED, seed=0)
    for reward, status in [(-1.0, "error"), (0.4, "ok"), (-1.0, "diverged"), (0.7, "ok")]:
        planner.propose(None)
        planner.observe(None, reward, {"status": status})
    trials = planner.study.trials
    assert trials[0].state == optuna.trial.TrialState.FAIL
    assert [t.value for t in trials[1:]] == [0.4, -1.0, 0.7]


def test_ngopt_maps_each_setting_to_its_parameter() -> None:
    planner = make_planner("ngopt", budget=10)
    planner.reset(MIXED, seed=0, fixed={"width": 32})
    space = planner.search.parametrization
    assert set(space) == {"optim", "lr", "momentum", "norm"}  # inactive ones too; pins not
    assert isinstance(space["lr"], ng.p.Log)
    assert isinstance(space["optim"], ng.p.Choice) and isinstance(space["norm"], ng.p.Choice)
    assert isinstance(space["momentum"], ng.p.Scalar) and not isinstance(
        space["momentum"], ng.p.Log
    )
    planner.reset(MIXED, seed=0)
    assert planner.search.parametrization["width"].integer
    assert planner.search.budget == 10


def test_ngopt_plans_for_the_campaign_budget() -> None:
    env = gym.make(ENV_ID, store=False, budget=4, disable_env_checker=True)
    planner = make_planner("ngopt")
    (result,) = rollout(planner, ENV_ID, budget=4, fixed=CHEAP, store=False)
    assert len(result.steps) == 4 and planner.search.budget == 4
    env.close()
    with pytest.raises(PlannerError, match=r"make_planner\('ngopt', budget=N\)"):
        optimize(make_planner("ngopt"), MIXED, mixed, n_trials=2)


def test_ngopt_tells_failures_as_the_worst_value() -> None:
    planner = make_planner("ngopt", budget=10)
    planner.reset(MIXED, seed=0)
    told = []
    planner.search.tell = lambda candidate, loss: told.append(loss)
    for reward, status in [(-1.0, "error"), (0.4, "ok"), (-1.0, "diverged"), (0.7, "ok")]:
        planner.propose(None)
        planner.observe(None, reward, {"status": status})
    assert told == [-0.4, 1.0, -0.7]  # losses: nevergrad minimizes


@pytest.mark.usefixtures("without_nevergrad")
def test_ngopt_without_nevergrad_names_the_extra() -> None:
    with pytest.raises(DependencyNotInstalled, match=r"pip install 'researchgym\[nevergrad\]'"):
        make_planner("ngopt")
    result = CliRunner().invoke(app, ["rollout", "--agent", "ngopt", "--env", ENV_ID])
    assert result.exit_code == 2
    assert "pip install 'researchgym[nevergrad]'" in " ".join(result.output.split())


def test_template_starts_at_the_defaults_and_climbs() -> None:
    history = optimize(make_planner("template"), SMOOTH, smooth, n_trials=30, seed=0)
    assert history[0][0] == SMOOTH.defaults()
    best = np.maximum.accumulate([v for _, v in history])
    assert best[0] < -0.8 and best[-1] > -0.1


def test_template_rejects_a_bad_step_size() -> None:
    with pytest.raises(PlannerError, match=r"step_size=0(\.0)? must be a positive number"):
        make_planner("template", step_size=0)
