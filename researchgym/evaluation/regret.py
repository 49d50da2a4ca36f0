"""Normalized regret of planners on recorded runs: the numbers leaderboards compare.

A campaign on a task of a replay env (``researchgym/Replay-v0`` with
``missing="nearest"``: the nearest recorded run answers every step) only ever
gets recorded results, so the task's recorded validation scores bound what it
can find. Its *normalized regret* after each step is::

    (best recorded score - best score found so far) / (best recorded - worst recorded)

0 means the campaign found the best recorded run, 1 that it found nothing better
than the worst (or nothing that finished). :class:`RegretBench` runs planners
for many seeds on chosen tasks (usually a suite's held-out ones) and returns one
:class:`CampaignRegret` per campaign; :func:`summarize` reduces them to median and
interquartile range per planner, :func:`markdown_table` renders that, and
:func:`plot_anytime` draws the median best-so-far regret per step.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from researchgym.planning import Planner, PlannerError, run_campaign

__all__ = [
    "CampaignRegret",
    "RegretBench",
    "RegretSummary",
    "markdown_table",
    "plot_anytime",
    "summarize",
]


@dataclass(frozen=True)
class CampaignRegret:
    """One campaign's normalized regret: ``curve[i]`` after step ``i``, ``final`` at the end."""

    planner: str
    task: str
    seed: int
    curve: tuple[float, ...]

    @property
    def final(self) -> float:
        return self.curve[-1]


@dataclass(frozen=True)
class RegretSummary:
    """Final normalized regret of one planner over its campaigns."""

    planner: str
    campaigns: int
    median: float
    q25: float
    q75: float
    mean: float


class RegretBench:
    """Campaigns of planners on recorded runs of ``source``, scored by normalized regret.

    Each step is answered by the recorded run nearest to the planner's choice
    (``missing="nearest"``); the steps' ``answered_by`` says which.

    Args:
        source: the env whose recorded runs answer the steps (e.g. ``researchgym/Synthetic-v0``).
        tasks: tasks to run campaigns on (default: the suite's held-out tasks).
        budget: experiments per campaign.
        data: store of the recorded runs (default: the shipped reference runs).
        fixed: settings pinned in every step (default: those with one value in all recorded runs).
        store: where the campaigns' steps are recorded (default: nowhere).
    """

    def __init__(
        self,
        source: str,
        *,
        tasks: Sequence[str] | None = None,
        budget: int = 20,
        data: str | Path | None = None,
        fixed: Mapping[str, Any] | None = None,
        store: Any = False,
    ):
        from researchgym.envs.replay import load_runs, make_replay_env, pinned_settings
        from researchgym.envs.suites import suite_of

        suite = suite_of(source)
        self.tasks = list(tasks if tasks is not None else suite.held_out_tasks)
        if not self.tasks:
            raise PlannerError(
                f"{source}'s suite {suite.name!r} has no held-out tasks; use an env that has some "
                "(researchgym/Synthetic-v0) or name the tasks to measure on"
            )
        runs = load_runs(data, source)
        self.bounds: dict[str, tuple[float, float]] = {}
        for task in self.tasks:
            scores = [
                json.loads(r["val_metrics"])["score"]
                for r in runs
                if r["task"] == task and r["status"] == "ok"
            ]
            if len(set(scores)) < 2:
                raise PlannerError(
                    f"task {task!r} needs recorded runs of {source} with at least two different scores "
                    f"to normalize regret ({len(scores)} finished runs recorded); record some with "
                    f"`researchgym generate --env {source} --task '{task}'`"
                )
            self.bounds[task] = (min(scores), max(scores))
        self.source = source
        self.budget = budget
        self.fixed = dict(fixed) if fixed is not None else pinned_settings(runs)
        self.env = make_replay_env(
            source, data=runs, missing="nearest", budget=budget, tasks=self.tasks, store=store
        )

    def regret(self, task: str, best: float | None) -> float:
        """Normalized regret of having found ``best`` (``None``: nothing finished) on ``task``."""
        low, high = self.bounds[task]
        return 1.0 if best is None else float(np.clip((high - best) / (high - low), 0.0, 1.0))

    def run(
        self,
        planner: Planner,
        seeds: Iterable[int],
        *,
        name: str | None = None,
        progress: Callable[[], None] | None = None,
    ) -> list[CampaignRegret]:
        """One campaign of ``planner`` per (task, seed), reported as ``name`` (default: its name)."""
        name = name or planner.name
        out = []
        for task in self.tasks:
            for seed in seeds:
                result = run_campaign(
                    self.env, planner, seed=seed, fixed=self.fixed, options={"task": task}
                )
                curve = tuple(self.regret(task, best) for best in result.best_so_far())
                out.append(CampaignRegret(name, task, seed, curve))
                if progress is not None:
                    progress()
        return out

    def close(self) -> None:
        self.env.close()


def summarize(results: Iterable[CampaignRegret]) -> list[RegretSummary]:
    """Median, quartiles and mean of the final regret per planner, in first-seen order."""
    by_planner: dict[str, list[float]] = {}
    for r in results:
        by_planner.setdefault(r.planner, []).append(r.final)
    rows = []
    for planner, finals in by_planner.items():
        q25, median, q75 = np.percentile(finals, [25, 50, 75])
        rows.append(
            RegretSummary(
                planner, len(finals), float(median), float(q25), float(q75), float(np.mean(finals))
            )
        )
    return rows


def markdown_table(rows: Sequence[RegretSummary]) -> str:
    """The summary as a Markdown table (median and interquartile range of final regret)."""
    lines = [
        "| planner | campaigns | median regret | IQR (25%-75%) | mean |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r.planner} | {r.campaigns} | {r.median:.4f} | {r.q25:.4f}-{r.q75:.4f} | {r.mean:.4f} |"
        )
    return "\n".join(lines)


def plot_anytime(results: Sequence[CampaignRegret], path: str | Path, title: str = "") -> Path:
    """Median (and interquartile band of) best-so-far normalized regret per step, per planner."""
    from researchgym.plotting import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    by_planner: dict[str, list[tuple[float, ...]]] = {}
    for r in results:
        by_planner.setdefault(r.planner, []).append(r.curve)
    for planner, curves in by_planner.items():
        a = np.array(curves)
        steps = np.arange(1, a.shape[1] + 1)
        q25, median, q75 = np.percentile(a, [25, 50, 75], axis=0)
        ax.plot(steps, median, label=planner)
        ax.fill_between(steps, q25, q75, alpha=0.15)
    ax.set_yscale("symlog", linthresh=0.01)
    ax.set_xlabel("experiment")
    ax.set_ylabel("normalized regret (best so far)")
    ax.set_title(title)
    ax.legend()
    return save_figure(fig, path)
