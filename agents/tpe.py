"""Optuna TPE driven through the env with ask/tell, over the schema's own space.

Each proposal is one Optuna trial asked define-by-run: the settings are walked
in declaration order and only *active* ones are suggested (``optim.momentum``
only once ``optim.name`` came out ``"sgd"``), each with the distribution its
declaration implies — ``FloatDistribution(log=...)``, ``IntDistribution(log=...)``
or ``CategoricalDistribution`` — so TPE sees log scales, integers, choices and
conditions rather than a flat box. Pinned settings are not searched. The step's
reward is told back (maximized); a failed step (diverged, error, timeout, ...)
is told as the worst value seen so far, so TPE learns to stay away from it.
A new study starts with every campaign.

    python -m agents.tpe --env researchgym/Tabular-v0 --steps 20 --set train.epochs=5
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna

from researchgym.planning import CampaignArgs, SearchPlanner, arg, parse_args, run_from_args
from researchgym.spaces import Categorical, Float, Int, Schema, Setting


@dataclass
class Args(CampaignArgs):
    """Optuna TPE over a ResearchGym env's settings."""

    n_startup_trials: int = arg(5, "random trials before TPE starts modelling")
    multivariate: bool = arg(
        True,
        "model settings jointly (grouped by which settings are active) instead of one by one",
    )


def suggest(trial: optuna.Trial, setting: Setting) -> Any:
    """Ask the trial for a setting's value with the distribution its declaration implies.

    ``Float`` -> ``FloatDistribution(low, high, log)``, ``Int`` ->
    ``IntDistribution(low, high, log)``, ``Categorical``/``Bool`` ->
    ``CategoricalDistribution(choices)``.
    """
    if isinstance(setting, Categorical):  # Bool included
        return trial.suggest_categorical(setting.name, setting.choices)
    if isinstance(setting, Int):
        return trial.suggest_int(setting.name, setting.low, setting.high, log=setting.log)
    if isinstance(setting, Float):
        return trial.suggest_float(setting.name, setting.low, setting.high, log=setting.log)
    raise TypeError(f"{setting.name}: no Optuna distribution for settings of kind {setting.kind!r}")


class TPEPlanner(SearchPlanner):
    """Optuna's TPE sampler, one trial per step, asked define-by-run.

    Args:
        n_startup_trials: random trials before TPE models the results.
        multivariate: joint TPE, grouped by the sets of active settings (handles conditions).
    """

    name = "tpe"

    def __init__(self, n_startup_trials: int = 5, multivariate: bool = True):
        self.n_startup_trials = n_startup_trials
        self.multivariate = multivariate

    def reset(
        self, schema: Schema, *, seed: int | None = None, fixed: Mapping[str, Any] | None = None
    ) -> None:
        super().reset(schema, seed=seed, fixed=fixed)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(
                n_startup_trials=self.n_startup_trials,
                multivariate=self.multivariate,
                group=self.multivariate,
                seed=seed,
            )
        self.study = optuna.create_study(direction="maximize", sampler=sampler)
        self._trial: optuna.Trial | None = None
        self._worst = math.inf

    def propose(self, observation: Any) -> dict[str, Any]:
        if self._trial is not None:  # the last proposal was never scored
            self.study.tell(self._trial, state=optuna.trial.TrialState.FAIL)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            trial = self.study.ask()
            values: dict[str, Any] = {}
            for setting in self.schema:
                active = all(values.get(p) in allowed for p, allowed in setting.when.items())
                if setting.name in self.fixed:
                    values[setting.name] = self.fixed[setting.name]
                elif active:
                    values[setting.name] = suggest(trial, setting)
        self._trial = trial
        return self.schema.validate(values)

    def observe(
        self, metaprogram: dict[str, Any] | None, reward: float, info: Mapping[str, Any]
    ) -> None:
        if self._trial is None:
            return
        if info.get("status", "ok") == "ok" and math.isfinite(reward):
            self._worst = min(self._worst, reward)
            self.study.tell(self._trial, reward)
        elif math.isfinite(self._worst):
            self._worst = min(self._worst, reward) if math.isfinite(reward) else self._worst
            self.study.tell(self._trial, self._worst)
        else:  # nothing to compare with yet
            self.study.tell(self._trial, state=optuna.trial.TrialState.FAIL)
        self._trial = None

    @property
    def best(self) -> tuple[dict[str, Any], float] | None:
        """Best (settings, value) told so far in this campaign, or ``None``."""
        done = [t for t in self.study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not done:
            return None
        best = max(done, key=lambda t: t.value)
        return self.schema.validate(best.params | self.fixed), best.value


if __name__ == "__main__":
    args = parse_args(Args)
    run_from_args(
        TPEPlanner(n_startup_trials=args.n_startup_trials, multivariate=args.multivariate), args
    )
