"""The leaderboard harness: end to end, resumable through the store, learned planners held out."""

from __future__ import annotations

import dataclasses
import html
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agents.random_search import RandomPlanner
from researchgym.cli import app
from researchgym.envs.recording import check_campaign_id
from researchgym.errors import ConfigError
from researchgym.evaluation import BENCHMARK_SUITES, PlannerTraining, campaign_id, run_leaderboard
from researchgym.planning import PLANNERS, PlannerSpec
from researchgym.store import Store
from tests.evaluation.conftest import TINY_TASK

runner = CliRunner(env={"COLUMNS": "250"})


def _campaign_rows(store: Path) -> dict[str, int]:
    with Store(store) as s:
        rows = s.sql(
            "SELECT campaign_id, count(*) AS n, count(DISTINCT step) AS steps FROM steps "
            "GROUP BY campaign_id"
        ).to_pylist()
    assert all(r["n"] == r["steps"] for r in rows), "a step stored twice"
    return {r["campaign_id"]: r["n"] for r in rows}


def test_campaign_ids_are_deterministic_and_differ_by_attempt(tiny_suite):
    first = campaign_id(tiny_suite, "random", TINY_TASK, 0, 0)
    assert first == campaign_id(tiny_suite, "random", TINY_TASK, 0, 0) == check_campaign_id(first)
    others = {
        campaign_id(tiny_suite, "random", TINY_TASK, 0, 1),
        campaign_id(tiny_suite, "random", TINY_TASK, 1, 0),
        campaign_id(tiny_suite, "sobol", TINY_TASK, 0, 0),
    }
    assert first.startswith("tiny-v1-") and first not in others and len(others) == 3


