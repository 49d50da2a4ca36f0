"""Replay-v0: answer actions from recorded runs instead of training.

The env has the source env's spaces, observation, reward and info; only the
executor differs. An action is looked up by its metaprogram, quantized in the
flat encoding, on the episode's task:

* an exact match returns a recorded run (one of its seeds, chosen by the step's
  seed) with its metrics, curve, status and recorded seconds as cost;
* an action never recorded gets, with ``missing="error"`` (the default), a step
  with status ``"error"`` whose error names the nearest recorded run, its distance
  and the settings that differ; with ``missing="nearest"``, the recorded run
  nearest in the flat encoding (Euclidean) answers instead.

Every answered step says which recorded run answered, in ``info["answered_by"]``
and the store's ``answered_by`` column::

    {"match": "exact" | "nearest", "distance": float, "run_id": str, "metaprogram": {...}}

``distance`` is between the action's and the recorded run's flat encodings, and
``metaprogram`` is the recorded run's, the settings that actually ran.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from researchgym.engine import Executor, Result, Start, TaskRef
from researchgym.engine.file_datasets import DataFilesNotFound
from researchgym.errors import ConfigError, did_you_mean, shorten
from researchgym.spaces import Schema

__all__ = [
    "MISSING_POLICIES",
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
#: Values of ``missing=``: how an action never recorded is answered.
MISSING_POLICIES = ("error", "nearest")


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
                "run_id", "task", "seed", "metaprogram", "status", "error", "val_metrics",
                "test_metrics", "curve", "cost_seconds", "cost_samples", "n_params",
            ),
            order_by=("task", "run_id"),
        ).to_pylist()  # fmt: skip
    if not rows:
        raise StoreError(f"the store at {path} has no recorded runs of {env_id}")
    return rows


def pinned_settings(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Settings with one value in every recorded run (e.g. ``train.epochs`` pinned by the sweep)."""
    return _common_settings([json.loads(row["metaprogram"]) for row in runs])


def _common_settings(metaprograms: list[dict[str, Any]]) -> dict[str, Any]:
    if len(metaprograms) < 2:
        return {}
    first, *rest = metaprograms
    common = {}
    for name, value in first.items():
        seen = json.dumps(value)
        if all(name in m and json.dumps(m[name]) == seen for m in rest):
            common[name] = json.loads(seen)
    return common


def _key(vector: np.ndarray) -> bytes:
    return np.rint(vector / QUANTUM).astype(np.int64).tobytes()


@dataclass(frozen=True)
class _Recorded:
    """One recorded run: its row, its settings and where they lie in the flat encoding."""

    row: dict[str, Any]
    metaprogram: dict[str, Any]
    vector: np.ndarray

    @property
    def run_id(self) -> str:
        return self.row["run_id"]

    def result(self, answered_by: dict[str, Any]) -> Result:
        """What the run produced, read from its row anew (callers may keep or change it)."""
        row = self.row
        return Result(
            status=row["status"],
            val_metrics=json.loads(row["val_metrics"] or "{}"),
            test_metrics=json.loads(row["test_metrics"] or "{}"),
            curve=json.loads(row["curve"] or "[]"),
            seconds=float(row["cost_seconds"] or 0.0),
            samples=int(row["cost_samples"] or 0),
            n_params=int(row["n_params"] or 0),
            error=row["error"],
            answered_by=answered_by,
        )


