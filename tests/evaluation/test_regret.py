"""Normalized regret on replayed held-out tasks: bounds, curves, summaries, plots."""

from __future__ import annotations

import json

import numpy as np
import pytest

from researchgym.envs.replay import load_runs, pinned_settings
from researchgym.evaluation import (
    CampaignRegret,
    RegretBench,
    markdown_table,
    plot_anytime,
    summarize,
)
from researchgym.planning import PlannerError, SearchPlanner, make_planner

SOURCE = "researchgym/Synthetic-v0"


@pytest.fixture(scope="module")
def bench():
    bench = RegretBench(SOURCE, budget=5)
    yield bench
    bench.close()


class Fixed(SearchPlanner):
    """Proposes one metaprogram every step."""

    name = "fixed"

    def __init__(self, metaprogram):
        self.metaprogram = metaprogram

    def propose(self, observation):
        return dict(self.metaprogram)


def test_bounds_come_from_the_recorded_runs_of_the_held_out_tasks(bench):
    runs = load_runs(None, SOURCE)
    task = bench.tasks[0]
    scores = [json.loads(r["val_metrics"])["score"] for r in runs if r["task"] == task]
    assert bench.bounds[task] == (min(scores), max(scores))
    assert bench.regret(task, max(scores)) == 0.0
    assert bench.regret(task, min(scores)) == 1.0
    assert bench.regret(task, None) == 1.0
    assert bench.fixed == pinned_settings(runs) == {"train.epochs": 10}


def test_the_best_recorded_run_has_zero_regret_and_the_worst_one(bench):
    task = bench.tasks[0]
    runs = [r for r in load_runs(None, SOURCE) if r["task"] == task]
    best = max(runs, key=lambda r: json.loads(r["val_metrics"])["score"])
    worst = min(runs, key=lambda r: json.loads(r["val_metrics"])["score"])
    one_task = RegretBench(SOURCE, tasks=[task], budget=3)
    [good] = one_task.run(Fixed(json.loads(best["metaprogram"])), [0], name="best")
    [bad] = one_task.run(Fixed(json.loads(worst["metaprogram"])), [0], name="worst")
    one_task.close()
    assert good.curve == (0.0, 0.0, 0.0) and bad.curve == (1.0, 1.0, 1.0)


def test_random_campaigns_have_non_increasing_curves_in_range(bench):
    results = bench.run(make_planner("random"), range(2))
    assert len(results) == 2 * len(bench.tasks)
    for r in results:
        assert len(r.curve) == 5 and all(0.0 <= v <= 1.0 for v in r.curve)
        assert all(a >= b for a, b in zip(r.curve, r.curve[1:]))
        assert r.final == r.curve[-1]
    # random settings are never recorded: the nearest recorded runs answer them
    assert any(r.final < 1.0 for r in results)


def test_summaries_tables_and_plots(tmp_path):
    finals = {"a": [0.0, 0.1, 0.2, 0.4], "b": [0.5, 0.5]}
    results = [
        CampaignRegret(p, "t", i, (1.0, v)) for p, vs in finals.items() for i, v in enumerate(vs)
    ]
    rows = summarize(results)
    assert [r.planner for r in rows] == ["a", "b"]
    q25, median, q75 = np.percentile(finals["a"], [25, 50, 75])
    assert (rows[0].median, rows[0].q25, rows[0].q75, rows[0].campaigns) == pytest.approx(
        (median, q25, q75, 4)
    )
    table = markdown_table(rows)
    assert "| a | 4 | 0.1500 |" in table and table.count("\n") == 3
    assert plot_anytime(results, tmp_path / "anytime.png").stat().st_size > 1000


def test_envs_without_held_out_tasks_or_runs_are_clear_errors():
    with pytest.raises(PlannerError, match="no held-out tasks"):
        RegretBench("researchgym/Tabular-v0")
    with pytest.raises(ValueError, match="no tasks of its own"):
        RegretBench("researchgym/Replay-v0")
    with pytest.raises(ValueError, match="not a registered env"):
        RegretBench("researchgym/Nothing-v0")
