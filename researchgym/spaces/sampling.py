"""Space-filling designs over a schema: random, Sobol and grid points.

Each design is a generator that yields validated metaprograms one at a time,
without end. The sequential planners (``agents/random_search.py``,
``agents/sobol.py``, ``agents/grid.py``) propose its next point each step;
:func:`sample` takes its first ``n`` distinct points at once (the jobs of a
sweep, see :func:`researchgym.sweeps.plan_sweep`).

Random and Sobol points are drawn in the schema's flat ``[-1, 1]`` encoding and
decoded, so log scales, integer and choice cells, and conditions are respected
by ``Schema.decode``; a grid takes a few levels of every setting.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from itertools import islice
from typing import Any

import numpy as np

from researchgym.errors import ConfigError, shorten
from researchgym.spaces.schema import Schema
from researchgym.spaces.settings import Categorical, SettingError

__all__ = ["SAMPLERS", "grid_levels", "grid_points", "random_points", "sample", "sobol_points"]

SAMPLERS = ("random", "sobol", "grid")

MAX_PERMUTED = 1_000_000
"""Grids larger than this draw random indices on each pass instead of a full permutation."""


def random_points(schema: Schema, seed: int | None = None) -> Iterator[dict[str, Any]]:
    """Uniform random points in each setting's own scale.

    Every point is a uniform draw of the flat encoding, decoded: floats and
    integers marked ``log`` come out log-uniform, categoricals and booleans
    uniform over their choices, and conditional settings are drawn only when
    active. Points may repeat.

    Args:
        schema: the settings to draw.
        seed: seed of the draws.
    """
    rng = np.random.default_rng(seed)
    while True:
        yield schema.decode(rng.uniform(-1.0, 1.0, size=len(schema)))


def sobol_points(
    schema: Schema, seed: int | None = None, scramble: bool = True
) -> Iterator[dict[str, Any]]:
    """Points of a Sobol sequence over the flat encoding, decoded.

    Each setting is one dimension, so the points cover the space more evenly
    than random ones. They are drawn in blocks of 1, 1, 2, 4, 8, ... points, so
    the total drawn is always a power of two, which keeps Sobol's balance
    properties (the sequence itself does not depend on the blocks). Points may
    repeat where discrete settings decode neighbouring points alike.

    Args:
        schema: the settings to draw.
        seed: seed of the Owen scrambling.
        scramble: randomize the sequence; off gives the plain Sobol sequence.
    """
    from scipy.stats import qmc

    engine = qmc.Sobol(d=len(schema), scramble=scramble, rng=np.random.default_rng(seed))
    while True:
        for x in engine.random(max(1, engine.num_generated)):
            yield schema.decode(2.0 * x - 1.0)


def grid_levels(
    schema: Schema, levels: int = 3, settings: list[str] | None = None
) -> dict[str, list[Any]]:
    """The values a grid takes of each setting.

    A categorical or boolean takes every choice; a number takes ``levels``
    values at the centres of equal cells of its own scale (log where declared),
    so a 3-level grid on ``optim.lr`` in ``[1e-5, 1]`` tries about 7e-5, 3e-3 and
    0.15 rather than the extremes. An integer may have fewer distinct values.

    Args:
        schema: the settings.
        levels: values of each number (``>= 1``).
        settings: the settings to give values of, in this order; ``None`` for all.

    Raises:
        SettingError: ``levels`` is not a positive integer, or a name is unknown.
    """
    if not isinstance(levels, int) or levels < 1:
        raise SettingError(f"levels={levels!r} must be a positive integer, e.g. 3")
    centres = [-1.0 + (2 * i + 1) / levels for i in range(levels)]
    out: dict[str, list[Any]] = {}
    for name in schema.names if settings is None else settings:
        setting = schema[name]  # unknown names fail here, with a suggestion
        if isinstance(setting, Categorical):
            out[name] = list(setting.choices)
        else:
            out[name] = list(dict.fromkeys(setting.decode(x) for x in centres))
    return out


def grid_points(
    schema: Schema,
    seed: int | None = None,
    levels: int = 3,
    shuffle: bool = True,
    settings: list[str] | None = None,
    fixed: Mapping[str, Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """Points of the grid of :func:`grid_levels`, in a seeded random order.

    Each pass visits every grid point once. Points that coincide once inactive
    settings are dropped are yielded once per pass. When the grid is exhausted
    it starts over, in a new order. Grids of more than :data:`MAX_PERMUTED`
    points draw random indices on each pass instead of a full permutation.

    Args:
        schema: the settings.
        seed: seed of the order.
        levels: values of each number (``>= 1``).
        shuffle: visit points in a seeded random order; off walks the grid in
            order (the last setting varies fastest).
        settings: the settings the grid spans; ``None`` for every one that is
            not in ``fixed``. The others keep their defaults.
        fixed: settings pinned in every point (not spanned by the grid).

    Raises:
        SettingError: bad ``levels`` or an unknown setting (raised on the call,
            before any point is drawn).
    """
    fixed = dict(fixed or {})
    names = [name for name in (schema.names if settings is None else settings) if name not in fixed]
    axes = grid_levels(schema, levels, names)
    return _walk_grid(schema, axes, np.random.default_rng(seed), shuffle, fixed)


def _walk_grid(
    schema: Schema,
    axes: dict[str, list[Any]],
    rng: np.random.Generator,
    shuffle: bool,
    fixed: dict[str, Any],
) -> Iterator[dict[str, Any]]:
    size = math.prod(len(values) for values in axes.values())
    while True:  # one pass over the grid per loop
        if not shuffle:
            order: Iterator[int] = iter(range(size))
        elif size <= MAX_PERMUTED:
            order = (int(i) for i in rng.permutation(size))
        else:
            order = (int(rng.integers(size)) for _ in range(size))
        seen: set[str] = set()
        for index in order:
            values: dict[str, Any] = {}
            for name, axis in reversed(axes.items()):  # mixed radix, last setting fastest
                index, digit = divmod(index, len(axis))
                values[name] = axis[digit]
            metaprogram = schema.validate(values | fixed)
            key = _key(metaprogram)
            if key not in seen:
                seen.add(key)
                yield metaprogram


def _key(metaprogram: Mapping[str, Any]) -> str:
    return repr(sorted(metaprogram.items()))


def sample(
    schema: Schema, sampler: str, n: int, seed: int = 0, levels: int = 3
) -> list[dict[str, Any]]:
    """The first ``n`` distinct points of a design.

    Fewer when the design has fewer distinct points than ``n``: draws stop
    after ``100 * n`` points.

    Args:
        schema: the settings to sample.
        sampler: ``"random"`` (:func:`random_points`), ``"sobol"``
            (:func:`sobol_points`, scrambled) or ``"grid"`` (:func:`grid_points`,
            shuffled, over every setting).
        n: number of points.
        seed: seed of the design.
        levels: grid levels of numeric settings.
    """
    if sampler not in SAMPLERS:
        raise ConfigError(f"sampler={shorten(sampler)} is not one of {SAMPLERS}")
    if n < 1:
        raise ConfigError(f"n={n} must be at least 1")
    if sampler == "sobol":
        points = sobol_points(schema, seed)
    elif sampler == "grid":
        points = grid_points(schema, seed, levels)
    else:
        points = random_points(schema, seed)
    out: dict[str, dict[str, Any]] = {}
    for metaprogram in islice(points, 100 * n):
        out.setdefault(_key(metaprogram), metaprogram)
        if len(out) == n:
            break
    return list(out.values())
