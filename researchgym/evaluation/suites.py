"""Benchmark suites: named, versioned boards of (env, held-out tasks, budget, fidelity).

A :class:`BenchmarkSuite` says what a leaderboard measures: the env planners act
on, the *test tasks* campaigns are scored on (held out: no learned planner ever
trains on them), the *train tasks* learned planners may learn from, the budget of
experiments per campaign and the pinned settings that fix the fidelity
(``train.epochs=10``). Each test task's :class:`~researchgym.evaluation.TaskReference`
comes from a store of recorded runs (``data``): the best recorded score and the
median of a Sobol design's scores (a typical random draw). A suite answered by a
surrogate takes them from the surrogate, the world its planners act in: the best
and the median of its predictions over a Sobol design and the recorded
metaprograms. A board raises each best to the best score any of its campaigns found
(:func:`best_known`), so no campaign is clipped to zero regret for beating it. A suite
without recorded runs takes its references from the board's own campaigns (see
:func:`campaign_references`).

A *multi-fidelity* suite declares a fidelity range instead of pinning
``train.epochs``: ``fidelity=(min_epochs, max_epochs)`` and a compute budget
(``cost_budget``, e.g. ``{"samples": n}``) that ends each campaign (``budget`` is then
only an upper bound on its experiments). Its env is forkable up to ``max_epochs``, so
runs can be continued and forked and every learning-rate schedule spans
``max_epochs``. Planners that choose their fidelity (Hyperband, ASHA, PBT, ...) train
from ``min_epochs`` up; every other planner trains each metaprogram at ``max_epochs``.

The suites are declared once in :data:`BENCHMARK_SUITES`:

* ``fast``: Surrogate-v0 of Synthetic-v0, fitted on the recorded runs of four tables;
  seconds per planner;
* ``cpu``: real training of Synthetic-v0 on two of those tables; minutes per planner;
* ``gpu``: real training of wide SeqArch-v0 models; needs CUDA;
* ``multi-fidelity``: real training of Synthetic-v0 on the cpu suite's tables with fidelities
  1 to 9 epochs, each campaign ended by a budget of training samples worth 8 runs of 9
  epochs; minutes per planner.

Every suite is scored against steps and against compute seconds (predicted seconds
for a surrogate, measured ones when trained).
"""

from __future__ import annotations

import importlib.resources
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from researchgym.envs.costs import CostBudget
from researchgym.envs.suites import get_suite
from researchgym.errors import ConfigError, NotFound, did_you_mean, shorten
from researchgym.evaluation.stats import CampaignTrace, TaskReference, traces_by_task

__all__ = [
    "BENCHMARK_SUITES",
    "SUITE_MODELS",
    "SUITE_RUNS",
    "BenchmarkSuite",
    "PlannerTraining",
    "SeedSpread",
    "benchmark_suite",
    "best_known",
    "campaign_references",
]

#: Recorded runs that define the ``fast`` and ``cpu`` suites' references (package data).
SUITE_RUNS = Path(str(importlib.resources.files("researchgym.evaluation") / "suite_runs"))
#: Surrogates fitted on :data:`SUITE_RUNS` that answer the ``fast`` suite (package data).
SUITE_MODELS = Path(str(importlib.resources.files("researchgym.evaluation") / "suite_models"))

SYNTHETIC = "researchgym/Synthetic-v0"
REPLAY = "researchgym/Replay-v0"
SURROGATE = "researchgym/Surrogate-v0"
SEQARCH = "researchgym/SeqArch-v0"
EPOCHS = "train.epochs"


