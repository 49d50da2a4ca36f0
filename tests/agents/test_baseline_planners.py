"""Random, Sobol, grid, TPE and default planners on a cheap env, and what makes each one itself."""

from __future__ import annotations

import json
import warnings

import gymnasium as gym
import numpy as np
import pytest
from planner_testing import CHEAP, ENV_ID, assert_in_space, rows_by_agent

from researchgym.planning import make_planner, optimize, run_campaigns
from researchgym.spaces import Bool, Categorical, Float, Int, Schema


@pytest.mark.parametrize("name", ["random", "sobol", "grid", "tpe", "default"])
def test_short_campaign_stays_in_space_and_is_recorded_under_its_name(
    name, make_env, store_dir
) -> None:
    env = make_env()
    schema = env.unwrapped.schema
    results = run_campaigns(env, make_planner(name), episodes=2, seed=0, fixed=CHEAP)
    steps = [s for r in results for s in r.steps]
    assert len(steps) == 6
    for s in steps:
        assert s.status == "ok", s.info["error"]
        assert_in_space(schema, s.metaprogram, CHEAP)
        assert env.action_space.contains(env.unwrapped.to_action(s.metaprogram))
    assert rows_by_agent(store_dir) == {name: 6}


def test_sobol_covers_the_space_evenly_without_balance_warnings() -> None:
    schema = Schema([Float("x", 0.5, low=0.0, high=1.0), Float("y", 0.5, low=0.0, high=1.0)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy warns when a draw breaks the power-of-two balance
        sobol = [
            (m["x"], m["y"])
            for m, _ in optimize(make_planner("sobol"), schema, lambda m: 0.0, n_trials=64, seed=0)
        ]
    rand = [
        (m["x"], m["y"])
        for m, _ in optimize(make_planner("random"), schema, lambda m: 0.0, n_trials=64, seed=0)
    ]
    # 64 Sobol points put exactly one point in each cell of an 8 x 8 grid; random points do not
    cells = {(int(x * 8), int(y * 8)) for x, y in sobol}
    assert len(cells) == 64
    assert len({(int(x * 8), int(y * 8)) for x, y in rand}) < 64


def test_sobol_respects_log_scales() -> None:
    schema = Schema([Float("lr", 1e-3, low=1e-5, high=1.0, log=True)])
    lrs = np.array(
        [
            m["lr"]
            for m, _ in optimize(make_planner("sobol"), schema, lambda m: 0.0, n_trials=32, seed=1)
        ]
    )
    decades = np.floor(np.log10(lrs)).astype(int)
    assert set(decades) == {-5, -4, -3, -2, -1}  # uniform over decades, not crowded near 1
    assert all(np.sum(decades == d) in (6, 7) for d in range(-5, 0))


def test_grid_visits_every_point_once_then_starts_over() -> None:
    schema = Schema(
        [
            Categorical("opt", "adam", choices=("adam", "sgd")),
            Float("momentum", 0.9, low=0.0, high=0.99, when={"opt": ("sgd",)}),
            Int("width", 64, low=16, high=1024, log=True),
            Bool("norm", False),
        ]
    )
    history = optimize(make_planner("grid", levels=3), schema, lambda m: 0.0, n_trials=30, seed=0)
    keys = [json.dumps(m, sort_keys=True) for m, _ in history]
    # adam: 3 widths x 2 norms = 6 points; sgd: 3 momenta x 3 widths x 2 norms = 18 points
    assert len(set(keys[:24])) == 24
    assert set(keys[24:]) <= set(keys[:24])
    # centres of three equal cells of [15.5, 1024.5] on the log scale
    assert sorted({m["width"] for m, _ in history}) == [31, 126, 510]
    assert sorted({m["momentum"] for m, _ in history if "momentum" in m}) == pytest.approx(
        [0.165, 0.495, 0.825]
    )


def test_grid_exhausts_then_repeats_and_keeps_order_without_shuffle() -> None:
    schema = Schema([Categorical("a", "x", choices=("x", "y")), Int("n", 1, low=1, high=3)])
    ordered = [
        m
        for m, _ in optimize(make_planner("grid", shuffle=False), schema, lambda m: 0.0, n_trials=7)
    ]
    assert ordered[:6] == [
        {"a": "x", "n": 1},
        {"a": "x", "n": 2},
        {"a": "x", "n": 3},
        {"a": "y", "n": 1},
        {"a": "y", "n": 2},
        {"a": "y", "n": 3},
    ]
    assert ordered[6] == ordered[0]
    shuffled = [
        m for m, _ in optimize(make_planner("grid"), schema, lambda m: 0.0, n_trials=6, seed=0)
    ]
    assert sorted(map(str, shuffled)) == sorted(map(str, ordered[:6])) and shuffled != ordered[:6]


def test_grid_over_chosen_settings_keeps_the_others_at_defaults() -> None:
    schema = gym.make(ENV_ID, store=False, disable_env_checker=True).unwrapped.schema
    planner = make_planner("grid", settings=["optim.lr", "model.width"], levels=2)
    history = optimize(planner, schema, lambda m: 0.0, n_trials=4, seed=0, fixed=CHEAP)
    defaults = schema.validate(CHEAP)
    assert len({(m["optim.lr"], m["model.width"]) for m, _ in history}) == 4
    for m, _ in history:
        assert {k: v for k, v in m.items() if k not in ("optim.lr", "model.width")} == {
            k: v for k, v in defaults.items() if k not in ("optim.lr", "model.width")
        }


def test_grid_rejects_bad_levels_and_unknown_settings() -> None:
    with pytest.raises(ValueError, match="levels=0 must be a positive integer"):
        make_planner("grid", levels=0)
    schema = Schema([Float("x", 0.5)])
    with pytest.raises(ValueError, match="unknown setting 'y'"):
        make_planner("grid", settings=["y"]).reset(schema, seed=0)


def test_default_planner_proposes_the_defaults_with_pins_and_overrides() -> None:
    schema = gym.make(ENV_ID, store=False, disable_env_checker=True).unwrapped.schema
    history = optimize(
        make_planner("default"), schema, lambda m: 0.0, n_trials=3, seed=0, fixed=CHEAP
    )
    assert all(m == schema.validate(CHEAP) for m, _ in history)
    recipe = make_planner("default", settings={"optim.name": "sgd"})
    ((m, _),) = optimize(recipe, schema, lambda m: 0.0, n_trials=1)
    assert m["optim.name"] == "sgd" and m["optim.momentum"] == 0.9
