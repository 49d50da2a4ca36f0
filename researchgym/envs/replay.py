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

**Fidelities.** Made with ``forkable=True`` and ``max_epochs=M``, the env replays
runs recorded with that horizon (``researchgym generate --max-epochs M``; rows of
another horizon, or of an env that is not forkable, are never used). A run's
learning-rate schedule spans ``M`` epochs whatever its ``train.epochs``, so with the
same seed the first ``e`` epochs of a recorded run are exactly a run of ``e`` epochs,
and the recorded curve answers every fidelity up to its ``train.epochs``:

* ``new`` with ``train.epochs=e``: the recorded metaprogram is matched ignoring
  ``train.epochs`` (exactly, or the nearest with ``missing="nearest"``); the answer is
  the curve's first ``e`` epochs, with the validation score and loss of epoch ``e``
  as metrics (test metrics only when ``e`` is the recorded run's last epoch: they were
  measured only then), and as cost ``e`` epochs' share of the recorded seconds and
  samples;
* ``continue`` of run ``k`` to ``e'``: the curve of the recorded run that answered
  ``k``, up to ``e'``, charging only the epochs from ``k``'s fidelity to ``e'``;
* ``fork`` gets status ``"invalid_action"``: training a run's weights on with other
  settings was never recorded;
* ``stop`` ends the campaign, as in every forkable env.

A recorded run that stopped early (``train.early_stopping``) or diverged answers any
fidelity past its end as it ended, as training it would; one recorded at fewer epochs
than asked answers with status ``"error"``.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from researchgym.engine import Executor, Result, Start, TaskRef
from researchgym.engine.checkpoints import atomic_write
from researchgym.engine.file_datasets import DataFilesNotFound
from researchgym.envs.interfaces import EPOCHS
from researchgym.envs.recording import recorded_horizon
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
    "recorded_horizons",
]

#: Reference runs shipped as package data (see researchgym/reference/README.md).
REFERENCE_STORE = Path(str(importlib.resources.files("researchgym") / "reference"))
#: Surrogates fitted on the reference runs, one ``<EnvName>.npz`` + ``.json`` per env.
REFERENCE_SURROGATES = REFERENCE_STORE / "surrogates"

QUANTUM = 1e-4  # flat-encoding resolution of an exact match
#: Values of ``missing=``: how an action never recorded is answered.
MISSING_POLICIES = ("error", "nearest")


def load_runs(
    data: str | Path | None, env_id: str, max_epochs: int | None = None
) -> list[dict[str, Any]]:
    """Recorded runs of ``env_id`` from a store (default: the shipped reference runs).

    Args:
        data: the store.
        env_id: the env that recorded them.
        max_epochs: only runs recorded in a forkable env with this ``max_epochs`` (the
            horizon of their learning-rate schedules), each trained from scratch (verb
            ``new``); ``None``: only runs recorded in envs that are not forkable.

    Raises:
        StoreError: the store holds no such runs (the message lists the horizons it
            holds).
    """
    return _at_horizon(_read_runs(data, env_id), max_epochs, env_id)


def recorded_horizons(runs: list[dict[str, Any]]) -> list[int]:
    """The ``max_epochs`` that runs were recorded with, in forkable envs (sorted)."""
    return sorted({h for r in runs if (h := recorded_horizon(r)) is not None})


def _at_horizon(
    runs: list[dict[str, Any]], max_epochs: int | None, env_id: str
) -> list[dict[str, Any]]:
    """The runs of :func:`load_runs` recorded at horizon ``max_epochs`` (see there)."""
    from researchgym.store import StoreError

    kept = [r for r in runs if recorded_horizon(r) == max_epochs and r.get("verb") in (None, "new")]
    if kept:
        return kept
    horizons = recorded_horizons(runs)
    held = f"runs recorded with max_epochs in {horizons}" if horizons else "no such runs"
    if max_epochs is None:
        raise StoreError(
            f"no runs of {env_id} were recorded in an env that is not forkable (the data holds "
            f"{held}); make the env with forkable=True and one of those max_epochs"
        )
    raise StoreError(
        f"no runs of {env_id} were recorded with max_epochs={max_epochs}, the horizon of "
        f"their learning-rate schedules (the data holds {held}); make the env with one of "
        f"those, or record runs with `researchgym generate --env {env_id} --max-epochs "
        f"{max_epochs} --set {EPOCHS}={max_epochs}`"
    )


def _only_horizon(runs: list[dict[str, Any]], env_id: str) -> int:
    """The one horizon ``runs`` were recorded at (a forkable replay's default max_epochs)."""
    horizons = recorded_horizons(runs)
    if len(horizons) != 1:
        raise ConfigError(
            f"a forkable Replay-v0 replays runs recorded with its max_epochs, and the data "
            f"holds runs of {env_id} recorded with max_epochs in {horizons}; pass one of "
            f"those as max_epochs=, or record runs with `researchgym generate --env {env_id} "
            "--max-epochs M`"
        )
    return horizons[0]


