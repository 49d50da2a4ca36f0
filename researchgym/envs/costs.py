"""What a campaign's steps cost: the cost budget that truncates a campaign, the cost that
the ``*_minus_cost`` reward modes subtract, and the objectives a step reports.

A step's cost is counted in three units:

* ``seconds``: wall-clock time of its training job (a measurement: it varies from run to run);
* ``samples``: training examples processed;
* ``flops``: estimated training FLOPs, 3 x the design's forward FLOPs of one example
  (:func:`researchgym.engine.estimate`) x the samples processed, so a run that stops
  early or continues from a checkpoint is charged for the work it did only. FLOPs are
  counted only by an env that needs them (a FLOPs cost budget or ``cost_unit="flops"``):
  estimating builds the model, which would dominate fast executors. Such an env rejects
  a design whose FLOPs cannot be estimated before training (status ``"invalid_action"``),
  so no step goes uncounted; elsewhere a step's ``flops`` is ``None``.

A step that trains nothing (an invalid action) costs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Real
from typing import TYPE_CHECKING, Any

from researchgym.errors import ConfigError, did_you_mean, shorten

if TYPE_CHECKING:
    from researchgym.engine import Estimate, Result

__all__ = ["COST_UNITS", "CostBudget", "CostMeter", "objectives"]

COST_UNITS = ("seconds", "samples", "flops")
_EXAMPLE = "e.g. {'seconds': 60}, {'samples': 1e6} or {'flops': 1e12}"


@dataclass(frozen=True)
class CostBudget:
    """A campaign's cost budget: ``amount`` (finite, positive) of one of :data:`COST_UNITS`."""

    unit: str
    amount: float

    @classmethod
    def parse(cls, value: Any) -> CostBudget | None:
        """The budget a ``cost_budget=`` argument stands for (``None``: no budget).

        Raises:
            ConfigError: not a dict of one known unit and a finite, positive amount.
        """
        if value is None:
            return None
        if not isinstance(value, Mapping) or len(value) != 1:
            raise ConfigError(
                f"cost_budget={shorten(value)} must be a dict of one unit and its amount, "
                f"{_EXAMPLE}, or None (no cost budget)"
            )
        ((unit, amount),) = value.items()
        if unit not in COST_UNITS:
            raise ConfigError(
                f"cost_budget unit {shorten(unit)} is not one of {COST_UNITS}; "
                f"{did_you_mean(unit, COST_UNITS)}budget one of them, {_EXAMPLE}"
            )
        if (
            isinstance(amount, bool)
            or not isinstance(amount, Real)
            or not math.isfinite(amount)
            or amount <= 0
        ):
            raise ConfigError(
                f"cost_budget={{{unit!r}: {shorten(amount)}}} must give a finite, positive "
                f"number of {unit}, {_EXAMPLE}"
            )
        return cls(unit, float(amount))

    def to_dict(self) -> dict[str, float]:
        """The ``cost_budget=`` argument of this budget."""
        return {self.unit: self.amount}


