"""Designs over a schema: random, Sobol and grid points, one at a time or as a batch."""

from __future__ import annotations

import json
import warnings
from itertools import islice

import pytest

from researchgym.envs.suites import get_suite
from researchgym.spaces import Bool, Categorical, Float, Int, Schema, SettingError
from researchgym.spaces.sampling import (
    SAMPLERS,
    grid_levels,
    grid_points,
    random_points,
    sample,
    sobol_points,
)

SMALL = Schema(
    [
        Categorical("opt", "adam", choices=("adam", "sgd")),
        Float("momentum", 0.9, low=0.0, high=0.99, when={"opt": ("sgd",)}),
        Int("width", 64, low=16, high=1024, log=True),
        Bool("norm", False),
    ]
)
SMALL_GRID = 24  # adam: 3 widths x 2 norms; sgd: 3 momenta x 3 widths x 2 norms
TABULAR = get_suite("tabular").make_schema()


def keys(metaprograms: list[dict]) -> list[str]:
    return [json.dumps(m, sort_keys=True) for m in metaprograms]


def assert_valid(schema: Schema, metaprogram: dict) -> None:
    """Exactly the validated form of itself: known names, in range, only active settings."""
    assert metaprogram == schema.validate(metaprogram)
    for setting in schema:
        active = all(metaprogram.get(p) in allowed for p, allowed in setting.when.items())
        assert (setting.name in metaprogram) == active, setting.name


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("schema", [SMALL, TABULAR], ids=["small", "tabular"])
def test_designs_are_valid_distinct_and_seeded(sampler: str, schema: Schema) -> None:
    points = sample(schema, sampler, 20, seed=3)
    assert len(points) == 20
    for m in points:
        assert_valid(schema, m)
    assert len(set(keys(points))) == 20
    assert sample(schema, sampler, 20, seed=3) == points
    assert sample(schema, sampler, 20, seed=4) != points


@pytest.mark.parametrize(
    "points",
    [
        random_points(TABULAR, 1),
        sobol_points(TABULAR, 1),
        sobol_points(TABULAR, scramble=False),
        grid_points(TABULAR, 1),
    ],
    ids=["random", "sobol", "plain-sobol", "grid"],
)
def test_generators_yield_valid_metaprograms(points) -> None:
    for m in islice(points, 50):
        assert_valid(TABULAR, m)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_sample_takes_the_first_distinct_points_of_its_generator(sampler: str) -> None:
    make = {"random": random_points, "sobol": sobol_points, "grid": grid_points}[sampler]
    distinct = list(dict.fromkeys(keys(list(islice(make(SMALL, 5), 200)))))
    assert keys(sample(SMALL, sampler, 10, seed=5)) == distinct[:10]


def test_sobol_batches_are_prefixes_of_one_sequence() -> None:
    long = sample(TABULAR, "sobol", 100, seed=0)
    for n in (1, 7, 16, 33):
        assert sample(TABULAR, "sobol", n, seed=0) == long[:n]


def test_sobol_draws_keep_the_balance_and_fill_the_cells() -> None:
    schema = Schema([Float("x", 0.5, low=0.0, high=1.0), Float("y", 0.5, low=0.0, high=1.0)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy warns when a draw breaks the power-of-two balance
        points = list(islice(sobol_points(schema, seed=0), 64))
    # 64 Sobol points put exactly one point in each cell of an 8 x 8 grid
    assert len({(int(m["x"] * 8), int(m["y"] * 8)) for m in points}) == 64


def test_unscrambled_sobol_ignores_the_seed() -> None:
    assert list(islice(sobol_points(SMALL, 0, scramble=False), 16)) == list(
        islice(sobol_points(SMALL, 9, scramble=False), 16)
    )


def test_grid_levels_are_cell_centres_of_each_scale() -> None:
    axes = grid_levels(SMALL, levels=3)
    assert axes["opt"] == ["adam", "sgd"] and axes["norm"] == [False, True]
    assert axes["width"] == [
        31,
        126,
        510,
    ]  # centres of three equal cells of [15.5, 1024.5] on the log scale
    assert axes["momentum"] == pytest.approx([0.165, 0.495, 0.825])
    chosen = grid_levels(SMALL, levels=2, settings=["width", "opt"])
    assert list(chosen.items()) == [("width", [44, 359]), ("opt", ["adam", "sgd"])]


def test_grid_covers_every_point_and_every_choice() -> None:
    points = sample(SMALL, "grid", 100, seed=0)
    assert len(points) == SMALL_GRID  # every distinct grid point, then no more
    assert len(set(keys(points))) == SMALL_GRID
    for name, values in grid_levels(SMALL).items():
        seen = {m[name] for m in points if name in m}
        assert seen == set(values), name
    for setting in TABULAR:
        if isinstance(setting, Categorical) and not setting.when:
            assert {m[setting.name] for m in sample(TABULAR, "grid", 300, seed=0)} == set(
                setting.choices
            )


def test_grid_visits_each_point_once_per_pass_then_starts_over() -> None:
    points = keys(list(islice(grid_points(SMALL, seed=0), 2 * SMALL_GRID)))
    first, second = points[:SMALL_GRID], points[SMALL_GRID:]
    assert len(set(first)) == SMALL_GRID and sorted(first) == sorted(second)
    assert first != second  # a new order on each pass


def test_grid_in_order_over_chosen_settings_with_pins() -> None:
    points = list(
        islice(
            grid_points(SMALL, shuffle=False, settings=["norm", "width"], fixed={"opt": "sgd"}), 7
        )
    )
    assert [(m["norm"], m["width"]) for m in points[:6]] == [
        (False, 31),
        (False, 126),
        (False, 510),
        (True, 31),
        (True, 126),
        (True, 510),
    ]
    assert points[6] == points[0]
    assert all(m["opt"] == "sgd" and m["momentum"] == 0.9 for m in points)


def test_grid_points_coinciding_under_conditions_come_once_per_pass() -> None:
    # momentum is inactive under adam: its three levels collapse to one point
    points = keys(list(islice(grid_points(SMALL, seed=1, settings=["opt", "momentum"]), 4)))
    assert len(set(points[:4])) == 4
    assert sum('"adam"' in k for k in points) == 1


def test_bad_requests_fail_on_the_call() -> None:
    with pytest.raises(ValueError, match="sampler='halton' is not one of"):
        sample(SMALL, "halton", 3)
    with pytest.raises(ValueError, match="n=0 must be at least 1"):
        sample(SMALL, "sobol", 0)
    with pytest.raises(SettingError, match="levels=0 must be a positive integer"):
        grid_points(SMALL, levels=0)
    with pytest.raises(SettingError, match="unknown setting 'widht'; did you mean 'width'"):
        grid_points(SMALL, settings=["widht"])
