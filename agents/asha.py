"""ASHA: asynchronous successive halving, a promotion whenever one is due.

Each step either continues (verb ``continue``) a run that is in the top ``1/eta`` of
its rung and was not continued yet, the highest rung first, or starts a new random
configuration at the lowest fidelity (Li et al., 2020). No bracket has to fill before
a run goes on, so good configurations reach ``max_epochs`` early in the campaign. See
``agents/multi_fidelity.py`` for the shared schedule.

    python -m agents.asha --env researchgym/Synthetic-v0 --steps 40 --max-epochs 9
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.multi_fidelity import ASHA, FidelityArgs, FidelityPlanner
from researchgym.planning import parse_args, run_from_args


@dataclass
class Args(FidelityArgs):
    """ASHA over a forkable ResearchGym env's settings."""


class ASHAPlanner(FidelityPlanner):
    """Asynchronous successive halving with random configurations.

    Args:
        min_epochs: the lowest fidelity (the grace period).
        max_epochs: the highest fidelity (default: the env's ``max_epochs``).
        eta: the ratio of fidelities between rungs; the best ``1/eta`` of a rung go on.
    """

    name = "asha"

    def make_schedule(self, rungs: tuple[int, ...]) -> ASHA:
        return ASHA(rungs, self.eta)


if __name__ == "__main__":
    args = parse_args(Args)
    run_from_args(ASHAPlanner(args.min_epochs, args.max_epochs, args.eta), args)