class CostMeter:
    """Sums the cost of a campaign's steps, against its budget, and prices a step's cost.

    Args:
        budget: the campaign's cost budget, or ``None``.
        penalty_unit: the unit of the cost a reward subtracts, or ``None`` when the
            reward subtracts none.
        penalty_weight: the reward subtracts ``penalty_weight`` x the step's cost in
            ``penalty_unit``, divided by the budget's amount when there is a budget
            (same unit), so spending the whole budget costs ``penalty_weight``.
    """

    def __init__(
        self,
        budget: CostBudget | None = None,
        *,
        penalty_unit: str | None = None,
        penalty_weight: float = 0.0,
    ):
        self.budget = budget
        self.penalty_unit = penalty_unit
        self.penalty_weight = penalty_weight
        #: Whether steps are charged in FLOPs too (each design is estimated first).
        self.counts_flops = penalty_unit == "flops" or (
            budget is not None and budget.unit == "flops"
        )
        self._spent: dict[str, float] = {}
        self.start()

    @classmethod
    def for_env(
        cls,
        *,
        subtracts_cost: bool,
        cost_budget: Any,
        cost_weight: Any,
        cost_unit: Any,
    ) -> CostMeter:
        """The meter of a ``ResearchEnv``'s cost arguments, checked.

        Args:
            subtracts_cost: whether the env's reward mode subtracts cost.
            cost_budget: see :meth:`CostBudget.parse`.
            cost_weight: weight of the subtracted cost (finite, 0 or more).
            cost_unit: unit of the subtracted cost; ``None``: the budget's.

        Raises:
            ConfigError: a bad value, cost arguments for a reward that subtracts no
                cost, or a reward that does without a unit to count it in.
        """
        budget = CostBudget.parse(cost_budget)
        if cost_unit is not None and cost_unit not in COST_UNITS:
            raise ConfigError(
                f"cost_unit={shorten(cost_unit)} is not one of {COST_UNITS}; "
                f"{did_you_mean(cost_unit, COST_UNITS)}or leave it out to count the cost "
                "budget's unit"
            )
        if (
            isinstance(cost_weight, bool)
            or not isinstance(cost_weight, Real)
            or not math.isfinite(cost_weight)
            or cost_weight < 0
        ):
            raise ConfigError(
                f"cost_weight={shorten(cost_weight)} must be a finite number, 0 or more"
            )
        if not subtracts_cost:
            if cost_unit is not None or cost_weight != 1.0:
                raise ConfigError(
                    f"cost_unit={shorten(cost_unit)} and cost_weight={shorten(cost_weight)} "
                    "set the cost a '*_minus_cost' reward subtracts; this env's reward "
                    "subtracts none: choose such a reward or leave them out"
                )
            return cls(budget)
        if budget is not None and cost_unit not in (None, budget.unit):
            raise ConfigError(
                f"cost_unit={cost_unit!r} differs from the unit of cost_budget="
                f"{budget.to_dict()}; the subtracted cost is normalized by the budget, so "
                "leave cost_unit out (it follows the budget) or budget the same unit"
            )
        unit = cost_unit if budget is None else budget.unit
        if unit is None:
            raise ConfigError(
                "a '*_minus_cost' reward needs the unit its cost is counted in: pass "
                f"cost_budget ({_EXAMPLE}; the cost is then a fraction of it) or cost_unit, "
                f"one of {COST_UNITS}"
            )
        return cls(budget, penalty_unit=unit, penalty_weight=float(cost_weight))

    def start(self) -> None:
        """Start a new campaign: nothing spent."""
        self._spent = {"seconds": 0.0, "samples": 0.0, "flops": 0.0}

    def charge(self, result: Result, estimate: Estimate | None) -> dict[str, Any]:
        """Add a step's cost to the campaign's and return it (``{unit: amount}``).

        Args:
            result: what the step's job did.
            estimate: the design's estimate (``None`` when the step trained nothing,
                or when this meter does not count FLOPs).
        """
        seconds, samples = float(result.seconds), int(result.samples)
        flops = None
        if self.counts_flops:
            flops = 0.0 if estimate is None else 3.0 * estimate.flops * samples
            self._spent["flops"] += flops
        self._spent["seconds"] += seconds
        self._spent["samples"] += samples
        return {"samples": samples, "seconds": seconds, "flops": flops}

    def penalty(self, cost: Mapping[str, Any]) -> float:
        """What a reward subtracts for a step's cost (0 when it subtracts none)."""
        if self.penalty_unit is None:
            return 0.0
        scale = self.budget.amount if self.budget is not None else 1.0
        return self.penalty_weight * float(cost[self.penalty_unit]) / scale

    @property
    def spent(self) -> dict[str, Any]:
        """The campaign's cost so far; ``flops`` is ``None`` when not counted."""
        return {
            "samples": int(self._spent["samples"]),
            "seconds": self._spent["seconds"],
            "flops": self._spent["flops"] if self.counts_flops else None,
        }

    @property
    def left(self) -> dict[str, float] | None:
        """What is left of the cost budget (``{unit: amount}``, 0 or more); ``None`` without one."""
        if self.budget is None:
            return None
        return {self.budget.unit: max(0.0, self.budget.amount - self._spent[self.budget.unit])}

    @property
    def exhausted(self) -> bool:
        """Whether the campaign has spent its cost budget."""
        return self.budget is not None and self._spent[self.budget.unit] >= self.budget.amount


def objectives(result: Result) -> dict[str, Any]:
    """A step's objectives: ``score`` (to maximize), ``seconds`` and ``n_params`` (to minimize).

    A failed step is no point to compare: all three are ``None`` (its cost is in
    ``info["cost"]``); so is ``n_params`` when the executor does not report it.
    """
    if not result.ok:
        return {"score": None, "seconds": None, "n_params": None}
    return {
        "score": result.score,
        "seconds": float(result.seconds),
        "n_params": int(result.n_params) or None,
    }