def _read_runs(data: str | Path | None, env_id: str) -> list[dict[str, Any]]:
    """Every trained step of ``env_id`` in a store (default: the shipped reference runs)."""
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
                "env_kwargs", "verb",
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
        curve = json.loads(row["curve"] or "[]")
        return Result(
            status=row["status"],
            val_metrics=json.loads(row["val_metrics"] or "{}"),
            test_metrics=json.loads(row["test_metrics"] or "{}"),
            curve=curve,
            seconds=float(row["cost_seconds"] or 0.0),
            samples=int(row["cost_samples"] or 0),
            n_params=int(row["n_params"] or 0),
            epochs=curve[-1]["epoch"] if curve else 0,
            error=row["error"],
            answered_by=answered_by,
        )

    def result_at(self, epochs: int, since: int, answered_by: dict[str, Any]) -> Result:
        """What the run had produced after ``epochs`` epochs, charging those after ``since``
        (see "Fidelities" in the module docstring)."""
        full = self.result(answered_by)
        if not full.curve:  # failed before its first epoch
            return full
        done = full.epochs  # fewer than train.epochs when it stopped early or diverged
        if epochs > done and full.ok and done == self.metaprogram.get(EPOCHS):
            return Result(
                status="error",
                error=f"the recorded run {self.run_id} ends at {done} epochs, before the "
                f"{epochs} asked for; ask for {EPOCHS} <= {done}, or record runs of more epochs",
            )
        share = (min(epochs, done) - since) / max(done, 1)
        seconds, samples = full.seconds * share, round(full.samples * share)
        if epochs >= done:
            full.seconds, full.samples = seconds, samples
            return full
        curve = full.curve[:epochs]
        last = curve[-1]
        return Result(
            status="ok",
            val_metrics={"score": last["val_score"], "loss": last["val_loss"]},
            test_metrics={},
            curve=curve,
            seconds=seconds,
            samples=samples,
            n_params=full.n_params,
            epochs=epochs,
            answered_by=answered_by,
        )


