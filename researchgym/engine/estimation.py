"""Size and compute of a metaprogram, known before it trains, and budgets that reject designs.

:func:`estimate` reports parameters and FLOPs without training: unit-tree models
are costed analytically, unit by unit (``researchgym.engine.unit_tree``);
other models are built on PyTorch's ``meta`` device (no memory, no random
numbers drawn) and run once under ``torch.utils.flop_counter``.

FLOPs count matrix products (2 per multiply-add). Training compute is taken as
3x the forward FLOPs (forward plus backward) for every example the run
processes (``train.epochs`` passes over the training split). Small models on a
CPU are bound by per-step overhead more than by FLOPs, so the number of
optimizer steps is reported (and can be budgeted) too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from researchgym.engine.data import load_task_data
from researchgym.engine.models import build_model, count_parameters
from researchgym.engine.settings import is_unit_tree
from researchgym.engine.tasks import TaskRef
from researchgym.engine.unit_tree import estimate_unit_tree
from researchgym.spaces import SettingError

__all__ = ["BudgetError", "Estimate", "check_budget", "estimate"]


class BudgetError(SettingError):
    """A design over the env's parameter or compute budget (status ``invalid_action``)."""


@dataclass(frozen=True)
class Estimate:
    """What a metaprogram will cost, before it trains.

    Attributes:
        params: trainable parameters.
        flops: forward FLOPs of one example (matrix products).
        train_flops: about ``3 * flops * train_examples``.
        train_examples: examples the run processes (epochs x training split).
        train_steps: optimizer steps of the run (without early stopping).
        units: for unit trees, ``path -> (unit, params, flops)`` of every part.
    """

    params: int
    flops: int
    train_flops: int
    train_examples: int
    train_steps: int
    units: dict[str, tuple[str, int, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``units`` as ``path -> {"unit", "params", "flops"}``)."""
        return {
            "params": self.params,
            "flops": self.flops,
            "train_flops": self.train_flops,
            "train_examples": self.train_examples,
            "train_steps": self.train_steps,
            "units": {
                path: {"unit": unit, "params": params, "flops": flops}
                for path, (unit, params, flops) in self.units.items()
            },
        }

    def largest_units(self, k: int = 3) -> list[tuple[str, str, int]]:
        """The ``k`` parts with the most parameters: ``(path, unit, params)``."""
        ranked = sorted(self.units.items(), key=lambda item: -item[1][1])
        return [(path, unit, params) for path, (unit, params, _) in ranked[:k]]


def _generic_cost(
    metaprogram: Mapping[str, Any], input_shape: tuple[int, ...], n_outputs: int
) -> tuple[int, int]:
    with torch.device("meta"):
        model = build_model(metaprogram, input_shape, n_outputs)
        example = torch.zeros((1, *input_shape))
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(example)
    return count_parameters(model), int(counter.get_total_flops())


def estimate(metaprogram: Mapping[str, Any], *, task: TaskRef | str) -> Estimate:
    """Parameters and FLOPs of training a (validated) metaprogram on a task.

    Args:
        metaprogram: validated settings with defaults filled.
        task: a task reference or name (see ``researchgym.engine.TaskRef``).
    """
    data = load_task_data(task)
    n, epochs = len(data.x_train), int(metaprogram.get("train.epochs", 1))
    batch = int(metaprogram.get("train.batch_size", n))
    steps = epochs * max(1, n // batch + (n % batch > 1))  # as the training loop batches
    if is_unit_tree(metaprogram):
        tree = estimate_unit_tree(metaprogram, data.n_outputs, data.input_shape[0], data.n_outputs)
        params, flops, units = tree.params, tree.flops, tree.units
    else:
        (params, flops), units = _generic_cost(metaprogram, data.input_shape, data.n_outputs), {}
    return Estimate(params, flops, 3 * flops * epochs * n, epochs * n, steps, units)


def check_budget(
    cost: Estimate,
    *,
    max_params: float | None = None,
    max_train_flops: float | None = None,
    max_train_steps: float | None = None,
) -> None:
    """Raise :class:`BudgetError`, naming the rule and the largest units, when over a limit."""

    def largest() -> str:
        parts = cost.largest_units()
        if not parts:
            return ""
        listed = ", ".join(f"{path} ({unit}, {params:,})" for path, unit, params in parts)
        return f"; largest units by parameters: {listed}"

    if max_params is not None and cost.params > max_params:
        raise BudgetError(
            f"the design has {cost.params:,} parameters, over the budget max_params={max_params:,} "
            f"(rule: parameter budget, checked before training){largest()}; use a smaller width, "
            "fewer layers or smaller units"
        )
    if max_train_flops is not None and cost.train_flops > max_train_flops:
        raise BudgetError(
            f"training would take about {cost.train_flops:.3g} FLOPs ({cost.flops:,} per example "
            f"x 3 x {cost.train_examples:,} examples), over the budget "
            f"max_train_flops={max_train_flops:.3g} "
            f"(rule: compute budget, checked before training){largest()}; use fewer epochs or a "
            "smaller model"
        )
    if max_train_steps is not None and cost.train_steps > max_train_steps:
        raise BudgetError(
            f"training would take {cost.train_steps:,} optimizer steps, over the budget "
            f"max_train_steps={max_train_steps:,} (rule: step budget, checked before training); "
            "use fewer epochs or a larger batch size"
        )
