"""Optuna samplers as planners: one trial per step, by ask/tell over the schema's own space.

Each proposal is one Optuna trial asked define-by-run: the settings are walked
in declaration order and only *active* ones are suggested (``optim.momentum``
only once ``optim.name`` came out ``"sgd"``), each with the distribution its
declaration implies — ``FloatDistribution(log=...)``, ``IntDistribution(log=...)``
or ``CategoricalDistribution`` — so the sampler sees log scales, integers,
choices and conditions rather than a flat box. Pinned settings are not searched.
The step's reward is told back (maximized); a failed step (diverged, error,
timeout, ...) is told as the worst value seen so far, so the sampler learns to
stay away from it. ``propose_batch`` asks several trials before any is told, for
campaigns that train them as one batch. A new study starts with every campaign.

The planners ``tpe`` (``agents/tpe.py``), ``gp`` (``agents/gp.py``) and ``cmaes``
(``agents/cmaes.py``) are :class:`OptunaPlanner` with their own sampler.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Mapping
from typing import Any

import optuna

from researchgym.planning import FailedAsWorst, SearchPlanner
from researchgym.spaces import Categorical, Float, Int, Schema, Setting


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


def ask_settings(trial: optuna.Trial, schema: Schema, fixed: Mapping[str, Any]) -> dict[str, Any]:
    """A metaprogram asked of ``trial`` define-by-run: each active setting in declaration
    order (``optim.momentum`` only once ``optim.name`` came out ``"sgd"``), pins as given."""
    values: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for setting in schema:
            active = all(values.get(p) in allowed for p, allowed in setting.when.items())
            if setting.name in fixed:
                values[setting.name] = fixed[setting.name]
            elif active:
                values[setting.name] = suggest(trial, setting)
    return schema.validate(values)


class OptunaPlanner(SearchPlanner):
    """An Optuna sampler driven by ask/tell, one trial per step.

    Subclasses set ``name`` and build their sampler in :meth:`make_sampler`.
    """

    def make_sampler(self, seed: int | None) -> optuna.samplers.BaseSampler:
        """The sampler of a new campaign, seeded with the campaign's seed."""
        raise NotImplementedError

    def reset(
        self, schema: Schema, *, seed: int | None = None, fixed: Mapping[str, Any] | None = None
    ) -> None:
        super().reset(schema, seed=seed, fixed=fixed)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = self.make_sampler(seed)
        self.study = optuna.create_study(direction="maximize", sampler=sampler)
        self._trials: deque[optuna.Trial] = deque()  # asked and not yet told, oldest first
        self._value = FailedAsWorst()

    def propose(self, observation: Any) -> dict[str, Any]:
        return self.propose_batch(observation, 1)[0]

    def propose_batch(self, observation: Any, n: int) -> list[dict[str, Any]]:
        """``n`` trials asked before any is told, each while the ones before it run (TPE
        counts running trials as bad ones, so a batch spreads out; GP, on Optuna 5, models
        them; CMA-ES draws them from one generation); observed in the order asked."""
        while self._trials:  # earlier proposals that were never scored
            self.study.tell(self._trials.popleft(), state=optuna.trial.TrialState.FAIL)
        proposals = []
        for _ in range(n):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                trial = self.study.ask()
            self._trials.append(trial)
            proposals.append(ask_settings(trial, self.schema, self.fixed))
        return proposals

    def observe(
        self, metaprogram: dict[str, Any] | None, reward: float, info: Mapping[str, Any]
    ) -> None:
        if not self._trials:
            return
        trial = self._trials.popleft()
        value = self._value(reward, info)
        if value is None:  # a failure before anything succeeded: nothing to compare it with
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, value)

    @property
    def best(self) -> tuple[dict[str, Any], float] | None:
        """Best (settings, value) told so far in this campaign, or ``None``."""
        done = [
            (t.value, t.params)
            for t in self.study.trials
            if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None
        ]
        if not done:
            return None
        value, params = max(done, key=lambda pair: pair[0])
        return self.schema.validate(params | self.fixed), value
