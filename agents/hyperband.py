"""Hyperband: successive halving in brackets from aggressive to cautious.

Each bracket trades how many configurations start against how low their first
fidelity is: the first starts ``eta ** s`` of them at the lowest fidelity, the last
trains a few at ``max_epochs`` only, and all spend about the same epochs (Li et al.,
2018). Promotions continue the runs (verb ``continue``); the brackets come round again
while the budget lasts, and a bracket that would take more steps than the campaign has
starts fewer configurations. See ``agents/multi_fidelity.py`` for the shared schedule.

    python -m agents.hyperband --env researchgym/Synthetic-v0 --steps 60 --max-epochs 9
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.multi_fidelity import Brackets, FidelityArgs, FidelityPlanner, hyperband_brackets
from researchgym.planning import parse_args, run_from_args


@dataclass
class Args(FidelityArgs):
    """Hyperband over a forkable ResearchGym env's settings."""


class HyperbandPlanner(FidelityPlanner):
    """Hyperband with random configurations, promotions by ``continue``.

    Args:
        min_epochs: the lowest fidelity.
        max_epochs: the highest fidelity (default: the env's ``max_epochs``).
        eta: the ratio of fidelities between rungs; the best ``1/eta`` of a rung go on.
    """

    name = "hyperband"

    def make_schedule(self, rungs: tuple[int, ...]) -> Brackets:
        return Brackets(hyperband_brackets(rungs, self.eta), self.eta, self.budget)


if __name__ == "__main__":
    args = parse_args(Args)
    run_from_args(HyperbandPlanner(args.min_epochs, args.max_epochs, args.eta), args)
