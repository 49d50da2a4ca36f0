"""Leaderboard plots: anytime regret curves of a task and the planners' average ranks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from researchgym.errors import ConfigError, shorten
from researchgym.evaluation.stats import (
    CampaignScore,
    CampaignTrace,
    TaskReference,
    average_ranks,
    rank_intervals,
    seconds_curve,
    seconds_grid,
    seconds_horizon,
    steps_curve,
)
from researchgym.plotting import pyplot, save_figure

__all__ = ["plot_ranks", "plot_task_curves"]


def _median_band(ax, x: np.ndarray, curves: list[np.ndarray], label: str, step: bool) -> None:
    """The median of ``curves`` at ``x`` and their interquartile band, as steps or a line."""
    q25, median, q75 = np.percentile(np.array(curves), [25, 50, 75], axis=0)
    (line,) = ax.plot(x, median, drawstyle="steps-post" if step else "default", label=label)
    ax.fill_between(x, q25, q75, step="post" if step else None, alpha=0.15, color=line.get_color())


def plot_task_curves(
    traces: Sequence[CampaignTrace],
    reference: TaskReference,
    path: str | Path,
    *,
    horizon: tuple[float, float] | None = None,
    points: int = 64,
    title: str = "",
) -> Path:
    """Median (and interquartile band) best-so-far regret per planner on one task.

    Left against steps, right against cumulative compute seconds on the task's
    log-spaced grid (``horizon``, default :func:`seconds_horizon` of ``traces``).
    A campaign that ended early (by a cost budget or a stop) keeps its final regret
    to the end of its planner's longest campaign.
    """
    others = sorted({t.task for t in traces} - {reference.task})
    if others:
        raise ConfigError(
            f"campaigns on tasks {shorten(others)} given for a plot of task {reference.task!r}; "
            "pass the campaigns of one task"
        )
    grid = seconds_grid(horizon or seconds_horizon(traces), points)
    by_planner: dict[str, list[CampaignTrace]] = {}
    for t in traces:
        by_planner.setdefault(t.planner, []).append(t)
    plt = pyplot()
    fig, (ax_steps, ax_seconds) = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for planner, group in by_planner.items():
        longest = max(len(t.scores) for t in group)
        steps = np.arange(1, longest + 1)
        curves = [
            np.pad(steps_curve(t, reference), (0, longest - len(t.scores)), mode="edge")
            for t in group
        ]
        _median_band(ax_steps, steps, curves, planner, step=False)
        curves = [seconds_curve(t, reference, grid) for t in group]
        _median_band(ax_seconds, grid, curves, planner, step=True)
    ax_steps.xaxis.get_major_locator().set_params(integer=True)
    ax_steps.set_xlabel("experiment")
    ax_steps.set_ylabel("normalized regret (best so far)")
    ax_seconds.set_xscale("log")
    ax_seconds.set_xlabel("compute seconds")
    ax_steps.legend()
    fig.suptitle(title or reference.task)
    return save_figure(fig, path)


def plot_ranks(
    scores: Iterable[CampaignScore],
    path: str | Path,
    *,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
    title: str = "",
) -> Path:
    """Average rank of each planner (best at the top) with its bootstrap interval."""
    scores = list(scores)
    ranks = average_ranks(scores)
    intervals = rank_intervals(scores, confidence=confidence, resamples=resamples, seed=seed)
    planners = sorted(ranks, key=ranks.__getitem__, reverse=True)
    y = np.arange(len(planners))
    mean = np.array([ranks[p] for p in planners])
    # a percentile interval need not contain the mean; draw no whisker on that side then
    low = np.maximum(mean - np.array([intervals[p][0] for p in planners]), 0)
    high = np.maximum(np.array([intervals[p][1] for p in planners]) - mean, 0)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 0.9 + 0.4 * len(planners)))
    ax.errorbar(mean, y, xerr=[low, high], fmt="o", capsize=3)
    ax.set_yticks(y, planners)
    ax.set_xlim(0.8, len(planners) + 0.2)
    ax.set_xlabel(f"average rank by final regret ({confidence:.0%} interval)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title)
    return save_figure(fig, path)