class ReplayExecutor(Executor):
    """Looks results up in recorded runs (see the module docstring for the policy).

    Args:
        runs: rows from :func:`load_runs`.
        schema: the source env's schema (for the flat encoding).
        missing: ``"error"`` or ``"nearest"``: how an action never recorded is answered.
        max_epochs: the horizon ``runs`` were recorded at (``load_runs(..., max_epochs)``):
            the executor then answers any fidelity from their curves and continues the
            runs it answered (see "Fidelities" in the module docstring), for a forkable
            env of that ``max_epochs``. ``None``: runs recorded in envs that are not
            forkable, answered as recorded; a job that starts from a run is then an
            invalid action.
    """

    def __init__(
        self,
        runs: list[dict[str, Any]],
        schema: Schema,
        missing: str = "error",
        max_epochs: int | None = None,
    ):
        if missing not in MISSING_POLICIES:
            raise ConfigError(
                f"missing={shorten(missing)} is not a policy; "
                f"{did_you_mean(missing, MISSING_POLICIES)}choose one of {MISSING_POLICIES}"
            )
        self.schema = schema
        self.missing = missing
        self.max_epochs = max_epochs
        self._exact: dict[tuple[str, bytes], list[_Recorded]] = {}
        by_task: dict[str, tuple[list[np.ndarray], list[list[_Recorded]]]] = {}
        encoded: dict[str, tuple[dict[str, Any], np.ndarray, bytes]] = {}
        for row in runs:
            if row["metaprogram"] not in encoded:  # runs of one metaprogram share its encoding
                metaprogram = json.loads(row["metaprogram"])
                vector = self.schema.encode(self._matched(metaprogram)).astype(np.float64)
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
        self._by_id = {r.run_id: r for g in self._exact.values() for r in g}

    def _matched(self, metaprogram: Mapping[str, Any]) -> Mapping[str, Any]:
        """The settings a recorded run is matched on: with a horizon, all but
        ``train.epochs`` (the fidelity is answered from the curve)."""
        if self.max_epochs is None:
            return metaprogram
        return {**metaprogram, EPOCHS: self.max_epochs}

    def _encode(self, metaprogram: Mapping[str, Any]) -> np.ndarray:
        """Where an asked metaprogram lies in the flat encoding, as :meth:`_matched`."""
        return self.schema.encode_valid(self._matched(metaprogram)).astype(np.float64)

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

    def refuses(self, mode: str) -> str | None:
        if self.max_epochs is None:
            return (
                f"Replay-v0 cannot {mode} a run of runs recorded without a horizon: make it "
                "with forkable=True and the max_epochs they were recorded with (researchgym "
                "generate --max-epochs), or ask for a new run"
            )
        if mode == "fork":
            return (
                "Replay-v0 cannot fork a run: the recorded runs were each trained with their "
                "own settings from scratch, so training a run's weights on with other settings "
                "was never recorded; continue the run, or ask for a new one"
            )
        return None

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
        if schedule_epochs != self.max_epochs:
            return Result(
                status="error",
                error=f"this job's learning-rate schedule spans schedule_epochs="
                f"{schedule_epochs}, but the recorded runs' schedules span max_epochs="
                f"{self.max_epochs}; replay runs recorded with the env's own max_epochs",
            )
        if start is not None:
            result = self._continue(metaprogram, start)
        else:
            result = self._answer(metaprogram, task.name, seed)
        if save_to is not None and result.ok and result.answered_by is not None:
            answer = json.dumps({"answered_by": result.answered_by, "epochs": result.epochs})

            def write(file: IO[bytes]) -> None:
                file.write(answer.encode())

            atomic_write(save_to, write)
        return result

    def _answer(self, metaprogram: Mapping[str, Any], name: str, seed: int) -> Result:
        """A new run's result: the recorded run of the metaprogram, at its fidelity."""
        vector = self._encode(metaprogram)
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
        answered_by = {
            "match": match,
            "distance": _distance(recorded.vector, vector),
            "run_id": recorded.run_id,
            "metaprogram": dict(recorded.metaprogram),
        }
        if self.max_epochs is None:
            return recorded.result(answered_by)
        return recorded.result_at(metaprogram[EPOCHS], 0, answered_by)

    def _continue(self, metaprogram: Mapping[str, Any], start: Start) -> Result:
        """A continued run's result: the recorded run that answered it, further on its
        curve; a fork is an invalid action."""
        refusal = self.refuses(start.mode)
        if refusal is not None:
            return Result(status="invalid_action", error=refusal)
        try:
            answer = json.loads(Path(start.checkpoint).read_text())
            recorded = self._by_id[answer["answered_by"]["run_id"]]
            since = int(answer["epochs"])
        except (OSError, ValueError, KeyError, TypeError):
            return Result(
                status="invalid_action",
                error=f"{shorten(start.checkpoint)} is not a run this replay answered; "
                "continue a run of this campaign",
            )
        return recorded.result_at(metaprogram[EPOCHS], since, answer["answered_by"])

    def _missing_error(self, requested: Mapping[str, Any], task: str, nearest: _Recorded) -> str:
        """Why an action never recorded was not answered, and how to have it answered."""
        recorded = nearest.metaprogram
        if self.max_epochs is not None:  # the fidelity is answered from the curve
            requested = {**requested, EPOCHS: recorded.get(EPOCHS)}
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
        distance = _distance(nearest.vector, self._encode(requested))
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
    forkable: bool = False,
    max_epochs: int | None = None,
    **kwargs: Any,
):
    """A :class:`ResearchEnv` of ``source`` whose steps are answered from recorded runs.

    Args:
        source: the env whose recorded runs are replayed.
        data: store holding them (default: the shipped reference runs), or rows
            already read from one (with :func:`load_runs`, or the rows it reads).
        missing: how an action never recorded is answered: ``"error"`` (a step with
            status ``"error"`` naming the nearest recorded run) or ``"nearest"`` (that run
            answers, as ``info["answered_by"]`` says).
        store: where replayed steps are recorded (default: nowhere).
        forkable: answer ``new`` at any fidelity and ``continue`` from recorded curves
            (see "Fidelities" in the module docstring), replaying only runs recorded with
            the horizon ``max_epochs``; otherwise only runs recorded in envs that are not
            forkable.
        max_epochs: the forkable env's highest fidelity, the horizon its runs were
            recorded with; default: the data's, when it holds runs of one horizon.
        **kwargs: other :class:`ResearchEnv` arguments (interface, budget, reward, ...).

    Raises:
        StoreError: the data holds no runs of ``source`` recorded at that horizon.
        ConfigError: ``forkable`` without ``max_epochs``, and the data holds runs of
            several horizons (or none).
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
    runs = data if isinstance(data, list) else _read_runs(data, source)
    horizon = None
    if forkable:
        horizon = max_epochs if max_epochs is not None else _only_horizon(runs, source)
        env_kwargs.update(forkable=True, max_epochs=horizon)
    elif max_epochs is not None:
        env_kwargs["max_epochs"] = max_epochs  # ResearchEnv says it needs forkable=True
    executor = ReplayExecutor(_at_horizon(runs, horizon, source), schema, missing, horizon)
    return ResearchEnv(executor=executor, **env_kwargs)
