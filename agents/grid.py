"""Grid search: a few levels per number, every choice per categorical.

Numbers get ``levels`` points at the centres of equal cells of their own scale
(log where declared), so a 3-level grid on ``optim.lr`` in ``[1e-5, 1]`` tries
about 7e-5, 3e-3 and 0.15 rather than the extremes. By default the grid spans
every setting that is not pinned, and its points are visited in a seeded
random order, so a small budget still samples the whole grid; ``--no-shuffle``
walks it in order. Points that coincide once inactive settings are dropped are
tried once. When the grid is exhausted it starts over.

    python -m agents.grid --env-id researchgym/Tabular-v0 --settings optim.lr model.width --levels 4
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from researchgym.planners import CampaignArgs, SearchPlanner, parse_args, run_from_args
from researchgym.spaces import Categorical, Schema, SettingError


@dataclass
class Args(CampaignArgs):
    """Grid search over (some of) a ResearchGym env's settings."""

    levels: int = 3
    """points per numeric setting"""
    settings: list[str] = field(default_factory=list)
    """settings spanned by the grid (default: all that are not pinned); the rest keep their defaults"""
    shuffle: bool = True
    """visit grid points in a seeded random order"""


class GridPlanner(SearchPlanner):
    """Grid over the settings, visited in a seeded random order (or in order).

    Args:
        levels: points per numeric setting (``>= 1``).
        settings: the settings the grid spans; ``None`` for every unpinned one.
        shuffle: visit points in a seeded random order instead of lexicographic order.
    """

    name = "grid"
    max_permuted = 1_000_000  # larger grids draw random indices instead of a full permutation

    def __init__(self, levels: int = 3, settings: list[str] | None = None, shuffle: bool = True):
        if not isinstance(levels, int) or levels < 1:
            raise SettingError(f"levels={levels!r} must be a positive integer, e.g. 3")
        self.levels = levels
        self.settings = list(settings) if settings else None
        self.shuffle = shuffle

    def reset(self, schema: Schema, *, seed: int | None = None, fixed: Mapping[str, Any] | None = None) -> None:
        super().reset(schema, seed=seed, fixed=fixed)
        names = self.settings or self.free_settings()
        for name in names:
            schema[name]  # unknown names fail here, with a suggestion
        self.axes = {name: self.axis(schema[name]) for name in names if name not in self.fixed}
        self.size = math.prod(len(values) for values in self.axes.values())
        self._order = self._indices()
        self._seen: set[str] = set()

    def axis(self, setting: Any) -> list[Any]:
        """The grid values of one setting."""
        if isinstance(setting, Categorical):
            return list(setting.choices)
        centres = [-1.0 + (2 * i + 1) / self.levels for i in range(self.levels)]
        return list(dict.fromkeys(setting.decode(x) for x in centres))

    def _indices(self) -> Iterator[int]:
        while True:  # one pass over the grid per loop
            if not self.shuffle:
                yield from range(self.size)
            elif self.size <= self.max_permuted:
                yield from (int(i) for i in self.rng.permutation(self.size))
            else:
                for _ in range(self.size):
                    yield int(self.rng.integers(self.size))
            self._seen.clear()

    def point(self, index: int) -> dict[str, Any]:
        """The grid point with this mixed-radix index (last setting varies fastest)."""
        values: dict[str, Any] = {}
        for name, axis in reversed(self.axes.items()):
            index, digit = divmod(index, len(axis))
            values[name] = axis[digit]
        return values

    def propose(self, observation: Any) -> dict[str, Any]:
        for _ in range(self.size):
            metaprogram = self.schema.validate(self.point(next(self._order)) | self.fixed)
            key = json.dumps(metaprogram, sort_keys=True, default=str)
            if key not in self._seen:
                break
        self._seen.add(key)
        return metaprogram


if __name__ == "__main__":
    args = parse_args(Args)
    run_from_args(GridPlanner(levels=args.levels, settings=args.settings, shuffle=args.shuffle), args)
