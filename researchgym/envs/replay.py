"""Replay-v0: answer actions from recorded runs instead of training.

The env has the source env's spaces, observation, reward and info; only the
executor differs. An action is looked up by its metaprogram, quantized in the
flat encoding, on the episode's task:

* an exact match returns a recorded run (one of its seeds, chosen by the step's
  seed) with its metrics, curve, status and recorded seconds as cost;
* a missing point returns, with ``missing="nearest"`` (the default), the
  recorded run nearest in the flat encoding (Euclidean), and with
  ``missing="error"`` a step with status ``"error"`` saying that nothing was recorded.
"""

from __future__ import annotations

import importlib.resources
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from researchgym.engine import Executor, Result, TaskRef
from researchgym.engine.file_datasets import DataFilesNotFound
from researchgym.errors import ConfigError, shorten
from researchgym.spaces import Schema

__all__ = [
    "REFERENCE_STORE",
    "REFERENCE_SURROGATES",
    "ReplayExecutor",
    "load_runs",
    "make_replay_env",
    "pinned_settings",
]

#: Reference runs shipped as package data (see researchgym/reference/README.md).
REFERENCE_STORE = Path(str(importlib.resources.files("researchgym") / "reference"))
#: Surrogates fitted on the reference runs, one ``<EnvName>.npz`` + ``.json`` per env.
REFERENCE_SURROGATES = REFERENCE_STORE / "surrogates"

QUANTUM = 1e-4  # flat-encoding resolution of an exact match


def load_runs(data: str | Path | None, env_id: str) -> list[dict[str, Any]]:
    """Recorded steps of ``env_id`` from a store (default: the shipped reference runs)."""
    from researchgym.store import Store, StoreError

    path = Path(data) if data is not None else REFERENCE_STORE
    if not path.exists():
        raise DataFilesNotFound(
            f"no store at {path}; generate runs with `researchgym generate --env {env_id} "
            f"--store {path}` or pass data= pointing at a store"
        )
    with Store(path) as store:
        rows = store.runs(
            env_id,
            trained=True,
            columns=(
                "task", "seed", "metaprogram", "status", "error", "val_metrics", "test_metrics",
                "curve", "cost_seconds", "cost_samples",
            ),
            order_by=("task", "run_id"),
        ).to_pylist()  # fmt: skip
    if not rows:
        raise StoreError(f"the store at {path} has no recorded runs of {env_id}")
    return rows


