"""Optuna TPE driven through the env with ask/tell, over the schema's own space.

One Optuna trial per step, asked define-by-run over the active settings with
their own distributions (log scales, integers, choices, conditions), failed
steps told as the worst value seen (see :mod:`agents.optuna_planner`). With
``multivariate`` (the default), TPE models the settings jointly, grouped by
which of them are active, so conditional settings are modelled too. Trials
proposed together (``propose_batch``) are kept apart by the constant liar: each
one counts those still running as bad results. A new study starts with every
campaign.

    python -m agents.tpe --env researchgym/Tabular-v0 --steps 20 --set train.epochs=5
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna

from agents.optuna_planner import OptunaPlanner
from researchgym.planning import CampaignArgs, arg, parse_args, run_from_args


@dataclass
class Args(CampaignArgs):
    """Optuna TPE over a ResearchGym env's settings."""

    n_startup_trials: int = arg(5, "random trials before TPE starts modelling")
    multivariate: bool = arg(
        True,
        "model settings jointly (grouped by which settings are active) instead of one by one",
    )


class TPEPlanner(OptunaPlanner):
    """Optuna's TPE sampler, one trial per step, asked define-by-run.

    Args:
        n_startup_trials: random trials before TPE models the results.
        multivariate: joint TPE, grouped by the sets of active settings (handles conditions).
    """

    name = "tpe"

    def __init__(self, n_startup_trials: int = 5, multivariate: bool = True):
        self.n_startup_trials = n_startup_trials
        self.multivariate = multivariate

    def make_sampler(self, seed: int | None) -> optuna.samplers.BaseSampler:
        return optuna.samplers.TPESampler(
            n_startup_trials=self.n_startup_trials,
            multivariate=self.multivariate,
            group=self.multivariate,
            seed=seed,
            constant_liar=True,  # a batch's running trials count as bad; one at a time: no change
        )


if __name__ == "__main__":
    args = parse_args(Args)
    run_from_args(
        TPEPlanner(n_startup_trials=args.n_startup_trials, multivariate=args.multivariate), args
    )
