"""Leaderboard statistics over campaign traces: regret, anytime curves, ranks, intervals, tests.

Everything here is a pure function of plain data (no env, no store), so a
harness, a report or a notebook computes the same numbers from the same traces.

A :class:`CampaignTrace` is what one campaign of a planner on a task did: the
validation score of each step (``None`` where the step failed) and its compute
seconds. A :class:`TaskReference` says what is good on the task: the best
recorded (or best known) score and a *typical* one, by default the median score
of random search. The *normalized regret* of having found ``found`` is::

    (best - found) / (best - typical)     clipped to [0, 1]

0 means the campaign reached the best known score (or beat it), 1 that it found
nothing better than a typical random metaprogram. Failing to find anything
(every step so far failed) also counts as 1. Clipping at 1 keeps one campaign
that found only poor metaprograms from outweighing many good ones in a mean.

Each campaign is scored by :func:`score_campaigns` into a :class:`CampaignScore`:

* ``final``: regret of the best score found by the last step;
* ``auc_steps``: the mean best-so-far regret over steps 1..T, i.e. the area under
  the anytime curve divided by the horizon T;
* ``auc_seconds``: the area under the best-so-far regret as a step function of
  cumulative compute seconds, on a log-seconds axis, divided by the length of the
  task's horizon ``log(stop / start)``. The horizon is shared by every planner
  of a task: from the first step any campaign finished to the longest campaign's
  total (or given). A campaign that ends early holds its final regret to the end.

Boards are then summarized per planner from the scores of a complete board (every
planner on every (task, seed)): :func:`average_ranks`, :func:`bootstrap_ci` of
the mean final regret, :func:`paired_test` against the best baseline, all
gathered by :func:`leaderboard` into :class:`LeaderboardRow` objects that
:func:`leaderboard_markdown` renders. :func:`compare_boards` measures how two
boards' planner orders agree (Kendall tau and the pairs they order differently).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.stats import kendalltau, rankdata, wilcoxon

from researchgym.errors import ConfigError, NotFound, did_you_mean, shorten

if TYPE_CHECKING:
    from researchgym.planning import CampaignResult

__all__ = [
    "BoardAgreement",
    "CampaignScore",
    "CampaignTrace",
    "LeaderboardRow",
    "PairedTest",
    "TaskReference",
    "average_ranks",
    "bootstrap_ci",
    "compare_boards",
    "leaderboard",
    "leaderboard_markdown",
    "paired_test",
    "rank_intervals",
    "score_campaigns",
    "seconds_curve",
    "seconds_grid",
    "seconds_horizon",
    "steps_curve",
    "traces_by_task",
]


@dataclass(frozen=True)
class CampaignTrace:
    """What one campaign of ``planner`` on ``task`` did, step by step.

    Args:
        planner: name of the planner on the board.
        task: the task the campaign ran on.
        seed: the campaign's seed.
        scores: validation score of each step (higher is better), ``None`` where it failed.
        seconds: compute seconds of each step (not cumulative).
    """

    planner: str
    task: str
    seed: int
    scores: tuple[float | None, ...]
    seconds: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.scores or len(self.scores) != len(self.seconds):
            raise ConfigError(
                f"campaign {self.planner!r} on {self.task!r} (seed {self.seed}) needs one score and "
                f"one compute time per step, at least one step; got {len(self.scores)} scores and "
                f"{len(self.seconds)} times"
            )
        if not all(math.isfinite(s) and s >= 0 for s in self.seconds):
            raise ConfigError(
                f"campaign {self.planner!r} on {self.task!r} (seed {self.seed}) has step times "
                f"{shorten(self.seconds)}; give each step's compute seconds as a finite number >= 0"
            )

    @classmethod
    def from_result(cls, result: CampaignResult, planner: str | None = None) -> CampaignTrace:
        """The trace of a seeded campaign run by :func:`researchgym.planning.run_campaign`."""
        if result.seed is None:
            raise ConfigError(
                f"campaign of {result.agent!r} on {result.task!r} has no seed; run campaigns "
                "with a seed to compare them on a board"
            )
        return cls(
            planner or result.agent,
            result.task,
            result.seed,
            tuple(s.score for s in result.steps),
            tuple(s.seconds for s in result.steps),
        )

    def best_so_far(self) -> np.ndarray:
        """Best score after each step, NaN until a step succeeds."""
        scores = np.array([np.nan if s is None else s for s in self.scores], dtype=float)
        return np.fmax.accumulate(scores)

    def elapsed(self) -> np.ndarray:
        """Cumulative compute seconds at the end of each step."""
        return np.cumsum(np.asarray(self.seconds, dtype=float))


@dataclass(frozen=True)
class TaskReference:
    """What counts as good on ``task``: the ``best`` known score and a ``typical`` one."""

    task: str
    best: float
    typical: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.best) and math.isfinite(self.typical)) or (
            self.best <= self.typical
        ):
            raise ConfigError(
                f"task {self.task!r} has best score {self.best!r} and typical score "
                f"{self.typical!r}; regret needs finite scores with best > typical (record more "
                "varied runs of the task)"
            )

    @classmethod
    def from_scores(cls, task: str, scores: Iterable[float | None]) -> TaskReference:
        """Best and median of ``scores`` (e.g. random search's), failures ranked below all."""
        values = np.array(
            [-np.inf if s is None or math.isnan(s) else s for s in scores], dtype=float
        )
        typical = float(np.median(values)) if values.size else -np.inf
        if not math.isfinite(typical):
            raise ConfigError(
                f"task {task!r} has {values.size} scores, half or more of them failures; record "
                "more runs that finish to set its reference"
            )
        return cls(task, float(values.max()), typical)

    def regret(self, found: float | None | np.ndarray) -> np.ndarray:
        """Normalized regret of having found ``found`` (NaN or ``None``: nothing yet)."""
        found = np.asarray(np.nan if found is None else found, dtype=float)
        raw = (self.best - found) / (self.best - self.typical)
        return np.where(np.isnan(found), 1.0, np.clip(raw, 0.0, 1.0))


@dataclass(frozen=True)
class CampaignScore:
    """One campaign's regret numbers (see the module docstring for their definitions)."""

    planner: str
    task: str
    seed: int
    final: float
    auc_steps: float
    auc_seconds: float


def steps_curve(trace: CampaignTrace, reference: TaskReference) -> np.ndarray:
    """Best-so-far normalized regret after each step."""
    return reference.regret(trace.best_so_far())


def seconds_horizon(traces: Iterable[CampaignTrace]) -> tuple[float, float]:
    """``(start, stop)`` seconds shared by campaigns: first step any finished, longest total."""
    elapsed = [t.elapsed() for t in traces]
    firsts = [e[e > 0][0] for e in elapsed if (e > 0).any()]
    stop = max((float(e[-1]) for e in elapsed), default=0.0)
    if not firsts or min(firsts) >= stop:
        raise ConfigError(
            f"campaigns ending at {stop!r} s span no compute time; scoring against seconds "
            "needs steps that report their compute seconds"
        )
    return float(min(firsts)), stop


def seconds_grid(horizon: tuple[float, float], points: int = 64) -> np.ndarray:
    """``points`` log-spaced seconds from ``horizon[0]`` to ``horizon[1]``."""
    return np.geomspace(horizon[0], horizon[1], points)


def _regret_by_steps_done(trace: CampaignTrace, reference: TaskReference) -> np.ndarray:
    """Regret after 0, 1, ..., T steps (1 before any step)."""
    return np.concatenate([[1.0], steps_curve(trace, reference)])


def seconds_curve(trace: CampaignTrace, reference: TaskReference, grid: np.ndarray) -> np.ndarray:
    """Best-so-far regret at each time of ``grid``: of the steps finished by then."""
    done = np.searchsorted(trace.elapsed(), grid, side="right")
    return _regret_by_steps_done(trace, reference)[done]


def _auc_log_seconds(
    trace: CampaignTrace, reference: TaskReference, horizon: tuple[float, float]
) -> float:
    start, stop = horizon
    edges = np.log(np.concatenate([[start], np.clip(trace.elapsed(), start, stop), [stop]]))
    area = np.sum(_regret_by_steps_done(trace, reference) * np.diff(edges))
    return float(np.clip(area / (edges[-1] - edges[0]), 0.0, 1.0))  # a mean of values in [0, 1]


def traces_by_task(traces: Iterable[CampaignTrace]) -> dict[str, list[CampaignTrace]]:
    """The traces grouped by task, tasks in order of their first trace."""
    out: dict[str, list[CampaignTrace]] = {}
    for t in traces:
        out.setdefault(t.task, []).append(t)
    return out


def score_campaigns(
    traces: Iterable[CampaignTrace],
    references: Mapping[str, TaskReference],
    *,
    horizons: Mapping[str, tuple[float, float]] | None = None,
) -> list[CampaignScore]:
    """Final regret and both areas under the anytime curve of each campaign, in input order.

    Args:
        traces: the campaigns, any planners and tasks.
        references: the reference of each task.
        horizons: ``(start, stop)`` seconds per task for ``auc_seconds`` (default: the
            :func:`seconds_horizon` of the task's campaigns, shared by its planners).
    """
    traces = list(traces)
    by_task = traces_by_task(traces)
    for task in by_task:
        if task not in references:
            raise NotFound(
                f"no reference for task {task!r}; {did_you_mean(task, references)}"
                f"known: {shorten(sorted(references))}"
            )
    spans = {
        task: (horizons[task] if horizons and task in horizons else seconds_horizon(group))
        for task, group in by_task.items()
    }
    for task, (start, stop) in spans.items():
        if not 0 < start < stop:
            raise ConfigError(
                f"task {task!r} has the seconds horizon {(start, stop)!r}; give (start, stop) "
                "with 0 < start < stop"
            )
    out = []
    for t in traces:
        reference = references[t.task]
        curve = steps_curve(t, reference)
        out.append(
            CampaignScore(
                t.planner,
                t.task,
                t.seed,
                float(curve[-1]),
                float(curve.mean()),
                _auc_log_seconds(t, reference, spans[t.task]),
            )
        )
    return out


def _finals(scores: Iterable[CampaignScore]) -> tuple[list[str], list[tuple[str, int]], np.ndarray]:
    """Planners, (task, seed) keys and the keys x planners matrix of final regret.

    Raises ConfigError unless every planner has exactly one campaign per key.
    """
    table: dict[tuple[str, int], dict[str, float]] = {}
    planners: dict[str, None] = {}
    for s in scores:
        row = table.setdefault((s.task, s.seed), {})
        if s.planner in row:
            raise ConfigError(
                f"planner {s.planner!r} has two campaigns on task {s.task!r} with seed {s.seed}; "
                "keep one campaign per planner, task and seed"
            )
        row[s.planner] = s.final
        planners[s.planner] = None
    if not table:
        raise ConfigError("no campaigns to compare; score some campaigns first")
    for (task, seed), row in table.items():
        missing = [p for p in planners if p not in row]
        if missing:
            raise ConfigError(
                f"the board is incomplete: {shorten(missing)} have no campaign on task {task!r} "
                f"with seed {seed}; run them or leave that task and seed out"
            )
    keys = list(table)
    return list(planners), keys, np.array([[table[k][p] for p in planners] for k in keys])


def _ranks_by_task(scores: Iterable[CampaignScore]) -> tuple[list[str], list[np.ndarray]]:
    """Planners and, per task, the seeds x planners ranks by final regret (1 = lowest, ties
    averaged)."""
    planners, keys, matrix = _finals(scores)
    ranks = rankdata(matrix, axis=1)
    tasks = np.array([task for task, _ in keys])
    return planners, [ranks[tasks == task] for task in dict.fromkeys(tasks)]


def average_ranks(scores: Iterable[CampaignScore]) -> dict[str, float]:
    """Each planner's rank by final regret per (task, seed), averaged over seeds, then tasks.

    Ranks start at 1 (lowest regret); tied planners share the average of their ranks.
    """
    planners, per_task = _ranks_by_task(scores)
    means = np.mean([ranks.mean(axis=0) for ranks in per_task], axis=0)
    return dict(zip(planners, means.tolist(), strict=True))


def rank_intervals(
    scores: Iterable[CampaignScore],
    *,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of each planner's :func:`average_ranks`.

    Resamples the seeds within each task (the tasks are fixed), reproducible for ``seed``.
    """
    planners, per_task = _ranks_by_task(scores)
    rng = np.random.default_rng(seed)
    means = np.mean(
        [
            ranks[rng.integers(0, len(ranks), (resamples, len(ranks)))].mean(axis=1)
            for ranks in per_task
        ],
        axis=0,
    )
    low, high = _percentiles(means, confidence)
    return {p: (float(lo), float(hi)) for p, lo, hi in zip(planners, low, high, strict=True)}


def _percentiles(samples: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence={confidence!r} must be between 0 and 1, e.g. 0.95")
    tail = (1 - confidence) / 2
    low, high = np.quantile(samples, [tail, 1 - tail], axis=0)
    return low, high


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    *,
    groups: Sequence[Hashable] | None = None,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of ``values``.

    Resamples the values with replacement ``resamples`` times; the same ``seed``
    gives the same interval. With ``groups`` (one label per value, e.g. its task) the
    bootstrap is stratified: each resample draws as many values from each group as it
    has, so the groups' fixed differences (easy and hard tasks) add no width, only the
    spread within them (seeds) does.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise ConfigError(
            f"bootstrap needs a non-empty list of numbers, got {shorten(values.tolist())}"
        )
    labels = np.zeros(values.size) if groups is None else np.asarray(groups)
    if labels.shape != values.shape:
        raise ConfigError(
            f"bootstrap got {values.size} values but {labels.size} group labels; give one "
            "label per value"
        )
    rng = np.random.default_rng(seed)
    total = np.zeros(resamples)
    for label in dict.fromkeys(labels.tolist()):
        members = values[labels == label]
        total += members[rng.integers(0, members.size, (resamples, members.size))].sum(axis=1)
    low, high = _percentiles(total / values.size, confidence)
    return float(low), float(high)


@dataclass(frozen=True)
class PairedTest:
    """Planner ``planner`` against ``baseline`` on the same (task, seed) pairs.

    A win is a final regret lower than the baseline's by more than the tolerance,
    a tie one within it. ``p_value`` is the two-sided Wilcoxon signed-rank test of
    the paired differences, ties left out (1.0 when every pair ties).
    """

    planner: str
    baseline: str
    wins: int
    ties: int
    losses: int
    p_value: float

    @property
    def pairs(self) -> int:
        return self.wins + self.ties + self.losses

    @property
    def tie_rate(self) -> float:
        return self.ties / self.pairs


def paired_test(
    scores: Iterable[CampaignScore], planner: str, baseline: str, *, tolerance: float = 1e-9
) -> PairedTest:
    """Wins, ties, losses and Wilcoxon p-value of ``planner`` vs ``baseline`` by final regret."""
    planners, _, matrix = _finals(scores)
    for name in (planner, baseline):
        if name not in planners:
            raise NotFound(
                f"no campaigns of planner {name!r}; {did_you_mean(name, planners)}"
                f"on the board: {shorten(planners)}"
            )
    diff = matrix[:, planners.index(planner)] - matrix[:, planners.index(baseline)]
    diff[np.abs(diff) <= tolerance] = 0.0
    differs = diff != 0
    p_value = float(wilcoxon(diff[differs]).pvalue) if differs.any() else 1.0
    return PairedTest(
        planner,
        baseline,
        int((diff < 0).sum()),
        int((~differs).sum()),
        int((diff > 0).sum()),
        p_value,
    )


@dataclass(frozen=True)
class LeaderboardRow:
    """One planner on a board.

    Attributes:
        mean, ci_low, ci_high: mean final regret and its bootstrap confidence interval
            (seeds resampled within each task, see :func:`bootstrap_ci`).
        median: median final regret.
        auc_steps, auc_seconds: mean areas under the anytime curves.
        average_rank: see :func:`average_ranks`.
        versus: paired test against the best baseline (``None`` for that baseline).
    """

    planner: str
    campaigns: int
    mean: float
    ci_low: float
    ci_high: float
    median: float
    auc_steps: float
    auc_seconds: float
    average_rank: float
    versus: PairedTest | None


def leaderboard(
    scores: Iterable[CampaignScore],
    *,
    baselines: Sequence[str] | None = None,
    tolerance: float = 1e-9,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> list[LeaderboardRow]:
    """One row per planner, best (lowest mean final regret, then average rank) first.

    Args:
        scores: the campaigns of a complete board (every planner on every task and seed).
        baselines: planners to compare against; the one with the lowest mean final
            regret is the *best baseline* that every other planner is tested against
            (default: all planners, so the best planner is the reference).
        tolerance: regret difference below which a paired campaign is a tie.
        confidence, resamples, seed: of the bootstrap intervals (see :func:`bootstrap_ci`).
    """
    scores = list(scores)
    planners, keys, matrix = _finals(scores)
    tasks = [task for task, _ in keys]
    ranks = average_ranks(scores)
    candidates = list(baselines) if baselines is not None else planners
    for name in candidates:
        if name not in planners:
            raise NotFound(
                f"baseline {name!r} has no campaigns; {did_you_mean(name, planners)}"
                f"on the board: {shorten(planners)}"
            )
    if not candidates:
        raise ConfigError("baselines=[] names no planner; name at least one baseline")
    means = dict(zip(planners, matrix.mean(axis=0).tolist(), strict=True))
    reference = min(candidates, key=lambda p: (means[p], ranks[p]))
    rows = []
    for column, planner in enumerate(planners):
        finals = matrix[:, column]
        mine = [s for s in scores if s.planner == planner]
        low, high = bootstrap_ci(
            finals, groups=tasks, confidence=confidence, resamples=resamples, seed=seed
        )
        rows.append(
            LeaderboardRow(
                planner,
                len(finals),
                means[planner],
                low,
                high,
                float(np.median(finals)),
                float(np.mean([s.auc_steps for s in mine])),
                float(np.mean([s.auc_seconds for s in mine])),
                ranks[planner],
                None
                if planner == reference
                else paired_test(scores, planner, reference, tolerance=tolerance),
            )
        )
    return sorted(rows, key=lambda r: (r.mean, r.average_rank))


def leaderboard_markdown(rows: Sequence[LeaderboardRow], digits: int = 3) -> str:
    """The board as a Markdown table, one line per planner (ties: the paired tie rate)."""
    f = f".{digits}f"
    lines = [
        (
            "| planner | campaigns | mean regret (CI) | median | AUC steps | AUC log-seconds "
            "| avg rank | W/T/L vs best baseline | p | ties |"
        ),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for r in rows:
        versus = (
            "baseline | - | -"
            if r.versus is None
            else f"{r.versus.wins}/{r.versus.ties}/{r.versus.losses} vs {r.versus.baseline} "
            f"| {r.versus.p_value:.2g} | {r.versus.tie_rate:.0%}"
        )
        lines.append(
            f"| {r.planner} | {r.campaigns} | {r.mean:{f}} ({r.ci_low:{f}}-{r.ci_high:{f}}) "
            f"| {r.median:{f}} | {r.auc_steps:{f}} | {r.auc_seconds:{f}} "
            f"| {r.average_rank:.2f} | {versus} |"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class BoardAgreement:
    """How two boards order the same planners.

    Attributes:
        tau: Kendall's tau-b of the two orders (1: same order, -1: reversed).
        p_value: of the test that the orders are unrelated.
        discordant: the pairs of planners the boards order differently, as the first board does.
    """

    tau: float
    p_value: float
    discordant: list[tuple[str, str]]


def compare_boards(first: Mapping[str, float], second: Mapping[str, float]) -> BoardAgreement:
    """Kendall tau between two boards' planner orders and the pairs they disagree on.

    Args:
        first, second: a sort key per planner on each board, lower is better (mean final
            regret, average rank, or the position in the board). Both name the same planners.
    """
    if set(first) != set(second) or len(first) < 2:
        raise ConfigError(
            f"boards with planners {shorten(sorted(first))} and {shorten(sorted(second))} "
            "cannot be compared; give both boards the same two or more planners"
        )
    planners = sorted(first, key=lambda p: (first[p], p))
    tau, p_value = kendalltau([first[p] for p in planners], [second[p] for p in planners])
    discordant = [
        (a, b)
        for a, b in itertools.combinations(planners, 2)
        if (first[a] - first[b]) * (second[a] - second[b]) < 0
    ]
    return BoardAgreement(float(tau), float(p_value), discordant)
