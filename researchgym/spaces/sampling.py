"""Space-filling designs over a schema: random, Sobol and grid.

Each sampler returns validated metaprograms. Sobol and random points are drawn
in the flat ``[-1, 1]`` encoding (log scales and conditions respected by
``Schema.decode``); a grid takes a few levels of every setting.
"""

from __future__ import annotations

import random
import warnings
from typing import Any

import numpy as np

from researchgym.spaces.schema import Schema
from researchgym.spaces.settings import Categorical, Float, Int

__all__ = ["SAMPLERS", "grid_levels", "sample"]

SAMPLERS = ("random", "sobol", "grid")


def grid_levels(schema: Schema, levels: int = 3) -> dict[str, list[Any]]:
    """Values of each setting on a grid: every choice, ``levels`` points of numbers."""
    out: dict[str, list[Any]] = {}
    for setting in schema:
        if isinstance(setting, Categorical):
            out[setting.name] = list(setting.choices)
        elif isinstance(setting, (Float, Int)):
            points = [setting.decode(x) for x in np.linspace(-1.0, 1.0, levels)]
            out[setting.name] = list(dict.fromkeys(points))  # ints may repeat
    return out


def sample(schema: Schema, sampler: str, n: int, seed: int = 0, levels: int = 3) -> list[dict[str, Any]]:
    """``n`` distinct metaprograms from a design.

    Args:
        schema: the settings to sample.
        sampler: ``"random"`` (uniform in the flat encoding), ``"sobol"``
            (scrambled Sobol sequence) or ``"grid"`` (a seeded shuffle of the full
            grid of :func:`grid_levels`, first ``n`` points; fewer when conditions make
            grid points coincide).
        n: number of points.
        seed: seed of the design.
        levels: grid levels of numeric settings.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler={sampler!r} is not one of {SAMPLERS}")
    if n < 1:
        raise ValueError(f"n={n} must be at least 1")
    rng = np.random.default_rng(seed)
    if sampler == "grid":
        return _grid(schema, n, rng, levels)
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    if sampler == "sobol":
        from scipy.stats import qmc

        engine = qmc.Sobol(d=len(schema), scramble=True, seed=rng)
    attempts = 0
    while len(out) < n and attempts < 100 * n:
        batch = n - len(out)
        if sampler == "sobol":
            with warnings.catch_warnings():  # prefixes of any length are still low-discrepancy
                warnings.simplefilter("ignore", UserWarning)
                points = engine.random(batch) * 2.0 - 1.0
        else:
            points = rng.uniform(-1.0, 1.0, size=(batch, len(schema)))
        for x in points:
            attempts += 1
            metaprogram = schema.decode(x)
            key = repr(sorted(metaprogram.items()))
            if key not in seen:
                seen.add(key)
                out.append(metaprogram)
    return out


def _grid(schema: Schema, n: int, rng: np.random.Generator, levels: int) -> list[dict[str, Any]]:
    grid = grid_levels(schema, levels)
    names = list(grid)
    sizes = [len(grid[name]) for name in names]
    total = int(np.prod(sizes, dtype=object))
    # Distinct flat indices into the product, drawn without materializing it.
    picked = random.Random(int(rng.integers(2**63))).sample(range(total), min(n, total))
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index in picked:
        values = {}
        for name, size in zip(reversed(names), reversed(sizes)):
            index, i = divmod(index, size)
            values[name] = grid[name][i]
        metaprogram = schema.validate(values)
        key = repr(sorted(metaprogram.items()))
        if key not in seen:  # inactive settings make some grid points coincide
            seen.add(key)
            out.append(metaprogram)
    return out
