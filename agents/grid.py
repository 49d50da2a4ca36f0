"""Grid search: a few levels per number, every choice per categorical.

Numbers get ``levels`` points at the centres of equal cells of their own scale
(log where declared), so a 3-level grid on ``optim.lr`` in ``[1e-5, 1]`` tries
about 7e-5, 3e-3 and 0.15 rather than the extremes. By default the grid spans
every setting that is not pinned, and its points are visited in a seeded
random order, so a small budget still samples the whole grid; ``--no-shuffle``
walks it in order. Points that coincide once inactive settings are dropped are
tried once. When the grid is exhausted it starts over. The points come from
:func:`researchgym.spaces.sampling.grid_points`, which grid sweeps share.

    python -m agents.grid --env researchgym/Tabular-v0 --settings optim.lr model.width --levels 4
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from researchgym.planning import (
    CampaignArgs,
    IndependentProposals,
    SearchPlanner,
    arg,
    parse_args,
    run_from_args,
)
from researchgym.spaces import Schema, SettingError
from researchgym.spaces.sampling import grid_points


@dataclass
class Args(CampaignArgs):
    """Grid search over (some of) a ResearchGym env's settings."""

    levels: int = arg(3, "points per numeric setting")
    settings: tuple[str, ...] = arg(
        (),
        "settings spanned by the grid (default: all that are not pinned); the rest keep defaults",
    )
    shuffle: bool = arg(True, "visit grid points in a seeded random order")


class GridPlanner(IndependentProposals, SearchPlanner):
    """Grid over the settings, visited in a seeded random order (or in order).

    Args:
        levels: points per numeric setting (``>= 1``).
        settings: the settings the grid spans; ``None`` for every unpinned one.
        shuffle: visit points in a seeded random order instead of lexicographic order.
    """

    name = "grid"

    def __init__(
        self, levels: int = 3, settings: Sequence[str] | None = None, shuffle: bool = True
    ):
        if not isinstance(levels, int) or levels < 1:
            raise SettingError(f"levels={levels!r} must be a positive integer, e.g. 3")
        self.levels = levels
        self.settings = list(settings) if settings else None
        self.shuffle = shuffle

    def reset(
        self, schema: Schema, *, seed: int | None = None, fixed: Mapping[str, Any] | None = None
    ) -> None:
        super().reset(schema, seed=seed, fixed=fixed)
        self.points = grid_points(
            schema,
            seed,
            levels=self.levels,
            shuffle=self.shuffle,
            settings=self.settings,
            fixed=self.fixed,
        )

    def propose(self, observation: Any) -> dict[str, Any]:
        return next(self.points)


if __name__ == "__main__":
    args = parse_args(Args)
    run_from_args(
        GridPlanner(levels=args.levels, settings=args.settings, shuffle=args.shuffle), args
    )
