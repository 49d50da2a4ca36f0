"""The planner to copy: a small, complete planner that shows the whole contract.

This one is a (1+1) local search. It starts from the defaults and each step
perturbs the best metaprogram so far in the schema's flat ``[-1, 1]`` encoding
(one dimension per setting, in the setting's own scale), keeping the new point
when it scored higher. To write your own planner:

1. Copy this file to ``agents/my_planner.py``; rename the class, its ``name``
   and its ``Args``; replace ``reset``, ``propose`` and ``observe``.
2. Register it with one line in ``researchgym/planning/registry.py`` (or call
   the same from your own package)::

       register_planner("my-planner", "agents.my_planner:MyPlanner", description="...")

3. Run it, and put it on the board::

       python -m agents.my_planner --env researchgym/Tabular-v0 --steps 10
       researchgym rollout --agent my-planner --env researchgym/Tabular-v0 --steps 10
       researchgym leaderboard --suite fast --agents my-planner

The rules: ``propose`` returns settings by name (omitted ones take their
defaults; pinned ones are overwritten), never touches files or the network, and
is deterministic for a seed; a failed step (``info["status"] != "ok"``) must not
crash ``observe``. See "Submitting a planner" in the README.

    python -m agents.template --env researchgym/Tabular-v0 --steps 10 --set train.epochs=5
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from researchgym.errors import shorten
from researchgym.planning import (
    CampaignArgs,
    PlannerError,
    SearchPlanner,
    arg,
    parse_args,
    run_from_args,
)
from researchgym.spaces import Schema


# The command line of `python -m agents.template`: the campaign's arguments
# (--env, --steps, --seed, --set, ...) plus one flag per field here.
@dataclass
class Args(CampaignArgs):
    """A (1+1) local search from the defaults over a ResearchGym env's settings."""

    step_size: float = arg(0.3, "standard deviation of each step in the flat [-1, 1] encoding")


# SearchPlanner keeps the schema, the validated pins (self.fixed) and a seeded
# numpy Generator (self.rng) at reset; implementing the Planner protocol
# (name, interface, reset, propose, observe) without it works as well.
class TemplatePlanner(SearchPlanner):
    """(1+1) local search from the defaults in the schema's flat encoding.

    Args:
        step_size: standard deviation of the Gaussian step, per flat dimension.

    Raises:
        PlannerError: a step size that is not a positive number.
    """

    name = "template"  # recorded as `agent` with every step: the name it is registered under
    interface = (
        None  # black-box search: observations are ignored ("dict"/"flat"/"text" to read them)
    )

    def __init__(self, step_size: float = 0.3):
        if not (isinstance(step_size, int | float) and step_size > 0):
            raise PlannerError(f"step_size={shorten(step_size)} must be a positive number")
        self.step_size = step_size

    def reset(
        self, schema: Schema, *, seed: int | None = None, fixed: Mapping[str, Any] | None = None
    ) -> None:
        """A campaign starts: forget the last one."""
        super().reset(schema, seed=seed, fixed=fixed)
        self.best = schema.encode(self.fixed)  # the defaults, with the pins
        self.best_value = -math.inf
        self.candidate: np.ndarray | None = None

    def propose(self, observation: Any) -> dict[str, Any]:
        """The defaults first, then a Gaussian step from the best point so far."""
        if self.candidate is None:
            self.candidate = self.best
            return dict(self.fixed)  # settings left out take their defaults
        step = self.rng.normal(0.0, self.step_size, size=self.best.shape)
        self.candidate = np.clip(self.best + step, -1.0, 1.0)
        return self.schema.decode(self.candidate) | self.fixed

    def observe(
        self, metaprogram: dict[str, Any] | None, reward: float, info: Mapping[str, Any]
    ) -> None:
        """Keep the last proposal when it trained and scored higher than the best so far."""
        if info["status"] == "ok" and reward > self.best_value:
            self.best, self.best_value = self.candidate, reward


if __name__ == "__main__":
    args = parse_args(Args)
    run_from_args(TemplatePlanner(step_size=args.step_size), args)
