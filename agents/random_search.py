"""Random search: every setting drawn uniformly in its own scale.

Floats and integers marked ``log`` are drawn log-uniformly, categoricals and
booleans uniformly over their choices; conditional settings are drawn only
when active. (Drawing a uniform point of the schema's flat ``[-1, 1]``
encoding and decoding it gives exactly that; the points come from
:func:`researchgym.spaces.sampling.random_points`, which sweeps share.)

    python -m agents.random_search --env researchgym/Tabular-v0 --steps 10 --set train.epochs=5
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from researchgym.planning import (
    CampaignArgs,
    IndependentProposals,
    SearchPlanner,
    parse_args,
    run_from_args,
)
from researchgym.spaces import Schema
from researchgym.spaces.sampling import random_points


@dataclass
class Args(CampaignArgs):
    """Random search over a ResearchGym env's settings."""


class RandomPlanner(IndependentProposals, SearchPlanner):
    """Uniform random search in each setting's own scale (log, integer, categorical)."""

    name = "random"

    def reset(
        self, schema: Schema, *, seed: int | None = None, fixed: Mapping[str, Any] | None = None
    ) -> None:
        super().reset(schema, seed=seed, fixed=fixed)
        self.points = random_points(schema, seed)

    def propose(self, observation: Any) -> dict[str, Any]:
        return next(self.points) | self.fixed


if __name__ == "__main__":
    args = parse_args(Args)
    run_from_args(RandomPlanner(), args)