class ReplayExecutor(Executor):
    """Looks results up in recorded runs (see the module docstring for the policy).

    Recorded runs keep no checkpoints: a job that starts from one is an invalid action,
    and ``save_to`` is ignored.

    Args:
        runs: rows from :func:`load_runs`.
        schema: the source env's schema (for the flat encoding).
        missing: ``"error"`` or ``"nearest"``: how an action never recorded is answered.
    """

    def __init__(self, runs: list[dict[str, Any]], schema: Schema, missing: str = "error"):
        if missing not in MISSING_POLICIES:
            raise ConfigError(
                f"missing={shorten(missing)} is not a policy; "
                f"{did_you_mean(missing, MISSING_POLICIES)}choose one of {MISSING_POLICIES}"
            )
        self.schema = schema
        self.missing = missing
        self._exact: dict[tuple[str, bytes], list[_Recorded]] = {}
        by_task: dict[str, tuple[list[np.ndarray], list[list[_Recorded]]]] = {}
        encoded: dict[str, tuple[dict[str, Any], np.ndarray, bytes]] = {}
        for row in runs:
            if row["metaprogram"] not in encoded:  # runs of one metaprogram share its encoding
                metaprogram = json.loads(row["metaprogram"])
                vector = schema.encode(metaprogram).astype(np.float64)
                encoded[row["metaprogram"]] = metaprogram, vector, _key(vector)
            metaprogram, vector, vector_key = encoded[row["metaprogram"]]
            key = (row["task"], vector_key)
            if key not in self._exact:
                self._exact[key] = []
                vectors, groups = by_task.setdefault(row["task"], ([], []))
                vectors.append(vector)
                groups.append(self._exact[key])
            self._exact[key].append(_Recorded(row, metaprogram, vector))
        # The nearest point p to v minimizes |p|^2 / 2 - p.v (|p - v|^2 / 2 less |v|^2 / 2),
        # computed in float64 from points stacked once.
        self._nearest: dict[str, tuple[np.ndarray, np.ndarray, list[list[_Recorded]]]] = {}
        for task, (vectors, groups) in by_task.items():
            points = np.stack(vectors)
            self._nearest[task] = (points, 0.5 * (points**2).sum(axis=1), groups)

    @functools.cached_property
    def _pinned(self) -> dict[str, Any]:
        """:func:`pinned_settings` of the recorded runs (for error messages only)."""
        return _common_settings([r.metaprogram for g in self._exact.values() for r in g])

    @property
    def tasks(self) -> list[str]:
        return sorted(self._nearest)

    def recorded_vectors(self) -> np.ndarray:
        """Flat encodings of every recorded metaprogram (all tasks)."""
        return np.concatenate([points for points, _, _ in self._nearest.values()])

    def run(
        self,
        metaprogram: Mapping[str, Any],
        *,
        task: TaskRef,
        seed: int,
        start: Start | None = None,
        save_to: str | None = None,
        schedule_epochs: int | None = None,
    ) -> Result:
        if start is not None:
            return Result(
                status="invalid_action",
                error=f"Replay-v0 cannot {start.mode} a run: recorded runs keep no checkpoints; "
                "ask for a new run instead",
            )
        name = task.name
        vector = self.schema.encode_valid(metaprogram).astype(np.float64)
        group = self._exact.get((name, _key(vector)))
        match = "exact"
        if group is None:
            if name not in self._nearest:
                return Result(status="error", error=f"no recorded runs on task {name!r}")
            points, half_norms, groups = self._nearest[name]
            group = groups[int((half_norms - points @ vector).argmin())]
            match = "nearest"
        recorded = group[seed % len(group)]
        if match == "nearest" and self.missing == "error":
            return Result(status="error", error=self._missing_error(metaprogram, name, recorded))
        return recorded.result(
            answered_by={
                "match": match,
                "distance": _distance(recorded.vector, vector),
                "run_id": recorded.run_id,
                "metaprogram": dict(recorded.metaprogram),
            }
        )

    def _missing_error(self, requested: Mapping[str, Any], task: str, nearest: _Recorded) -> str:
        """Why an action never recorded was not answered, and how to have it answered."""
        recorded = nearest.metaprogram
        names = [
            name
            for name in sorted(
                set(requested) | set(recorded), key=lambda n: (n not in self._pinned, n)
            )
            if requested.get(name) != recorded.get(name)
        ]
        differ = [
            f"{name}={_brief(requested.get(name))} (recorded: {_brief(recorded.get(name))}"
            + (" in every run)" if name in self._pinned else ")")
            for name in names
        ]
        shown = ", ".join(differ[:4]) + (f" and {len(differ) - 4} more" if len(differ) > 4 else "")
        distance = _distance(nearest.vector, self.schema.encode_valid(requested))
        return (
            f"no recorded run of this metaprogram on task {task!r}; the nearest differs in "
            f"{shown} (run_id {nearest.run_id}, at distance {distance:.3g} in the flat "
            "encoding); pass missing='nearest' to gym.make (--env-arg missing=nearest on the "
            "command line) to have the nearest recorded run answer (info['answered_by'] then "
            "names it)"
        )


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two flat encodings."""
    return float(np.sqrt(((a - b) ** 2).sum()))


def _brief(value: Any) -> str:
    """A setting's value in a message: floats to 4 significant digits, ``unset`` for none."""
    if value is None:
        return "unset"
    return f"{value:.4g}" if isinstance(value, float) else shorten(value)


def make_replay_env(
    source: str = "researchgym/Digits-v0",
    data: str | Path | list[dict[str, Any]] | None = None,
    missing: str = "error",
    store: Any = False,
    **kwargs: Any,
):
    """A :class:`ResearchEnv` of ``source`` whose steps are answered from recorded runs.

    Args:
        source: the env whose recorded runs are replayed.
        data: store holding them (default: the shipped reference runs), or rows
            already read from one with :func:`load_runs`.
        missing: how an action never recorded is answered: ``"error"`` (a step with
            status ``"error"`` naming the nearest recorded run) or ``"nearest"`` (that run
            answers, as ``info["answered_by"]`` says).
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
