"""BOHB: Hyperband whose new configurations come from TPE (Falkner et al., 2018).

The brackets and promotions are Hyperband's (``agents/hyperband.py``). A new
configuration is drawn by Optuna's TPE (``agents/tpe.py``), asked define-by-run over
the schema's own space (``agents/optuna_planner.py``) and fitted on the results at the
highest fidelity that has at least ``min_points`` of them; before any fidelity has,
and with probability ``random_fraction`` always, it is drawn at random instead.
Failed runs count as the worst result at their fidelity.

    python -m agents.bohb --env researchgym/Synthetic-v0 --steps 60 --max-epochs 9
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna

from agents.hyperband import HyperbandPlanner
from agents.multi_fidelity import FIDELITY, FidelityArgs, check_epochs
from agents.optuna_planner import ask_settings
from agents.tpe import TPEPlanner
from researchgym.errors import shorten
from researchgym.planning import PlannerError, arg, parse_args, run_from_args
from researchgym.spaces import Schema


@dataclass
class Args(FidelityArgs):
    """BOHB (Hyperband with TPE proposals) over a forkable ResearchGym env's settings."""

    min_points: int | None = arg(
        None, "results at a fidelity before TPE models it (default: searched settings + 1)"
    )
    random_fraction: float = arg(1 / 3, "share of new configurations drawn at random")


class BOHBPlanner(HyperbandPlanner):
    """Hyperband with new configurations proposed by TPE fitted on the highest fidelity.

    Args:
        min_epochs: the lowest fidelity.
        max_epochs: the highest fidelity (default: the env's ``max_epochs``).
        eta: the ratio of fidelities between rungs; the best ``1/eta`` of a rung go on.
        min_points: results a fidelity needs before TPE is fitted on it (default: the
            number of searched settings plus one).
        random_fraction: share of new configurations drawn at random all the same.

    Raises:
        PlannerError: bad fidelities (see :class:`~agents.multi_fidelity.FidelityPlanner`),
            ``min_points`` below 1 or ``random_fraction`` outside [0, 1].
    """

    name = "bohb"

    def __init__(
        self,
        min_epochs: int = 1,
        max_epochs: int | None = None,
        eta: int = 3,
        min_points: int | None = None,
        random_fraction: float = 1 / 3,
    ):
        super().__init__(min_epochs, max_epochs, eta)
        if min_points is not None:
            check_epochs("min_points", min_points)
        if not 0.0 <= random_fraction <= 1.0:
            raise PlannerError(f"random_fraction={shorten(random_fraction)} must lie in [0, 1]")
        self.min_points = min_points
        self.random_fraction = random_fraction

    def reset(
        self, schema: Schema, *, seed: int | None = None, fixed: Mapping[str, Any] | None = None
    ) -> None:
        super().reset(schema, seed=seed, fixed=fixed)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._min_points = self.min_points or len(self.free_settings())
        # what Optuna asked for each configuration: its params and their distributions
        self._asked: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
        self._results: dict[int, dict[int, float | None]] = defaultdict(dict)  # by fidelity

    def sample(self, config: int) -> dict[str, Any]:
        modelled = [e for e, results in self._results.items() if len(results) >= self._min_points]
        seed = int(self.rng.integers(2**31 - 1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if not modelled or self.rng.random() < self.random_fraction:
                study = optuna.create_study(
                    direction="maximize", sampler=optuna.samplers.RandomSampler(seed)
                )
            else:
                study = optuna.create_study(
                    direction="maximize", sampler=TPEPlanner(n_startup_trials=0).make_sampler(seed)
                )
                study.add_trials(self._trials(max(modelled)))
            trial = study.ask()
            settings = ask_settings(trial, self.schema, {**self.fixed, FIDELITY: self.rungs[0]})
        self._asked[config] = (trial.params, trial.distributions)
        return settings

    def _trials(self, epochs: int) -> list[optuna.trial.FrozenTrial]:
        """The results at ``epochs`` as trials, failed ones at the worst value there."""
        results = self._results[epochs]
        worst = min((s for s in results.values() if s is not None), default=None)
        trials = []
        for config, score in results.items():
            value = worst if score is None else score
            if value is not None:
                params, distributions = self._asked[config]
                trials.append(
                    optuna.trial.create_trial(
                        params=params, distributions=distributions, value=value
                    )
                )
        return trials

    def learn(self, config: int, epochs: int, score: float | None) -> None:
        self._results[epochs][config] = score


if __name__ == "__main__":
    args = parse_args(Args)
    run_from_args(
        BOHBPlanner(
            args.min_epochs, args.max_epochs, args.eta, args.min_points, args.random_fraction
        ),
        args,
    )
