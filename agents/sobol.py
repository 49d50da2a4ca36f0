"""Quasi-random search: a scrambled Sobol sequence over the schema's flat encoding.

Each setting is one dimension of ``[-1, 1]``, in the setting's own scale (log
where declared; integers and choices own equal-width cells), so Sobol points
cover the space more evenly than random ones. Points are drawn in blocks that
keep the total a power of two, which preserves Sobol's balance properties.

    python -m agents.sobol --env-id researchgym/Tabular-v0 --budget 16 --fixed train.epochs=5
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import qmc

from researchgym.planners import CampaignArgs, SearchPlanner, parse_args, run_from_args
from researchgym.spaces import Schema


@dataclass
class Args(CampaignArgs):
    """Scrambled Sobol search over a ResearchGym env's settings."""

    scramble: bool = True
    """randomize the sequence (Owen scrambling, seeded); off gives the plain Sobol sequence"""


class SobolPlanner(SearchPlanner):
    """Scrambled Sobol points of the flat encoding, decoded to metaprograms.

    Args:
        scramble: Owen-scramble the sequence with the campaign's seed.
    """

    name = "sobol"

    def __init__(self, scramble: bool = True):
        self.scramble = scramble

    def reset(self, schema: Schema, *, seed: int | None = None, fixed: Mapping[str, Any] | None = None) -> None:
        super().reset(schema, seed=seed, fixed=fixed)
        self._engine = qmc.Sobol(d=len(schema), scramble=self.scramble, rng=np.random.default_rng(seed))
        self._buffer: list[np.ndarray] = []

    def propose(self, observation: Any) -> dict[str, Any]:
        if not self._buffer:
            # 1, 1, 2, 4, 8, ... points: the total drawn stays a power of two
            block = max(1, self._engine.num_generated)
            self._buffer = list(self._engine.random(block))
        point = self._buffer.pop(0)
        return self.schema.decode(2.0 * point - 1.0) | self.fixed


if __name__ == "__main__":
    args = parse_args(Args)
    run_from_args(SobolPlanner(scramble=args.scramble), args)