@dataclass(frozen=True)
class PlannerTraining:
    """How a suite trains a learned planner: on ``env_id``, for ``steps`` trainer steps.

    ``options`` are more keyword arguments of the planner's trainer (see
    :func:`researchgym.planning.make_trainer`); the trainer is always given the
    suite's train tasks as ``tasks``. ``planner_options`` are given to the planner
    with its trained policy.
    """

    env_id: str
    steps: int
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    planner_options: Mapping[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class SeedSpread:
    """How much one metaprogram's score moves between two training seeds on ``task``.

    Attributes:
        pairs: metaprograms recorded with two seeds.
        median: median absolute score difference between the two seeds.
        median_regret: the same in normalized-regret units (divided by best - typical).
    """

    task: str
    pairs: int
    median: float
    median_regret: float


@dataclass(frozen=True)
class BenchmarkSuite:
    """A named, versioned leaderboard: planners run campaigns on held-out tasks of an env.

    Attributes:
        name: the suite's name (``researchgym leaderboard --suite NAME``).
        version: bumped whenever a change makes old results incomparable.
        description: one line for ``researchgym leaderboard --list``.
        env_id: the env planners act on (e.g. Replay-v0 of ``source``).
        source: the env whose training defines the tasks and the recorded runs.
        test_tasks: tasks campaigns run on and are scored on (held out).
        train_tasks: the only tasks learned planners train on.
        budget: experiments per campaign (with ``cost_budget``: at most).
        fixed: settings pinned in every step, e.g. the fidelity (``train.epochs``) of a
            suite without a fidelity range.
        env_kwargs: more keyword arguments of ``gym.make(env_id, ...)``.
        requires: ``"cuda"`` for a suite that needs a GPU, else ``None``.
        data: store of recorded runs of ``source`` on the test tasks that defines their
            references (``None``: references from the board's campaigns).
        training: how each learned planner is trained, by planner name.
        fidelity: ``(min_epochs, max_epochs)`` of a multi-fidelity suite (see the module
            docstring), else ``None``.
        cost_budget: compute budget that ends each campaign, as the env's ``cost_budget=``
            (e.g. ``{"samples": 1e5}``); a multi-fidelity suite needs one.
    """

    name: str
    version: int
    description: str
    env_id: str
    source: str
    test_tasks: tuple[str, ...]
    train_tasks: tuple[str, ...]
    budget: int
    fixed: Mapping[str, Any] = field(default_factory=dict, hash=False)
    env_kwargs: Mapping[str, Any] = field(default_factory=dict, hash=False)
    requires: str | None = None
    data: Path | None = None
    training: Mapping[str, PlannerTraining] = field(default_factory=dict, hash=False)
    fidelity: tuple[int, int] | None = None
    cost_budget: Mapping[str, float] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if self.env_id == REPLAY and self.data is None:
            raise ConfigError(
                f"suite {self.name!r} replays recorded runs but names no data; give data=STORE"
            )
        if set(self.test_tasks) & set(self.train_tasks):
            raise ConfigError(
                f"suite {self.name!r} trains on its test tasks "
                f"{shorten(sorted(set(self.test_tasks) & set(self.train_tasks)))}; keep them apart"
            )
        if self.requires not in (None, "cuda"):
            raise ConfigError(f"requires={shorten(self.requires)} must be 'cuda' or None")
        CostBudget.parse(self.cost_budget)
        if self.fidelity is not None:
            self._check_fidelity()

    def _check_fidelity(self) -> None:
        fidelity = self.fidelity
        if not (
            isinstance(fidelity, tuple)
            and len(fidelity) == 2
            and all(isinstance(e, int) and not isinstance(e, bool) for e in fidelity)
            and 1 <= fidelity[0] <= fidelity[1]
        ):
            raise ConfigError(
                f"suite {self.name!r} has fidelity={shorten(fidelity)}; give "
                "(min_epochs, max_epochs), integers with 1 <= min_epochs <= max_epochs"
            )
        if EPOCHS in self.fixed:
            raise ConfigError(
                f"suite {self.name!r} pins {EPOCHS}={shorten(self.fixed[EPOCHS])} and declares "
                f"the fidelity range {fidelity}; {EPOCHS} is the fidelity, so leave it unpinned"
            )
        if self.cost_budget is None:
            raise ConfigError(
                f"suite {self.name!r} has the fidelity range {fidelity} but no cost_budget; "
                "give the compute each campaign may spend, e.g. {'samples': 1e5}"
            )

    def pins(self, chooses_fidelity: bool = False) -> dict[str, Any]:
        """Settings pinned in every step of a planner: :attr:`fixed`, and in a multi-fidelity
        suite ``train.epochs=max_epochs`` for a planner that does not choose its fidelity."""
        if self.fidelity is None or chooses_fidelity:
            return dict(self.fixed)
        return {**self.fixed, EPOCHS: self.fidelity[1]}

    @property
    def spend(self) -> str:
        """What each campaign may spend, as text (``20 experiments``)."""
        if self.cost_budget is None:
            return f"{self.budget} experiments"
        ((unit, amount),) = self.cost_budget.items()
        return f"{amount:g} {unit} (at most {self.budget} experiments)"

    @property
    def fidelity_text(self) -> str:
        """The fidelity range and the pinned settings, as text (``train.epochs=10``)."""
        parts = [f"{k}={v}" for k, v in self.fixed.items()]
        if self.fidelity is not None:
            low, high = self.fidelity
            parts.insert(0, f"{EPOCHS} {low} to {high}, fixed-fidelity planners at {high}")
        return ", ".join(parts) or "env defaults"

    def unavailable(self) -> str | None:
        """Why this suite cannot run on this machine, or ``None`` when it can."""
        if self.requires == "cuda":
            import torch

            if not torch.cuda.is_available():
                return (
                    f"suite {self.name!r} trains on a CUDA GPU and this machine has none; "
                    "run it on a machine with one"
                )
        return None

    def make_env(self, *, store: Any = False, interface: str = "dict", executor: Any = None) -> Any:
        """The env campaigns run in: ``env_id`` over the test tasks, recording to ``store``,
        training with ``executor`` (default: the env's own)."""
        import gymnasium as gym

        if executor is not None and self.env_id in (REPLAY, SURROGATE):
            raise ConfigError(
                f"suite {self.name!r} answers its steps from recorded runs ({self.env_id}) and "
                "trains nothing, so it takes no executor; run it without one"
            )

        kwargs = {
            **self.env_kwargs,
            "budget": self.budget,
            "tasks": list(self.test_tasks),
            "store": store,
            "interface": interface,
        }
        if self.env_id == REPLAY:
            kwargs["data"] = str(self.data)
        if self.cost_budget is not None:
            kwargs["cost_budget"] = dict(self.cost_budget)
        if self.fidelity is not None:
            kwargs.update(forkable=True, max_epochs=self.fidelity[1])
        if executor is not None:
            kwargs["executor"] = executor
        return gym.make(self.env_id, disable_env_checker=True, **kwargs)

    def _recorded(self) -> dict[str, dict[str, list[float | None]]]:
        """Recorded scores on each test task, per metaprogram (failures as ``None``)."""
        from researchgym.envs.replay import load_runs

        out: dict[str, dict[str, list[float | None]]] = {t: {} for t in self.test_tasks}
        for row in load_runs(self.data, self.source):
            if row["task"] in out:
                score = json.loads(row["val_metrics"] or "{}").get("score")
                out[row["task"]].setdefault(row["metaprogram"], []).append(
                    score if row["status"] == "ok" else None
                )
        empty = [task for task, runs in out.items() if not runs]
        if empty:
            raise NotFound(
                f"the recorded runs at {self.data} hold no runs of {self.source} on {shorten(empty)}; "
                f"record them with `researchgym generate --env {self.source} --task TASK "
                f"--store {self.data}` or give the suite other data"
            )
        return out

    def references(self) -> dict[str, TaskReference] | None:
        """Each test task's reference (see the module docstring; ``None`` without ``data``)."""
        if self.env_id == SURROGATE:
            return self._predicted_references()
        if self.data is None:
            return None
        return {task: _reference(task, runs) for task, runs in self._recorded().items()}

    @property
    def references_source(self) -> str:
        """Where :meth:`references` come from, in words."""
        if self.env_id == SURROGATE:
            return (
                "best and median of the surrogate's noise-free predictions over a Sobol design "
                "and the recorded metaprograms"
            )
        return "best and median of the recorded Sobol design"

    def _predicted_references(self, design: int = 4096) -> dict[str, TaskReference]:
        """Best and median of the surrogate's noise-free scores: the best over a Sobol design
        of ``design`` points and the recorded metaprograms, the median over the design."""
        from itertools import islice

        from researchgym.envs.suites import suite_of
        from researchgym.envs.surrogate import SurrogateModel
        from researchgym.spaces.sampling import sobol_points

        model = SurrogateModel.load(self.env_kwargs["model"])
        schema = suite_of(self.source).make_schema()

        def encode(points: Iterable[dict[str, Any]]) -> np.ndarray:
            return np.stack([schema.encode_valid({**p, **self.fixed}) for p in points])

        sobol = encode(islice(sobol_points(schema, seed=0), design))
        recorded = encode(json.loads(m) for m in self._recorded_metaprograms())
        out = {}
        for task in self.test_tasks:
            typical = model.predict(model.features(sobol, [task] * len(sobol)))[:, 0]
            found = model.predict(model.features(recorded, [task] * len(recorded)))[:, 0]
            best = max(typical.max(), found.max())
            out[task] = TaskReference(task, float(best), float(np.median(typical)))
        return out

    def _recorded_metaprograms(self) -> set[str]:
        return {m for runs in self._recorded().values() for m in runs}

    def seed_spread(self) -> dict[str, SeedSpread]:
        """Per test task, the seed-to-seed spread of metaprograms recorded with two seeds.

        Empty without ``data`` or when no metaprogram was recorded twice.
        """
        if self.data is None:
            return {}
        out = {}
        for task, by_point in self._recorded().items():
            gaps = [
                abs(runs[0] - runs[1])
                for runs in by_point.values()
                if len(runs) >= 2 and runs[0] is not None and runs[1] is not None
            ]
            if gaps:
                median = float(np.median(gaps))
                reference = _reference(task, by_point)
                scale = reference.best - reference.typical
                out[task] = SeedSpread(task, len(gaps), median, median / scale)
        return out


def _reference(task: str, by_point: Mapping[str, list[float | None]]) -> TaskReference:
    return TaskReference.from_scores(task, [s for runs in by_point.values() for s in runs])


def campaign_references(
    traces: Iterable[CampaignTrace], *, typical_planner: str = "random"
) -> dict[str, TaskReference]:
    """References from a board's own campaigns, for tasks without recorded runs.

    Per task: best = the best score any campaign found, typical = the median score
    of ``typical_planner``'s steps (a typical random draw).
    """
    by_task = traces_by_task(traces)
    out = {}
    for task, group in by_task.items():
        draws = [s for t in group if t.planner == typical_planner for s in t.scores]
        if not draws:
            raise ConfigError(
                f"task {task!r} has no recorded runs and no campaigns of {typical_planner!r} to "
                f"take its typical score from; add {typical_planner} to the planners"
            )
        typical = TaskReference.from_scores(task, draws).typical
        out[task] = TaskReference(task, _best_found(group), typical)
    return out


def best_known(
    references: Mapping[str, TaskReference], traces: Iterable[CampaignTrace]
) -> dict[str, TaskReference]:
    """``references`` with each best raised to the best score a campaign found, if higher.

    A campaign that beats the recorded best would otherwise be clipped to zero regret
    alongside every other one that did, and those campaigns would tie however far apart
    their scores are.
    """
    by_task = traces_by_task(traces)
    out = dict(references)
    for task, group in by_task.items():
        if task in out:
            best = max(out[task].best, _best_found(group))
            out[task] = TaskReference(task, best, out[task].typical)
    return out


def _best_found(traces: Iterable[CampaignTrace]) -> float:
    return max((s for t in traces for s in t.scores if s is not None), default=-math.inf)


def _synthetic(seeds: Iterable[int], suffix: str = "") -> tuple[str, ...]:
    seeds = list(seeds)
    return tuple(f"{name}?seed={s}{suffix}" for name in ("synth_cls", "synth_reg") for s in seeds)


# Learned planners learn from the shipped reference runs of the training tasks: the
# transformer offline, PPO by acting on them replayed.
_SYNTHETIC_TRAINING = {
    "transformer": PlannerTraining(SYNTHETIC, 300, planner_options={"n_candidates": 8}),
    "ppo-sb3": PlannerTraining(
        REPLAY, 512, {"env_kwargs": {"source": SYNTHETIC, "missing": "nearest"}}
    ),
}
_CPU_TASKS = _synthetic((1000,), "&rows=2500")  # 500 validation rows each
_FAST_TASKS = _synthetic((1000, 1001), "&rows=2500")  # the cpu suite's and two more
_FAST_TRAIN_ROWS = 1500  # and 1500 training rows
_EPOCHS = {"train.epochs": 10}

#: The suites by name.
BENCHMARK_SUITES: dict[str, BenchmarkSuite] = {
    suite.name: suite
    for suite in (
        BenchmarkSuite(
            "fast",
            3,
            "Synthetic-v0 answered by a surrogate (a forest of randomized trees) fitted on 1024 "
            "recorded runs per task (Sobol, two seeds), with their seed noise; four tables; "
            "seconds per planner",
            env_id=SURROGATE,
            source=SYNTHETIC,
            test_tasks=_FAST_TASKS,
            train_tasks=get_suite("synthetic").tasks,
            budget=20,
            fixed=_EPOCHS,
            env_kwargs={"source": SYNTHETIC, "model": str(SUITE_MODELS / "Synthetic-v0.npz")},
            data=SUITE_RUNS,
            training=_SYNTHETIC_TRAINING,
        ),
        BenchmarkSuite(
            "cpu",
            1,
            "Synthetic-v0 trained for real on two of the fast suite's tasks; minutes per planner",
            env_id=SYNTHETIC,
            source=SYNTHETIC,
            test_tasks=_CPU_TASKS,
            train_tasks=get_suite("synthetic").tasks,
            budget=20,
            fixed=_EPOCHS,
            data=SUITE_RUNS,
            training=_SYNTHETIC_TRAINING,
        ),
        BenchmarkSuite(
            "gpu",
            1,
            "SeqArch-v0 at width 256 trained for real on harder sequence tasks; needs CUDA",
            env_id=SEQARCH,
            source=SEQARCH,
            test_tasks=("mqar?n_pairs=16&vocab=128", "copy?length=32"),
            train_tasks=("mqar", "copy", "reverse", "modsum", "parity", "brackets"),
            budget=10,
            fixed={"arch.width": 256},
            env_kwargs={
                "device": "cuda",
                "max_params": None,
                "max_train_flops": None,
                "max_train_steps": None,
            },
            requires="cuda",
        ),
        BenchmarkSuite(
            "multi-fidelity",
            1,
            "Synthetic-v0 trained for real on the cpu suite's tasks, runs continued and "
            "forked; each campaign spends the training samples of 8 runs of 9 epochs",
            env_id=SYNTHETIC,
            source=SYNTHETIC,
            test_tasks=_CPU_TASKS,
            train_tasks=get_suite("synthetic").tasks,
            budget=100,
            fidelity=(1, 9),
            cost_budget={"samples": 8 * 9 * _FAST_TRAIN_ROWS},
        ),
    )
}


def benchmark_suite(name: str) -> BenchmarkSuite:
    """The suite called ``name``.

    Raises:
        NotFound: an unknown name, with a suggestion and the known suites.
    """
    if not isinstance(name, str) or name not in BENCHMARK_SUITES:
        raise NotFound(
            f"unknown benchmark suite {shorten(name)}; {did_you_mean(name, BENCHMARK_SUITES)}"
            f"choose one of {', '.join(BENCHMARK_SUITES)} (`researchgym leaderboard --list`)"
        )
    return BENCHMARK_SUITES[name]