@pytest.mark.slow
def test_a_tiny_suite_runs_end_to_end_from_the_command_line(tiny_suite, tmp_path, monkeypatch):
    monkeypatch.setitem(BENCHMARK_SUITES, "tiny", tiny_suite)
    out = tmp_path / "board"
    args = ["leaderboard", "--suite", "tiny", "--agents", "random,sobol,tpe", "--seeds", "2"]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "6 campaigns run, 0 read back from the store" in result.output
    table = (out / "leaderboard.md").read_text()
    assert "# Leaderboard: suite tiny v1" in table and "3 experiments (train.epochs=1)" in table
    planner_lines = [
        line for line in table.splitlines() if line.startswith("| ") and " | 2 | " in line
    ]
    assert sorted(line.split(" | ")[0] for line in planner_lines) == [
        "| random",
        "| sobol",
        "| tpe",
    ]
    assert f"| {html.escape(TINY_TASK)} |" in table
    assert "researchgym leaderboard --suite tiny --agents random,sobol,tpe --seeds 2" in table
    assert "![average rank by final regret" in table and "(curves-0.png)" in table
    page = (out / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count('src="data:image/png;base64,') == 2
    assert all(f"<td>{planner}</td>" in page for planner in ("random", "sobol", "tpe"))
    board = json.loads((out / "leaderboard.json").read_text())
    assert {"python", "torch", "optuna", "researchgym", "git commit"} <= set(board["versions"])
    assert [r["planner"] for r in board["rows"]] and len(board["campaigns"]) == 6
    assert board["seed_spread"][0]["pairs"] == 8
    assert (out / "ranks.png").stat().st_size > 0 and (out / "curves-0.png").stat().st_size > 0
    assert set(_campaign_rows(out / "store").values()) == {3}

    again = runner.invoke(app, [*args, "--out", str(out)])
    assert again.exit_code == 0 and "0 campaigns run, 6 read back from the store" in again.output


class _Stop(Exception):
    pass


def test_an_interrupted_board_resumes_without_redoing_stored_campaigns(tiny_suite, tmp_path):
    store, out = tmp_path / "store", tmp_path / "out"
    # a campaign cut short after one of its three steps (as by a killed worker)
    cut = campaign_id(tiny_suite, "random", TINY_TASK, 2, 0)
    env = tiny_suite.make_env(store=store)
    env.reset(seed=2, options={"task": TINY_TASK, "campaign_id": cut, "agent": "random"})
    env.step(env.action_space.sample())
    env.close()

    def stop_after_two(done, total, status):
        if done == 2 and "already stored" not in status:
            raise _Stop

    board = {"store": store, "out_dir": out}
    with pytest.raises(_Stop):
        run_leaderboard(tiny_suite, ["random", "sobol"], 3, progress=stop_after_two, **board)
    interrupted = _campaign_rows(store)
    assert interrupted[cut] == 1 and sorted(interrupted.values()) == [1, 3, 3]

    resumed = run_leaderboard(tiny_suite, ["random", "sobol"], 3, **board)
    assert (resumed.reused, resumed.ran) == (2, 4)
    rows = _campaign_rows(store)
    assert {k: v for k, v in rows.items() if k in interrupted} == interrupted  # nothing redone
    ids = [
        c["campaign_id"] for c in json.loads((out / "leaderboard.json").read_text())["campaigns"]
    ]
    assert len(ids) == 6 and all(rows[i] == 3 for i in ids) and cut not in ids
    assert campaign_id(tiny_suite, "random", TINY_TASK, 2, 1) in ids  # the next attempt
    assert len(rows) == 7 and sum(rows.values()) == 6 * 3 + 1

    again = run_leaderboard(tiny_suite, ["random", "sobol"], 3, **board)
    assert (again.reused, again.ran) == (6, 0) and _campaign_rows(store) == rows
    assert [s.final for s in again.scores] == [s.final for s in resumed.scores]


# --- learned planners ----------------------------------------------------------------------
TRAINED: list[dict] = []


class TrainedPlanner(RandomPlanner):
    name = "trained"

    def __init__(self, policy: str, **options):
        super().__init__()
        assert Path(policy).exists()


def train_fake(env_id, *, total_timesteps, save_path, tasks, **kwargs):
    TRAINED.append({"env_id": env_id, "steps": total_timesteps, "tasks": list(tasks)})
    Path(save_path).parent.mkdir(parents=True, exist_ok=True)
    Path(save_path).write_text("policy")
    return Path(save_path)


def test_a_learned_planner_is_trained_once_on_the_train_tasks_only(
    tiny_suite, tmp_path, monkeypatch
):
    spec = PlannerSpec("trained", f"{__name__}:TrainedPlanner", f"{__name__}:train_fake")
    monkeypatch.setitem(PLANNERS, "trained", spec)
    suite = dataclasses.replace(
        tiny_suite, training={"trained": PlannerTraining("researchgym/Synthetic-v0", 7)}
    )
    TRAINED.clear()
    board = {"store": tmp_path / "store", "out_dir": tmp_path / "out"}
    first = run_leaderboard(suite, ["random", "trained"], 1, **board)
    assert TRAINED == [
        {"env_id": "researchgym/Synthetic-v0", "steps": 7, "tasks": list(suite.train_tasks)}
    ]
    assert (tmp_path / "out" / "policies" / "trained" / "policy").exists()
    assert {r.planner: r.versus and r.versus.baseline for r in first.rows}["trained"] == "random"
    run_leaderboard(suite, ["random", "trained", "sobol"], 1, **board)
    assert len(TRAINED) == 1  # the saved policy is reused
    with pytest.raises(ConfigError, match="does not train the learned planner 'ppo-sb3'"):
        run_leaderboard(suite, ["ppo-sb3"], 1, **board)


@pytest.mark.slow
def test_the_transformer_planner_learns_from_train_tasks_only(tiny_suite, tmp_path):
    pytest.importorskip("transformers")
    board = run_leaderboard(
        tiny_suite, ["random", "transformer"], 1, store=tmp_path / "s", out_dir=tmp_path / "o"
    )
    trained = json.loads(
        (tmp_path / "o" / "policies" / "transformer" / "policy" / "training.json").read_text()
    )
    assert trained["tasks"] and set(trained["tasks"]) <= set(tiny_suite.train_tasks)
    assert not set(trained["tasks"]) & set(tiny_suite.test_tasks)
    assert [s.planner for s in board.scores] == ["random", "transformer"]


@pytest.mark.slow
def test_campaigns_run_in_worker_processes(tiny_suite, tmp_path):
    board = run_leaderboard(
        tiny_suite, ["random", "sobol"], 2, workers=2, store=tmp_path / "s", out_dir=tmp_path / "o"
    )
    assert (board.ran, board.reused) == (4, 0)
    assert sorted(_campaign_rows(tmp_path / "s").values()) == [3, 3, 3, 3]
    serial = run_leaderboard(
        tiny_suite, ["random", "sobol"], 2, store=tmp_path / "s2", out_dir=tmp_path / "o2"
    )
    assert [s.final for s in board.scores] == [s.final for s in serial.scores]


# --- multi-fidelity suites -----------------------------------------------------------------
def _rows(store: Path, agent: str) -> list[dict]:
    with Store(store) as s:
        return s.runs(
            agent=agent,
            columns=("campaign_id", "step", "verb", "fidelity", "cost_samples", "truncated"),
        ).to_pylist()


def test_a_multi_fidelity_board_ends_campaigns_by_their_cost_budget_and_resumes(
    tiny_mf_suite, tmp_path
):
    store, out = tmp_path / "store", tmp_path / "out"
    # random search's seed-0 campaign, stopped after two steps (before its cost budget)
    stopped = campaign_id(tiny_mf_suite, "random", TINY_TASK, 0, 0)
    env = tiny_mf_suite.make_env(store=store)
    env.reset(seed=0, options={"task": TINY_TASK, "campaign_id": stopped, "agent": "random"})
    base = env.unwrapped
    for _ in range(2):
        env.step(base.to_action(base.schema.validate({"train.epochs": 1})))
    assert env.step(base.to_action({"verb": "stop"}))[2]  # terminated
    env.close()

    board = run_leaderboard(tiny_mf_suite, ["random", "hyperband"], 2, store=store, out_dir=out)
    assert (board.reused, board.ran) == (1, 3)  # the stopped campaign counts as complete
    assert _campaign_rows(store)[stopped] == 3 and len(_campaign_rows(store)) == 4

    budget, rows = 2 * 3 * 120, 120
    random_rows = [r for r in _rows(store, "random") if r["campaign_id"] != stopped]
    assert {(r["verb"], r["fidelity"]) for r in random_rows} == {("new", 3)}  # the max fidelity
    assert [r["truncated"] for r in random_rows] == [False, True]  # 2 runs spend the budget
    hyperband = _rows(store, "hyperband")
    assert {r["fidelity"] for r in hyperband} == {1, 3}  # its own choice, not pinned
    continued = [r for r in hyperband if r["verb"] == "continue"]
    assert continued and all(r["cost_samples"] == 2 * rows for r in continued)  # new epochs only
    for cid in {r["campaign_id"] for r in hyperband}:
        steps = sorted((r for r in hyperband if r["campaign_id"] == cid), key=lambda r: r["step"])
        assert sum(r["cost_samples"] for r in steps[:-1]) < budget
        assert sum(r["cost_samples"] for r in steps) >= budget and steps[-1]["truncated"]
        assert len(steps) < tiny_mf_suite.budget  # ended early by the cost budget

    table = (out / "leaderboard.md").read_text()
    assert "720 samples (at most 12 experiments) (train.epochs 1 to 3" in table
    assert "ends with the step that spends its cost budget" in table
    assert json.loads((out / "leaderboard.json").read_text())["suite"]["fidelity"] == [1, 3]
    assert sorted(r.planner for r in board.rows) == ["hyperband", "random"]

    again = run_leaderboard(tiny_mf_suite, ["random", "hyperband"], 2, store=store, out_dir=out)
    assert (again.reused, again.ran) == (4, 0)  # truncated campaigns are complete too
    assert [s.final for s in again.scores] == [s.final for s in board.scores]


def test_a_fidelity_planner_needs_a_suite_with_a_fidelity_range(tiny_suite, tmp_path):
    with pytest.raises(ConfigError, match="'hyperband' chooses train.epochs .* no fidelity range"):
        run_leaderboard(
            tiny_suite, ["random", "hyperband"], 1, store=tmp_path / "s", out_dir=tmp_path / "o"
        )
    assert not (tmp_path / "s").exists()
