"""Gaussian-process Bayesian optimization: Optuna's ``GPSampler`` by ask/tell.

The GP (Matérn-5/2 kernel with a length scale per setting, log expected
improvement) models the settings every trial so far has had — numbers in their
own scale (log where declared), integers and categorical choices alike. After
``n_startup_trials`` random trials it proposes the point that maximizes the
acquisition function. Settings outside that shared set, the conditional ones
(``optim.momentum`` exists only while ``optim.name`` is ``"sgd"``), are drawn by
the independent sampler, a seeded ``RandomSampler``, like the startup trials.
Trials are asked define-by-run over the active settings, failed steps told as
the worst value seen (see :mod:`agents.optuna_planner`). Needs torch and scipy.

    python -m agents.gp --env researchgym/Tabular-v0 --steps 20 --set train.epochs=5
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna

from agents.optuna_planner import OptunaPlanner
from researchgym.planning import CampaignArgs, arg, parse_args, run_from_args


@dataclass
class Args(CampaignArgs):
    """Gaussian-process Bayesian optimization (Optuna GPSampler) over a ResearchGym env's settings."""

    n_startup_trials: int = arg(5, "random trials before the GP starts modelling")


class GPPlanner(OptunaPlanner):
    """Optuna's GP sampler, one trial per step; conditional settings drawn at random.

    Args:
        n_startup_trials: random trials before the GP models the results.
    """

    name = "gp"

    def __init__(self, n_startup_trials: int = 5):
        self.n_startup_trials = n_startup_trials

    def make_sampler(self, seed: int | None) -> optuna.samplers.BaseSampler:
        return optuna.samplers.GPSampler(
            n_startup_trials=self.n_startup_trials,
            independent_sampler=optuna.samplers.RandomSampler(seed=seed),
            warn_independent_sampling=False,
            seed=seed,
        )


if __name__ == "__main__":
    args = parse_args(Args)
    run_from_args(GPPlanner(n_startup_trials=args.n_startup_trials), args)
