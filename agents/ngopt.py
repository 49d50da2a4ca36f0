"""Nevergrad's NGOpt: a portfolio that picks its optimizer for the space and the budget.

NGOpt looks at the parametrization (how many settings, which are continuous,
integer or discrete) and the number of experiments it may run, and hands the
search to the optimizer that nevergrad's own benchmarks found best for that
case (CMA-ES, differential evolution, (1+1) strategies, Cobyla, ...; for the
Tabular and Synthetic spaces, which mix choices with numbers, a discrete (1+1)
evolution strategy, ``DiscreteBSOOnePlusOne``, at budgets 10 to 64). Each
setting maps to one nevergrad parameter: ``Float`` to ``Scalar`` (``Log`` where
declared), ``Int`` to the same with integer casting, ``Categorical`` and
``Bool`` to ``Choice``. Nevergrad has no conditional parameters, so every free
setting is always proposed (a flat space) and the schema drops the inactive
ones: ``optim.momentum`` is searched all along but only trained while
``optim.name`` is ``"sgd"``. Pinned settings are not searched. The budget NGOpt
plans for is the campaign's (from the env) unless given; a failed step is told
as the worst value seen so far (:class:`~researchgym.planning.FailedAsWorst`).
Needs ``pip install 'researchgym[nevergrad]'``.

    python -m agents.ngopt --env researchgym/Tabular-v0 --steps 20 --set train.epochs=5
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from researchgym.errors import DependencyNotInstalled
from researchgym.planning import (
    CampaignArgs,
    CampaignContext,
    FailedAsWorst,
    PlannerError,
    SearchPlanner,
    parse_args,
    run_from_args,
)
from researchgym.spaces import Categorical, Float, Int, Schema, Setting

if TYPE_CHECKING:
    import nevergrad as ng


@dataclass
class Args(CampaignArgs):
    """Nevergrad NGOpt over a ResearchGym env's settings (planning for --steps experiments)."""


def _import_nevergrad() -> Any:
    try:
        import nevergrad
    except ImportError as exc:
        raise DependencyNotInstalled(
            "the ngopt planner needs the nevergrad package: pip install 'researchgym[nevergrad]'"
        ) from exc
    return nevergrad


def parameter(setting: Setting) -> ng.p.Parameter:
    """The nevergrad parameter of a setting: ``Scalar``/``Log`` (integer-cast for ``Int``) or
    ``Choice``."""
    ng = _import_nevergrad()
    if isinstance(setting, Categorical):  # Bool included
        return ng.p.Choice(setting.choices)
    if isinstance(setting, Float | Int):
        kind = ng.p.Log if setting.log else ng.p.Scalar
        param = kind(lower=setting.low, upper=setting.high)
        return param.set_integer_casting() if isinstance(setting, Int) else param
    raise TypeError(f"{setting.name}: no nevergrad parameter for settings of kind {setting.kind!r}")


class NGOptPlanner(SearchPlanner):
    """Nevergrad's NGOpt by ask/tell over the flat space of the free settings.

    Args:
        budget: experiments NGOpt plans for; ``None`` takes the campaign's budget
            when run on an env (give it under :func:`~researchgym.planning.optimize`).

    Raises:
        DependencyNotInstalled: nevergrad is not installed.
        PlannerError: (at reset) no budget given and no campaign to take one from.
    """

    name = "ngopt"

    def __init__(self, budget: int | None = None):
        _import_nevergrad()
        self.budget = budget
        self._campaign_budget: int | None = None

    def bind(self, context: CampaignContext) -> None:
        self._campaign_budget = context.budget

    def reset(
        self, schema: Schema, *, seed: int | None = None, fixed: Mapping[str, Any] | None = None
    ) -> None:
        super().reset(schema, seed=seed, fixed=fixed)
        budget = self.budget or self._campaign_budget
        if budget is None:
            raise PlannerError(
                "ngopt picks its optimizer for a budget: give one with make_planner('ngopt', "
                "budget=N), or run it on an env, whose campaign budget it takes"
            )
        ng = _import_nevergrad()
        space = ng.p.Dict(**{name: parameter(schema[name]) for name in self.free_settings()})
        space.random_state = np.random.RandomState(seed)
        self.search = ng.optimizers.NGOpt(parametrization=space, budget=budget)
        self._candidate: ng.p.Parameter | None = None
        self._value = FailedAsWorst()

    def propose(self, observation: Any) -> dict[str, Any]:
        self._candidate = self.search.ask()
        return self.schema.validate(self._candidate.value | self.fixed)

    def observe(
        self, metaprogram: dict[str, Any] | None, reward: float, info: Mapping[str, Any]
    ) -> None:
        value = self._value(reward, info)
        if self._candidate is not None and value is not None:
            self.search.tell(self._candidate, -value)  # nevergrad minimizes
        self._candidate = None


if __name__ == "__main__":
    args = parse_args(Args)
    run_from_args(NGOptPlanner(), args)
