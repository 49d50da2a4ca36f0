"""Re-run a stored step from its recorded metaprogram and seed and compare the metrics."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from researchgym.engine import TaskRef
from researchgym.envs.research_env import unwrap_research_env
from researchgym.errors import ConfigError
from researchgym.store.schema import provenance

__all__ = ["CROSS_HOST_ABS", "CROSS_HOST_REL", "RerunReport", "rerun"]

#: Tolerances on metrics recorded on another host. BLAS kernels and thread counts
#: differ across machines, so the same run's floating-point results differ there in
#: their last digits; on the recording host a CPU rerun is bitwise equal.
CROSS_HOST_REL = 1e-4
CROSS_HOST_ABS = 1e-6


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
    same_host: bool

    @property
    def max_abs_diff(self) -> float:
        """Largest absolute difference over the metrics both sides have."""
        common = self.recorded.keys() & self.measured.keys()
        if not common:
            return 0.0 if self.recorded == self.measured else math.inf
        return max(abs(self.recorded[k] - self.measured[k]) for k in common)

    @property
    def matches(self) -> bool:
        """Same status and the same metrics: bitwise equal when the run was recorded on
        this host, else within :data:`CROSS_HOST_REL` and :data:`CROSS_HOST_ABS`."""
        if self.status != self.recorded_status:
            return False
        if self.same_host or self.recorded.keys() != self.measured.keys():
            return self.recorded == self.measured
        return all(
            math.isclose(value, self.measured[name], rel_tol=CROSS_HOST_REL, abs_tol=CROSS_HOST_ABS)
            for name, value in self.recorded.items()
        )


def rerun(store: Any, run_id: str, device: str = "cpu", runtime: Any = None) -> RerunReport:
    """Train a stored run again with its env's executor and compare metrics.

    The env is made with the row's recorded arguments (``env_kwargs``; for
    Replay-v0 and Surrogate-v0, at least its ``source_env_id``).

    Args:
        store: a :class:`researchgym.store.Store`.
        run_id: the ``run_id`` of the step to reproduce, or a prefix of it that no
            other run id starts with.
        device: training device; CPU runs are bitwise repeatable.
        runtime: precision, compilation and determinism of the training (see
            ``researchgym.engine.Runtime``; default: float32, eager, torch's defaults).

    Raises:
        NotFound: no run id starts with ``run_id``.
        ConfigError: several do, or the run was an invalid action.
    """
    run_id = store.resolve_run_id(run_id)
    row = store.run(run_id)
    if row["status"] == "invalid_action" or row["metaprogram"] in (None, "null"):
        raise ConfigError(
            f"run {run_id} was an invalid action, never trained: there is nothing to re-run"
        )
    kwargs = json.loads(row.get("env_kwargs") or "{}")
    if row.get("source_env_id") not in (None, row["env_id"]):  # Replay-v0, Surrogate-v0
        kwargs.setdefault("source", row["source_env_id"])
    kwargs.update(store=False, device=device, runtime=runtime, disable_env_checker=True)
    with gym.make(row["env_id"], **kwargs) as env:
        result = unwrap_research_env(env).executor.run(
            json.loads(row["metaprogram"]), task=TaskRef(row["task"]), seed=int(row["seed"])
        )
    return RerunReport(
        run_id=run_id,
        env_id=row["env_id"],
        task=row["task"],
        seed=int(row["seed"]),
        status=result.status,
        recorded_status=row["status"],
        recorded=json.loads(row["val_metrics"] or "{}"),
        measured=result.val_metrics,
        same_host=row.get("host") in (None, provenance()["host"]),
    )
