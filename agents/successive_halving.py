"""Successive halving: many configurations at a low fidelity, the best continued further.

One bracket, repeated while the budget lasts: ``n_configs`` random configurations are
trained to the lowest fidelity, the best ``1/eta`` continued (verb ``continue``) to the
next fidelity, and so on up to ``max_epochs`` (Jamieson and Talwalkar, 2016). The
schedule is shared with Hyperband and ASHA (see ``agents/multi_fidelity.py``).

    python -m agents.successive_halving --env researchgym/Synthetic-v0 --steps 40 --max-epochs 9
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.multi_fidelity import Brackets, FidelityArgs, FidelityPlanner, check_epochs
from researchgym.planning import arg, parse_args, run_from_args


@dataclass
class Args(FidelityArgs):
    """Successive halving over a forkable ResearchGym env's settings."""

    n_configs: int | None = arg(None, "configurations per bracket (default: eta ** rungs-1)")


class SuccessiveHalvingPlanner(FidelityPlanner):
    """Successive halving, one bracket after another.

    Args:
        min_epochs: the lowest fidelity.
        max_epochs: the highest fidelity (default: the env's ``max_epochs``).
        eta: the ratio of fidelities between rungs; the best ``1/eta`` of a rung go on.
        n_configs: configurations started per bracket (default: enough that one reaches the
            highest fidelity, ``eta ** (rungs - 1)``); fewer when a bracket would take more
            steps than the campaign has.
    """

    name = "successive-halving"

    def __init__(
        self,
        min_epochs: int = 1,
        max_epochs: int | None = None,
        eta: int = 3,
        n_configs: int | None = None,
    ):
        super().__init__(min_epochs, max_epochs, eta)
        if n_configs is not None:
            check_epochs("n_configs", n_configs)
        self.n_configs = n_configs

    def make_schedule(self, rungs: tuple[int, ...]) -> Brackets:
        n = self.n_configs or self.eta ** (len(rungs) - 1)
        return Brackets([(n, rungs)], self.eta, self.budget)


if __name__ == "__main__":
    args = parse_args(Args)
    run_from_args(
        SuccessiveHalvingPlanner(args.min_epochs, args.max_epochs, args.eta, args.n_configs), args
    )
