"""Quasi-random search: a scrambled Sobol sequence over the schema's flat encoding.

Each setting is one dimension of ``[-1, 1]``, in the setting's own scale (log
where declared; integers and choices own equal-width cells), so Sobol points
cover the space more evenly than random ones. Points are drawn in blocks that
keep the total a power of two, which preserves Sobol's balance properties. The
points come from :func:`researchgym.spaces.sampling.sobol_points`, the same
sequence that ``researchgym generate --sampler sobol`` sweeps.

    python -m agents.sobol --env researchgym/Tabular-v0 --steps 16 --set train.epochs=5
"""

from __future__ import annotations

from collections.abc import Mapping
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
from researchgym.spaces import Schema
from researchgym.spaces.sampling import sobol_points


@dataclass
class Args(CampaignArgs):
    """Scrambled Sobol search over a ResearchGym env's settings."""

    scramble: bool = arg(
        True,
        "randomize the sequence (Owen scrambling, seeded); off gives the plain Sobol sequence",
    )


class SobolPlanner(IndependentProposals, SearchPlanner):
    """Scrambled Sobol points of the flat encoding, decoded to metaprograms.

    Args:
        scramble: Owen-scramble the sequence with the campaign's seed.
    """

    name = "sobol"

    def __init__(self, scramble: bool = True):
        self.scramble = scramble

    def reset(
        self, schema: Schema, *, seed: int | None = None, fixed: Mapping[str, Any] | None = None
    ) -> None:
        super().reset(schema, seed=seed, fixed=fixed)
        self.points = sobol_points(schema, seed, scramble=self.scramble)

    def propose(self, observation: Any) -> dict[str, Any]:
        return next(self.points) | self.fixed


if __name__ == "__main__":
    args = parse_args(Args)
    run_from_args(SobolPlanner(scramble=args.scramble), args)
