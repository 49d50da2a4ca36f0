"""Scoring planners: regret on replayed tasks, leaderboard statistics and plots.

* :mod:`~researchgym.evaluation.regret`: :class:`RegretBench`, campaigns of planners
  on recorded runs scored by regret normalized between the best and worst recorded.
* :mod:`~researchgym.evaluation.stats`: leaderboard statistics over campaign traces
  (typical-normalized regret, anytime curves and their areas, ranks, bootstrap
  intervals, paired tests, agreement of two boards) and the Markdown board.
* :mod:`~researchgym.evaluation.plots`: anytime curves per task and the rank plot.
* :mod:`~researchgym.evaluation.suites`: :class:`BenchmarkSuite`, the named boards
  (``fast``, ``cpu``, ``gpu``) with held-out tasks and their references.
* :mod:`~researchgym.evaluation.harness`: :func:`run_leaderboard`, a suite's
  planners x tasks x seeds, resumable through the store, written as tables and plots.
* :mod:`~researchgym.evaluation.report`: :class:`Report`, a document of tables, plots and
  commands written as a self-contained HTML page and as Markdown.
* :mod:`~researchgym.evaluation.store_report`: :func:`store_report`, the summary of a
  store (runs, best configurations, learning curves) that ``researchgym report`` writes.
"""

from researchgym.evaluation.harness import CampaignJob, Leaderboard, campaign_id, run_leaderboard
from researchgym.evaluation.plots import plot_ranks, plot_task_curves
from researchgym.evaluation.regret import (
    CampaignRegret,
    RegretBench,
    RegretSummary,
    markdown_table,
    plot_anytime,
    summarize,
)
from researchgym.evaluation.report import Report, software_versions
from researchgym.evaluation.stats import (
    BoardAgreement,
    CampaignScore,
    CampaignTrace,
    LeaderboardRow,
    PairedTest,
    TaskReference,
    average_ranks,
    bootstrap_ci,
    compare_boards,
    leaderboard,
    leaderboard_markdown,
    paired_test,
    rank_intervals,
    score_campaigns,
    seconds_curve,
    seconds_grid,
    seconds_horizon,
    steps_curve,
)
from researchgym.evaluation.store_report import StoreReport, store_report
from researchgym.evaluation.suites import (
    BENCHMARK_SUITES,
    SUITE_MODELS,
    SUITE_RUNS,
    BenchmarkSuite,
    PlannerTraining,
    SeedSpread,
    benchmark_suite,
    best_known,
    campaign_references,
)

__all__ = [
    "BENCHMARK_SUITES",
    "SUITE_MODELS",
    "SUITE_RUNS",
    "BenchmarkSuite",
    "BoardAgreement",
    "CampaignJob",
    "CampaignRegret",
    "CampaignScore",
    "CampaignTrace",
    "Leaderboard",
    "LeaderboardRow",
    "PairedTest",
    "PlannerTraining",
    "RegretBench",
    "RegretSummary",
    "Report",
    "SeedSpread",
    "StoreReport",
    "TaskReference",
    "average_ranks",
    "benchmark_suite",
    "best_known",
    "bootstrap_ci",
    "campaign_id",
    "campaign_references",
    "compare_boards",
    "leaderboard",
    "leaderboard_markdown",
    "markdown_table",
    "paired_test",
    "plot_anytime",
    "plot_ranks",
    "plot_task_curves",
    "rank_intervals",
    "run_leaderboard",
    "score_campaigns",
    "seconds_curve",
    "seconds_grid",
    "seconds_horizon",
    "software_versions",
    "steps_curve",
    "store_report",
    "summarize",
]
