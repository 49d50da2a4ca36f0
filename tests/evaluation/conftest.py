"""Tiny benchmark suites: one over a recorded store made by a small Sobol sweep, one with a
fidelity range and a cost budget."""

from __future__ import annotations

import pytest

from researchgym.evaluation import BenchmarkSuite, PlannerTraining

SYNTHETIC = "researchgym/Synthetic-v0"
TINY_TASK = "synth_cls?seed=1000&rows=200"
TINY_TRAIN_ROWS = 120  # of its 200 rows


@pytest.fixture(scope="session")
def recorded_store(tmp_path_factory):
    """8 Sobol metaprograms x 2 seeds of one small table, trained for one epoch."""
    from researchgym.sweeps import plan_sweep, run_sweep

    path = tmp_path_factory.mktemp("recorded") / "store"
    jobs = plan_sweep(
        SYNTHETIC, sampler="sobol", n=8, repeats=2, fixed={"train.epochs": 1}, tasks=[TINY_TASK]
    )
    assert all(
        status == "ok"
        for status, _ in run_sweep(SYNTHETIC, jobs, store_path=path, agent="sweep-sobol")
    )
    return path


@pytest.fixture
def tiny_suite(recorded_store):
    """Replay of the recorded store: one held-out task, 3 experiments per campaign."""
    return BenchmarkSuite(
        "tiny",
        1,
        "one small table replayed",
        env_id="researchgym/Replay-v0",
        source=SYNTHETIC,
        test_tasks=(TINY_TASK,),
        train_tasks=("synth_cls?seed=0", "synth_reg?seed=1"),
        budget=3,
        fixed={"train.epochs": 1},
        env_kwargs={"source": SYNTHETIC, "missing": "nearest"},
        data=recorded_store,
        training={
            "transformer": PlannerTraining(SYNTHETIC, 2, planner_options={"n_candidates": 2})
        },
    )


@pytest.fixture
def tiny_mf_suite():
    """Real training of one small table with fidelities 1 to 3 epochs; each campaign spends
    the training samples of two runs of 3 epochs (at most 12 experiments)."""
    return BenchmarkSuite(
        "tiny-mf",
        1,
        "one small table trained for real, runs continued",
        env_id=SYNTHETIC,
        source=SYNTHETIC,
        test_tasks=(TINY_TASK,),
        train_tasks=("synth_cls?seed=0",),
        budget=12,
        fidelity=(1, 3),
        cost_budget={"samples": 2 * 3 * TINY_TRAIN_ROWS},
    )
