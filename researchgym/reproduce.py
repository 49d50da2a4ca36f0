"""Re-run a stored step from its recorded metaprogram and seed and compare the metrics."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from researchgym.engine import TaskRef
from researchgym.envs.research_env import unwrap_research_env
from researchgym.errors import ConfigError, NotFound, shorten

__all__ = ["RerunReport", "rerun"]


@dataclass
class RerunReport:
    """Recorded versus re-measured validation metrics of one run."""

    run_id: str
    env_id: str
    task: str
    seed: int
    status: str
    recorded_status: str
    recorded: dict[str, float]
    measured: dict[str, float]

    @property
    def max_abs_diff(self) -> float:
        """Largest absolute difference over the metrics both sides have."""
        common = self.recorded.keys() & self.measured.keys()
        if not common:
            return 0.0 if self.recorded == self.measured else math.inf
        return max(abs(self.recorded[k] - self.measured[k]) for k in common)

    @property
    def matches(self) -> bool:
        """Same status and bitwise-equal metrics."""
        return self.status == self.recorded_status and self.recorded == self.measured


def rerun(store: Any, run_id: str, device: str = "cpu") -> RerunReport:
    """Train a stored run again with its env's executor and compare metrics.

    Args:
        store: a :class:`researchgym.store.Store`.
        run_id: the ``run_id`` of the step to reproduce.
        device: training device; CPU runs are bitwise repeatable.

    Raises:
        NotFound: no step with this run id.
    """
    row = store.run(run_id)
    if row is None:
        raise NotFound(
            f"no stored step has run_id {shorten(run_id)}; list some with: "
            'researchgym query "SELECT run_id FROM steps LIMIT 5"'
        )
    if row["status"] == "invalid_action" or row["metaprogram"] in (None, "null"):
        raise ConfigError(
            f"run {run_id} was an invalid action, never trained: there is nothing to re-run"
        )
    env = unwrap_research_env(
        gym.make(row["env_id"], store=False, device=device, disable_env_checker=True)
    )
    try:
        result = env.executor.run(
            json.loads(row["metaprogram"]), task=TaskRef(row["task"]), seed=int(row["seed"])
        )
    finally:
        env.close()
    return RerunReport(
        run_id=run_id,
        env_id=row["env_id"],
        task=row["task"],
        seed=int(row["seed"]),
        status=result.status,
        recorded_status=row["status"],
        recorded=json.loads(row["val_metrics"] or "{}"),
        measured=result.val_metrics,
    )
