"""CMA-ES: Optuna's ``CmaEsSampler`` by ask/tell over the numeric settings.

CMA-ES adapts a Gaussian over the numeric settings every trial so far has had,
in their own scale (log where declared; integers rounded). It cannot model
choices, so categorical and boolean settings, and the conditional settings that
some trials lack (``optim.momentum`` exists only while ``optim.name`` is
``"sgd"``; ``model.width`` only for ``model.family=mlp``), are drawn by the
independent sampler, a seeded ``RandomSampler``: pin a choice (``--set
optim.name=adam``) to let CMA-ES search the settings under it. Trials are asked
define-by-run over the active settings, failed steps told as the worst value
seen (see :mod:`agents.optuna_planner`). Needs the ``cmaes`` package.

    python -m agents.cmaes --env researchgym/Tabular-v0 --steps 20 --set train.epochs=5
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna

from agents.optuna_planner import OptunaPlanner
from researchgym.planning import CampaignArgs, arg, parse_args, run_from_args


@dataclass
class Args(CampaignArgs):
    """CMA-ES (Optuna CmaEsSampler) over a ResearchGym env's numeric settings."""

    popsize: int | None = arg(
        None, "trials per CMA-ES generation (default: 4 + 3 ln(numeric settings))"
    )


class CmaEsPlanner(OptunaPlanner):
    """Optuna's CMA-ES sampler over the numeric settings; the other settings drawn at random.

    Args:
        popsize: trials per generation (``None``: CMA-ES's default for the dimension).
    """

    name = "cmaes"

    def __init__(self, popsize: int | None = None):
        self.popsize = popsize

    def make_sampler(self, seed: int | None) -> optuna.samplers.BaseSampler:
        return optuna.samplers.CmaEsSampler(
            popsize=self.popsize,
            independent_sampler=optuna.samplers.RandomSampler(seed=seed),
            warn_independent_sampling=False,
            seed=seed,
        )


if __name__ == "__main__":
    args = parse_args(Args)
    run_from_args(CmaEsPlanner(popsize=args.popsize), args)
