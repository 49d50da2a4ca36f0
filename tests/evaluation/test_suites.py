"""Benchmark suites: declared once, held-out tasks, references and seed spread from recorded runs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from typer.testing import CliRunner

from researchgym.cli import app
from researchgym.engine import parse_task
from researchgym.envs.suites import get_suite
from researchgym.errors import ConfigError, NotFound
from researchgym.evaluation import (
    BENCHMARK_SUITES,
    SUITE_MODELS,
    SUITE_RUNS,
    CampaignTrace,
    TaskReference,
    benchmark_suite,
    best_known,
    campaign_references,
)
from researchgym.store import Store
from tests.evaluation.conftest import TINY_TASK

runner = CliRunner(env={"COLUMNS": "250"})


def test_the_fast_cpu_gpu_and_multi_fidelity_suites_are_declared():
    assert list(BENCHMARK_SUITES) == ["fast", "cpu", "gpu", "multi-fidelity"]
    fast, cpu, gpu, _ = BENCHMARK_SUITES.values()
    assert fast.env_id == "researchgym/Surrogate-v0"
    assert fast.env_kwargs["model"] == str(SUITE_MODELS / "Synthetic-v0.npz")
    assert cpu.env_id == fast.source == cpu.source == "researchgym/Synthetic-v0"
    assert cpu.test_tasks == ("synth_cls?seed=1000&rows=2500", "synth_reg?seed=1000&rows=2500")
    assert fast.test_tasks == (
        "synth_cls?seed=1000&rows=2500",
        "synth_cls?seed=1001&rows=2500",
        "synth_reg?seed=1000&rows=2500",
        "synth_reg?seed=1001&rows=2500",
    )
    assert fast.train_tasks == cpu.train_tasks == get_suite("synthetic").tasks
    assert fast.budget == cpu.budget == 20 and fast.fixed == cpu.fixed == {"train.epochs": 10}
    assert fast.data == cpu.data == SUITE_RUNS and gpu.data is None
    assert gpu.requires == "cuda" and gpu.fixed["arch.width"] >= 256
    for suite in BENCHMARK_SUITES.values():
        assert not set(suite.test_tasks) & set(suite.train_tasks)
        for task in suite.test_tasks + suite.train_tasks:
            parse_task(task)  # a task of the source's datasets


def test_the_multi_fidelity_suite_declares_a_fidelity_range_and_a_compute_budget():
    suite = benchmark_suite("multi-fidelity")
    cpu = benchmark_suite("cpu")
    assert suite.env_id == suite.source == cpu.source and suite.test_tasks == cpu.test_tasks
    assert suite.fidelity == (1, 9) and "train.epochs" not in suite.fixed
    # the training samples of 8 runs of 9 epochs on 1500 training rows
    assert suite.cost_budget == {"samples": 8 * 9 * 1500} and suite.data is None
    assert suite.pins() == {"train.epochs": 9} and suite.pins(chooses_fidelity=True) == {}
    assert cpu.pins() == cpu.pins(chooses_fidelity=True) == {"train.epochs": 10}
    env = suite.make_env().unwrapped
    assert (
        env.forkable and env.max_epochs == 9 and env.costs.budget.to_dict() == {"samples": 108000.0}
    )
    assert env.budget == suite.budget
    env.close()


def test_a_multi_fidelity_suite_leaves_the_fidelity_unpinned_and_needs_a_cost_budget():
    suite = benchmark_suite("multi-fidelity")
    with pytest.raises(ConfigError, match="pins train.epochs=9 and declares the fidelity range"):
        dataclasses.replace(suite, fixed={"train.epochs": 9})
    with pytest.raises(ConfigError, match=r"fidelity range \(1, 9\) but no cost_budget"):
        dataclasses.replace(suite, cost_budget=None)
    with pytest.raises(ConfigError, match=r"fidelity=\(9, 1\); give \(min_epochs, max_epochs\)"):
        dataclasses.replace(suite, fidelity=(9, 1))
    with pytest.raises(ConfigError, match="cost_budget unit 'secs' is not one of"):
        dataclasses.replace(suite, cost_budget={"secs": 60})


def test_an_unknown_suite_name_gets_a_suggestion():
    with pytest.raises(NotFound, match="unknown benchmark suite 'fsat'; did you mean 'fast'"):
        benchmark_suite("fsat")


def test_a_suite_never_trains_on_its_test_tasks_and_a_replayed_one_needs_data():
    fast = benchmark_suite("fast")
    with pytest.raises(ConfigError, match="trains on its test tasks"):
        dataclasses.replace(fast, train_tasks=fast.test_tasks[:1])
    with pytest.raises(ConfigError, match="replays recorded runs but names no data"):
        dataclasses.replace(fast, env_id="researchgym/Replay-v0", data=None)


def test_a_surrogate_suites_references_are_the_surrogates_predictions():
    import json

    import gymnasium as gym

    from researchgym.envs.surrogate import SurrogateModel

    fast = benchmark_suite("fast")
    model = SurrogateModel.load(fast.env_kwargs["model"])
    schema = gym.make(fast.source, store=False).unwrapped.schema
    recorded = np.stack(
        [
            schema.encode_valid(json.loads(m) | dict(fast.fixed))
            for m in fast._recorded_metaprograms()
        ]
    )
    for task, reference in fast.references().items():
        predicted = model.predict(model.features(recorded, [task] * len(recorded)))[:, 0]
        # The best prediction over the recorded metaprograms bounds the reference from below
        # (a Sobol point may predict higher); typical is a median, well below the best.
        assert predicted.max() <= reference.best <= 1.0
        assert reference.typical < reference.best - 0.05


def _recorded_scores(store) -> dict[str, list[float]]:
    with Store(store) as s:
        rows = s.runs("researchgym/Synthetic-v0", columns=("metaprogram", "val_score")).to_pylist()
    by_point: dict[str, list[float]] = {}
    for row in rows:
        by_point.setdefault(row["metaprogram"], []).append(row["val_score"])
    return by_point


def test_references_and_seed_spread_come_from_the_recorded_runs(tiny_suite, recorded_store):
    by_point = _recorded_scores(recorded_store)
    scores = [s for pair in by_point.values() for s in pair]
    reference = tiny_suite.references()[TINY_TASK]
    assert reference.best == max(scores) and reference.typical == np.median(scores)
    spread = tiny_suite.seed_spread()[TINY_TASK]
    gaps = [abs(a - b) for a, b in by_point.values()]
    assert spread.pairs == len(by_point) == 8
    assert spread.median == pytest.approx(np.median(gaps))
    assert spread.median_regret == pytest.approx(
        np.median(gaps) / (reference.best - reference.typical)
    )


def test_a_test_task_without_recorded_runs_is_named(tiny_suite):
    suite = dataclasses.replace(tiny_suite, test_tasks=("synth_reg?seed=1001&rows=200",))
    with pytest.raises(
        NotFound, match=r"no runs of researchgym/Synthetic-v0 on .*synth_reg\?seed=1001"
    ):
        suite.references()


def test_references_from_campaigns_take_the_best_found_and_random_search_median():
    traces = [
        CampaignTrace("random", "t", 0, (0.1, 0.3, None), (1, 1, 1)),
        CampaignTrace("random", "t", 1, (0.2, 0.4, 0.5), (1, 1, 1)),
        CampaignTrace("tpe", "t", 0, (0.9, 0.2, 0.1), (1, 1, 1)),
    ]
    # random's six draws, the failure lowest: None, .1, .2, .3, .4, .5 -> median .25
    assert campaign_references(traces) == {"t": TaskReference("t", 0.9, 0.25)}
    with pytest.raises(ConfigError, match="no campaigns of 'random'"):
        campaign_references(traces[2:])


def test_best_known_raises_a_best_that_a_campaign_beat():
    references = {"t": TaskReference("t", 0.8, 0.2), "u": TaskReference("u", 0.9, 0.1)}
    traces = [
        CampaignTrace("random", "t", 0, (0.85, None), (1, 1)),
        CampaignTrace("tpe", "u", 0, (0.5, 0.7), (1, 1)),
    ]
    assert best_known(references, traces) == {
        "t": TaskReference("t", 0.85, 0.2),
        "u": TaskReference("u", 0.9, 0.1),
    }


def test_leaderboard_list_shows_every_suite():
    result = runner.invoke(app, ["leaderboard", "--list"])
    assert result.exit_code == 0, result.output
    for name, env in [
        ("fast", "Surrogate-v0"),
        ("cpu", "Synthetic-v0"),
        ("gpu", "SeqArch-v0"),
        ("multi-fidelity", "Synthetic-v0"),
    ]:
        assert name in result.output and env in result.output
    assert "train.epochs=10" in result.output and "cuda" in result.output
    assert "108000 samples (at most 100 experiments)" in result.output
    assert "train.epochs 1 to 9, fixed-fidelity planners at 9" in result.output


def test_the_gpu_suite_is_skipped_without_cuda(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = runner.invoke(
        app, ["leaderboard", "--suite", "gpu", "--agents", "random", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output
    assert "skipped: suite 'gpu' trains on a CUDA GPU and this machine has none" in result.output
    assert not (tmp_path / "o").exists()
    from researchgym.evaluation import run_leaderboard

    board = run_leaderboard(
        benchmark_suite("gpu"), ["random"], 1, store=tmp_path / "s", out_dir=tmp_path / "o"
    )
    assert board.skipped and not board.rows and not (tmp_path / "o").exists()


def test_a_suite_without_recorded_runs_needs_random_search_for_its_typical_scores(
    tiny_suite, tmp_path
):
    from researchgym.evaluation import run_leaderboard

    suite = dataclasses.replace(
        tiny_suite, env_id="researchgym/Synthetic-v0", env_kwargs={}, data=None
    )
    with pytest.raises(ConfigError, match="add random to the planners"):
        run_leaderboard(suite, ["sobol"], 1, store=tmp_path / "s", out_dir=tmp_path / "o")
    assert not (tmp_path / "s").exists()
