"""Leaderboard statistics against small boards whose numbers are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from researchgym.errors import ConfigError, NotFound
from researchgym.evaluation import (
    CampaignScore,
    CampaignTrace,
    TaskReference,
    average_ranks,
    bootstrap_ci,
    compare_boards,
    leaderboard,
    leaderboard_markdown,
    paired_test,
    plot_ranks,
    plot_task_curves,
    rank_intervals,
    score_campaigns,
    seconds_curve,
    seconds_horizon,
    steps_curve,
)
from researchgym.planning.campaign import CampaignResult, StepRecord

# t1: regret = (1 - found) / (1 - 0.5) = 2 (1 - found);  t2: regret = (10 - found) / 4.
REFERENCES = {"t1": TaskReference("t1", 1.0, 0.5), "t2": TaskReference("t2", 10.0, 6.0)}
# Seconds per step: A 1 s each (done at 1, 2, 3 s), B 2 s each (2, 4, 6), C 4, 1, 1 (4, 5, 6).
SECONDS = {"A": (1.0, 1.0, 1.0), "B": (2.0, 2.0, 2.0), "C": (4.0, 1.0, 1.0)}
SCORES = {
    # planner, task, seed: scores           best-so-far regret   final  AUC steps
    ("A", "t1", 0): (0.5, 0.75, 1.0),  # 1, .5, 0            0      .5
    ("A", "t1", 1): (None, 0.75, 0.5),  # 1, .5, .5          .5     2/3
    ("B", "t1", 0): (0.75, None, 0.9),  # .5, .5, .2         .2     .4
    ("B", "t1", 1): (1.0, 0.2, 0.2),  # 0, 0, 0              0      0
    ("C", "t1", 0): (0.25, 0.25, 0.25),  # 1, 1, 1 (clipped) 1      1
    ("C", "t1", 1): (0.75, 0.75, 0.75),  # .5, .5, .5        .5     .5
    ("A", "t2", 0): (8.0, 9.0, 12.0),  # .5, .25, 0 (clipped) 0     .25
    ("A", "t2", 1): (6.0, 6.0, 6.0),  # 1, 1, 1              1      1
    ("B", "t2", 0): (9.0, 9.0, 9.0),  # .25, .25, .25        .25    .25
    ("B", "t2", 1): (None, None, None),  # 1, 1, 1 (nothing) 1      1
    ("C", "t2", 0): (10.0, 2.0, 2.0),  # 0, 0, 0             0      0
    ("C", "t2", 1): (8.0, None, 8.0),  # .5, .5, .5          .5     .5
}
TRACES = [CampaignTrace(p, t, s, scores, SECONDS[p]) for (p, t, s), scores in SCORES.items()]
FINALS = {
    ("A", "t1", 0): 0.0,
    ("A", "t1", 1): 0.5,
    ("B", "t1", 0): 0.2,
    ("B", "t1", 1): 0.0,
    ("C", "t1", 0): 1.0,
    ("C", "t1", 1): 0.5,
    ("A", "t2", 0): 0.0,
    ("A", "t2", 1): 1.0,
    ("B", "t2", 0): 0.25,
    ("B", "t2", 1): 1.0,
    ("C", "t2", 0): 0.0,
    ("C", "t2", 1): 0.5,
}


@pytest.fixture(scope="module")
def scores():
    return score_campaigns(TRACES, REFERENCES)


def _trace(planner, task, seed):
    return TRACES[list(SCORES).index((planner, task, seed))]


def test_regret_is_normalized_by_the_best_and_the_typical_score_and_clipped():
    ref = REFERENCES["t1"]
    assert ref.regret(0.75) == 0.5 and ref.regret(1.0) == 0.0
    assert ref.regret(1.5) == 0.0  # better than the best known: no regret
    assert ref.regret(0.0) == 1.0  # worse than typical: clipped at 1
    assert ref.regret(None) == 1.0 and ref.regret(float("nan")) == 1.0  # nothing found
    assert ref.regret(np.array([np.nan, 0.9, 0.5])) == pytest.approx([1.0, 0.2, 1.0])


def test_a_reference_from_scores_takes_the_best_and_the_median_failures_lowest():
    # sorted: failure (lowest), 0.2, 0.4, 0.8 -> median (0.2 + 0.4) / 2
    ref = TaskReference.from_scores("t", [0.4, None, 0.8, 0.2])
    assert (ref.best, ref.typical) == pytest.approx((0.8, 0.3))
    with pytest.raises(ConfigError, match="half or more of them failures"):
        TaskReference.from_scores("t", [None, 0.5, float("nan"), 0.6])
    with pytest.raises(ConfigError, match="best > typical"):
        TaskReference("t", 0.5, 0.5)


def test_anytime_curves_against_steps_and_seconds():
    a = _trace("A", "t1", 0)
    assert steps_curve(a, REFERENCES["t1"]).tolist() == [1.0, 0.5, 0.0]
    # A finishes steps at 1, 2, 3 s: by 0.5 s nothing, by 1 s one step (regret 1), by 2.5 s two
    grid = np.array([0.5, 1.0, 2.5, 6.0])
    assert seconds_curve(a, REFERENCES["t1"], grid).tolist() == [1.0, 1.0, 0.5, 0.0]
    # the earliest finished step is A's at 1 s, the longest campaigns end at 6 s
    assert seconds_horizon(TRACES) == (1.0, 6.0)


def test_final_regret_and_areas_under_the_curves(scores):
    got = {(s.planner, s.task, s.seed): s for s in scores}
    assert {k: s.final for k, s in got.items()} == pytest.approx(FINALS)
    assert got["A", "t1", 1].auc_steps == pytest.approx(2 / 3)
    assert got["B", "t1", 0].auc_steps == pytest.approx(0.4)
    # log-seconds over [1 s, 6 s]:
    # A t1 seed 0: regret 1 on [1, 2], .5 on [2, 3], 0 after: (ln 2 + .5 ln 1.5) / ln 6 = 1/2
    assert got["A", "t1", 0].auc_seconds == pytest.approx(0.5)
    # B t1 seed 1: regret 1 until its first step ends at 2 s, then 0: ln 2 / ln 6
    assert got["B", "t1", 1].auc_seconds == pytest.approx(math.log(2) / math.log(6))
    # C t2 seed 0: regret 1 until 4 s, then 0: ln 4 / ln 6
    assert got["C", "t2", 0].auc_seconds == pytest.approx(math.log(4) / math.log(6))
    # a campaign that never finds anything has regret 1 throughout
    assert got["B", "t2", 1].auc_seconds == 1.0 and got["B", "t2", 1].auc_steps == 1.0


def test_a_given_horizon_replaces_the_shared_one():
    [score] = score_campaigns([_trace("B", "t1", 1)], REFERENCES, horizons={"t1": (1.0, 4.0)})
    assert score.auc_seconds == pytest.approx(math.log(2) / math.log(4))


def test_average_ranks_average_ties_then_seeds_then_tasks(scores):
    # final regrets and ranks per (task, seed):
    #   t1 s0: A 0, B .2, C 1    -> A 1,   B 2,   C 3
    #   t1 s1: A .5, B 0, C .5   -> A 2.5, B 1,   C 2.5
    #   t2 s0: A 0, B .25, C 0   -> A 1.5, B 3,   C 1.5
    #   t2 s1: A 1, B 1, C .5    -> A 2.5, B 2.5, C 1
    # per task: t1 A 1.75, B 1.5, C 2.75; t2 A 2, B 2.75, C 1.25
    assert average_ranks(scores) == pytest.approx({"A": 1.875, "B": 2.125, "C": 2.0})


def test_paired_tests_count_wins_ties_and_losses(scores):
    # A - B: t1 s0 -.2 (win), t1 s1 +.5 (loss), t2 s0 -.25 (win), t2 s1 0 (tie)
    test = paired_test(scores, "A", "B")
    assert (test.wins, test.ties, test.losses, test.pairs) == (2, 1, 1, 4)
    assert test.tie_rate == 0.25
    # signed ranks of -.2, -.25, +.5 are -1, -2, +3: W+ = W- = 3, as balanced as it gets
    assert test.p_value == pytest.approx(1.0)
    # a tolerance of .2 makes the first pair a tie too
    loose = paired_test(scores, "A", "B", tolerance=0.2 + 1e-9)
    assert (loose.wins, loose.ties, loose.losses) == (1, 2, 1)


def test_the_wilcoxon_p_value_of_a_planner_better_every_time():
    # six pairs, all won by distinct margins: exact two-sided p = 2 / 2**6
    base = [CampaignScore("base", "t", s, 0.5, 0, 0) for s in range(6)]
    good = [CampaignScore("good", "t", s, 0.4 - 0.05 * s, 0, 0) for s in range(6)]
    test = paired_test(base + good, "good", "base")
    assert (test.wins, test.ties, test.losses) == (6, 0, 0)
    assert test.p_value == pytest.approx(2 / 64)
    same = paired_test(
        base + [CampaignScore("same", "t", s, 0.5, 0, 0) for s in range(6)], "same", "base"
    )
    assert (same.ties, same.tie_rate, same.p_value) == (6, 1.0, 1.0)


def test_bootstrap_intervals_are_seeded_and_shrink_with_more_campaigns():
    # means of two resampled values from [0, 1] are 0, .5, 1 with chances 1/4, 1/2, 1/4
    assert bootstrap_ci([0.0, 1.0]) == (0.0, 1.0)
    assert bootstrap_ci([0.3, 0.3, 0.3]) == pytest.approx((0.3, 0.3))
    rng = np.random.default_rng(1)
    few, many = rng.uniform(size=10), rng.uniform(size=1000)
    low, high = bootstrap_ci(few, seed=3)
    assert low < few.mean() < high
    assert bootstrap_ci(few, seed=3) == (low, high) and bootstrap_ci(few, seed=4) != (low, high)
    m_low, m_high = bootstrap_ci(many, seed=3)
    assert m_low < many.mean() < m_high and m_high - m_low < (high - low) / 3
    narrow = bootstrap_ci(few, seed=3, confidence=0.5)
    assert low < narrow[0] < narrow[1] < high
    with pytest.raises(ConfigError, match="between 0 and 1"):
        bootstrap_ci(few, confidence=95)


def test_a_bootstrap_stratified_by_task_leaves_out_the_tasks_fixed_difference():
    # an easy task (regret 0 every seed) and a hard one (1 every seed): pooled resamples
    # mix them in any proportion, stratified ones always draw 3 of each, so mean = .5
    values, tasks = [0.0, 0.0, 0.0, 1.0, 1.0, 1.0], ["easy"] * 3 + ["hard"] * 3
    low, high = bootstrap_ci(values, seed=0)
    assert low < 0.5 < high and high - low > 0.4
    assert bootstrap_ci(values, groups=tasks) == pytest.approx((0.5, 0.5))
    # within a task the seeds still spread it: the hard task's 0.8 or 1.0 moves the mean
    spread = bootstrap_ci([0.0, 0.0, 0.8, 1.0], groups=["a", "a", "b", "b"], seed=0)
    assert spread == pytest.approx((0.4, 0.5))
    with pytest.raises(ConfigError, match="one label per value"):
        bootstrap_ci(values, groups=tasks[:2])


def test_rank_intervals_contain_the_average_rank_and_are_seeded(scores):
    ranks = average_ranks(scores)
    intervals = rank_intervals(scores, seed=1)
    assert intervals == rank_intervals(scores, seed=1)
    for planner, (low, high) in intervals.items():
        assert 1.0 <= low <= ranks[planner] <= high <= 3.0


def test_the_leaderboard_tests_every_planner_against_the_best_baseline(scores):
    rows = leaderboard(scores)
    # mean final regret: B (.2 + 0 + .25 + 1) / 4 = .3625, A (0 + .5 + 0 + 1) / 4 = .375, C .5
    assert [r.planner for r in rows] == ["B", "A", "C"]
    b, a, c = rows
    assert (b.mean, a.mean, c.mean) == pytest.approx((0.3625, 0.375, 0.5))
    assert (b.median, a.median, c.median) == pytest.approx((0.225, 0.25, 0.5))
    assert a.auc_steps == pytest.approx((0.5 + 2 / 3 + 0.25 + 1) / 4)
    assert (a.average_rank, a.campaigns) == (1.875, 4)
    assert all(r.ci_low <= r.mean <= r.ci_high for r in rows)
    assert b.versus is None and a.versus is not None and c.versus is not None
    assert (a.versus.baseline, a.versus.wins, a.versus.ties, a.versus.losses) == ("B", 2, 1, 1)
    # C - B: +.8, +.5, -.25, -.5
    assert (c.versus.wins, c.versus.ties, c.versus.losses) == (2, 0, 2)
    # with only C as a baseline, A and B are tested against C
    assert {
        r.planner: r.versus and r.versus.baseline for r in leaderboard(scores, baselines=["C"])
    } == {
        "A": "C",
        "B": "C",
        "C": None,
    }
    table = leaderboard_markdown(rows)
    lines = table.splitlines()
    assert len(lines) == 5 and lines[2].startswith("| B | 4 |") and "baseline | -" in lines[2]
    assert "| 1.88 | 2/1/1 vs B | 1 | 25% |" in lines[3]


def test_incomplete_or_unknown_boards_are_clear_errors(scores):
    with pytest.raises(ConfigError, match="incomplete.*'C'.*task 't2' with seed 1"):
        average_ranks(scores[:-1])
    with pytest.raises(ConfigError, match="two campaigns on task 't1' with seed 0"):
        average_ranks([*scores, scores[0]])
    with pytest.raises(NotFound, match="did you mean 'A'"):
        paired_test(scores, "A2", "B")
    with pytest.raises(NotFound, match="baseline 'D'"):
        leaderboard(scores, baselines=["D"])
    with pytest.raises(NotFound, match="no reference for task 't3'"):
        score_campaigns([CampaignTrace("A", "t3", 0, (1.0,), (1.0,))], REFERENCES)
    with pytest.raises(ConfigError, match="one score and one compute time per step"):
        CampaignTrace("A", "t1", 0, (1.0, 2.0), (1.0,))
    with pytest.raises(ConfigError, match="finite number >= 0"):
        CampaignTrace("A", "t1", 0, (1.0,), (-1.0,))
    with pytest.raises(ConfigError, match="0 < start < stop"):
        score_campaigns(TRACES, REFERENCES, horizons={"t1": (0.0, 6.0)})
    with pytest.raises(ConfigError, match="span no compute time"):
        seconds_horizon([CampaignTrace("A", "t1", 0, (1.0,), (0.0,))])


def test_kendall_tau_between_two_boards():
    first = {"a": 1, "b": 2, "c": 3, "d": 4}
    same = compare_boards(first, {"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4})
    assert (same.tau, same.discordant) == (pytest.approx(1.0), [])
    # one swapped pair of 4 planners: 5 concordant, 1 discordant pairs of 6 -> (5 - 1) / 6
    swapped = compare_boards(first, {"a": 2, "b": 1, "c": 3, "d": 4})
    assert swapped.tau == pytest.approx(2 / 3) and swapped.discordant == [("a", "b")]
    reversed_ = compare_boards(first, {"a": 4, "b": 3, "c": 2, "d": 1})
    assert reversed_.tau == pytest.approx(-1.0) and len(reversed_.discordant) == 6
    with pytest.raises(ConfigError, match="same two or more planners"):
        compare_boards(first, {"a": 1, "b": 2})


def test_a_trace_from_a_campaign_result():
    steps = [
        StepRecord(0, i, 2, "t1", {}, 0.0, "ok" if s is not None else "failed", s, None, 1.5)
        for i, s in enumerate([None, 0.75])
    ]
    trace = CampaignTrace.from_result(CampaignResult("random", "env", "t1", 3, steps))
    assert trace == CampaignTrace("random", "t1", 3, (None, 0.75), (1.5, 1.5))
    assert trace.elapsed().tolist() == [1.5, 3.0]
    with pytest.raises(ConfigError, match="has no seed"):
        CampaignTrace.from_result(CampaignResult("random", "env", "t1", None, steps))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.one_of(st.none(), st.floats(-5, 5)), st.floats(0, 100)),
        min_size=1,
        max_size=8,
    )
)
def test_curves_never_rise_and_every_regret_lies_in_0_1(steps):
    trace = CampaignTrace("p", "t", 0, *(tuple(c) for c in zip(*steps, strict=True)))
    reference = TaskReference("t", 1.0, 0.0)
    curve = steps_curve(trace, reference)
    assert np.all((0 <= curve) & (curve <= 1)) and np.all(np.diff(curve) <= 0)
    [score] = score_campaigns([trace], {"t": reference}, horizons={"t": (0.5, 200.0)})
    assert (
        score.final == curve[-1] and 0 <= score.auc_seconds <= 1 and score.auc_steps >= score.final
    )


def test_plots_write_png_files(tmp_path, scores):
    t1 = [t for t in TRACES if t.task == "t1"]
    for path in (
        plot_task_curves(t1, REFERENCES["t1"], tmp_path / "t1.png"),
        plot_ranks(scores, tmp_path / "ranks.png", resamples=200),
    ):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    with pytest.raises(ConfigError, match="pass the campaigns of one task"):
        plot_task_curves(TRACES, REFERENCES["t1"], tmp_path / "mixed.png")
    ended_early = [*t1, CampaignTrace("A", "t1", 2, (0.9,), (2.0,))]  # e.g. by a cost budget
    assert plot_task_curves(ended_early, REFERENCES["t1"], tmp_path / "early.png").exists()
