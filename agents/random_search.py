"""Random search: every setting drawn uniformly in its own scale.

Floats and integers marked ``log`` are drawn log-uniformly, categoricals and
booleans uniformly over their choices; conditional settings are drawn only
when active. (Drawing a uniform point of the schema's flat ``[-1, 1]``
encoding and decoding it gives exactly that.)

    python -m agents.random_search --env-id researchgym/Tabular-v0 --budget 10 --fixed train.epochs=5
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from researchgym.planners import CampaignArgs, SearchPlanner, parse_args, run_from_args


@dataclass
class Args(CampaignArgs):
    """Random search over a ResearchGym env's settings."""


class RandomPlanner(SearchPlanner):
    """Uniform random search in each setting's own scale (log, integer, categorical)."""

    name = "random"

    def propose(self, observation: Any) -> dict[str, Any]:
        point = self.rng.uniform(-1.0, 1.0, size=len(self.schema))
        return self.schema.decode(point) | self.fixed


if __name__ == "__main__":
    args = parse_args(Args)
    run_from_args(RandomPlanner(), args)