def pinned_settings(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Settings with one value in every recorded run (e.g. ``train.epochs`` pinned by the sweep)."""
    values: dict[str, set[str]] = {}
    metaprograms = [json.loads(row["metaprogram"]) for row in runs]
    for metaprogram in metaprograms:
        for name, value in metaprogram.items():
            values.setdefault(name, set()).add(json.dumps(value))
    return {
        name: json.loads(next(iter(seen)))
        for name, seen in values.items()
        if len(seen) == 1 and len(runs) > 1 and all(name in m for m in metaprograms)
    }


def _key(vector: np.ndarray) -> bytes:
    return np.rint(vector / QUANTUM).astype(np.int64).tobytes()


class ReplayExecutor(Executor):
    """Looks results up in recorded runs (see the module docstring for the policy).

    Args:
        runs: rows from :func:`load_runs`.
        schema: the source env's schema (for the flat encoding).
        missing: ``"nearest"`` or ``"error"``.
    """

    def __init__(self, runs: list[dict[str, Any]], schema: Schema, missing: str = "nearest"):
        if missing not in ("nearest", "error"):
            raise ConfigError(f"missing={shorten(missing)} is not 'nearest' or 'error'")
        self.schema = schema
        self.missing = missing
        self._exact: dict[tuple[str, bytes], list[Result]] = {}
        by_task: dict[str, tuple[list[np.ndarray], list[list[Result]]]] = {}
        for row in runs:
            result = Result(
                status=row["status"],
                val_metrics=json.loads(row["val_metrics"] or "{}"),
                test_metrics=json.loads(row["test_metrics"] or "{}"),
                curve=json.loads(row["curve"] or "[]"),
                seconds=float(row["cost_seconds"] or 0.0),
                samples=int(row["cost_samples"] or 0),
                error=row["error"],
            )
            vector = schema.encode(json.loads(row["metaprogram"]))
            key = (row["task"], _key(vector))
            if key not in self._exact:
                self._exact[key] = []
                vectors, groups = by_task.setdefault(row["task"], ([], []))
                vectors.append(vector)
                groups.append(self._exact[key])
            self._exact[key].append(result)
        self._points = {task: (np.stack(v), g) for task, (v, g) in by_task.items()}
        # The nearest point p to v minimizes |p|^2 / 2 - p.v (|p - v|^2 / 2 less |v|^2 / 2),
        # computed in float64 from points converted once.
        self._nearest: dict[str, tuple[np.ndarray, np.ndarray, list[list[Result]]]] = {}
        for task, (points, groups) in self._points.items():
            points64 = points.astype(np.float64)
            self._nearest[task] = (points64, 0.5 * (points64**2).sum(axis=1), groups)

    @property
    def tasks(self) -> list[str]:
        return sorted(self._points)

    def recorded_vectors(self) -> np.ndarray:
        """Flat encodings of every recorded metaprogram (all tasks)."""
        return np.concatenate([points for points, _ in self._points.values()])

    def run(self, metaprogram: Mapping[str, Any], *, task: TaskRef, seed: int) -> Result:
        name = task.name
        vector = self.schema.encode_valid(metaprogram)
        group = self._exact.get((name, _key(vector)))
        if group is None:
            if name not in self._points:
                return Result(status="error", error=f"no recorded runs on task {name!r}")
            if self.missing == "error":
                return Result(
                    status="error",
                    error="no recorded run of this metaprogram on this task; "
                    "use missing='nearest' to answer with the nearest recorded run",
                )
            points, half_norms, groups = self._nearest[name]
            group = groups[int((half_norms - points @ vector.astype(np.float64)).argmin())]
        recorded = group[seed % len(group)]
        # A fresh result each step: callers may keep or change what a step returned.
        return Result(
            status=recorded.status,
            val_metrics=dict(recorded.val_metrics),
            test_metrics=dict(recorded.test_metrics),
            curve=[dict(point) for point in recorded.curve],
            seconds=recorded.seconds,
            samples=recorded.samples,
            error=recorded.error,
        )


def make_replay_env(
    source: str = "researchgym/Digits-v0",
    data: str | Path | list[dict[str, Any]] | None = None,
    missing: str = "nearest",
    store: Any = False,
    **kwargs: Any,
):
    """A :class:`ResearchEnv` of ``source`` whose steps are answered from recorded runs.

    Args:
        source: the env whose recorded runs are replayed.
        data: store holding them (default: the shipped reference runs), or rows
            already read from one with :func:`load_runs`.
        missing: policy for actions never recorded: ``"nearest"`` or ``"error"``.
        store: where replayed steps are recorded (default: nowhere).
        **kwargs: other :class:`ResearchEnv` arguments (interface, budget, reward, ...).
    """
    import gymnasium as gym

    from researchgym.envs.research_env import ResearchEnv
    from researchgym.envs.suites import suite_of

    spec = gym.spec(source)
    env_kwargs = {
        **spec.kwargs,
        "env_id": "researchgym/Replay-v0",
        **kwargs,
        "store": store,
        "source_env_id": source,
        "recorded_kwargs": {"source": source, "missing": missing},
    }
    schema = suite_of(source).make_schema()
    runs = data if isinstance(data, list) else load_runs(data, source)
    executor = ReplayExecutor(runs, schema, missing)
    return ResearchEnv(executor=executor, **env_kwargs)
