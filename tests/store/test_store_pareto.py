"""The Pareto front of a store (score up, seconds and parameters down) and ``researchgym pareto``."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from store_rows import make_row
from typer.testing import CliRunner

from researchgym.cli.store import register
from researchgym.store import Store
from researchgym.store.tables import rows_to_table

A, B = "researchgym/Digits-v0", "researchgym/Tabular-v0"

#: name -> (env, task, val_score, cost_seconds, n_params, status), and whether it is on the front.
RUNS = {
    "best": ((A, "t1", 0.95, 20.0, 5000, "ok"), True),
    "middle": ((A, "t1", 0.9, 10.0, 1000, "ok"), True),
    "fast": ((A, "t1", 0.8, 5.0, 1000, "ok"), True),
    "fast_tie": ((A, "t1", 0.8, 5.0, 1000, "ok"), True),  # equal objectives: both kept
    "small": ((A, "t1", 0.5, 30.0, 10, "ok"), True),  # worst score, fewest parameters
    "slower": ((A, "t1", 0.7, 6.0, 1000, "ok"), False),  # beaten by fast on all three
    "bigger": ((A, "t1", 0.9, 10.0, 2000, "ok"), False),  # middle, with more parameters
    "diverged": ((A, "t1", 0.99, 1.0, 10, "diverged"), False),  # failed: no point
    "error": ((A, "t1", None, 0.1, None, "error"), False),
    "no_params": ((A, "t1", 0.99, 1.0, None, "ok"), False),  # recorded without n_params
    "other_task": ((A, "t2", 0.1, 100.0, 10**6, "ok"), True),  # beaten by t1 runs only
    "other_env": ((B, "t1", 0.1, 100.0, 10**6, "ok"), True),
}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "store", auto_compact=None)
    rows = []
    for name, ((env_id, task, score, seconds, n_params, status), _) in RUNS.items():
        row = make_row(
            env_id=env_id,
            task=task,
            run_id=name,
            val_score=score,
            cost_seconds=seconds,
            status=status,
            n_params=n_params,
        )
        rows.append(row)
    store.append_many(rows[:-2])
    # a file written before the n_params column: its runs read NULL there and are left out
    store.append_many(rows_to_table([make_row(env_id=A, task="t1")]).drop_columns(["n_params"]))
    store.append_many(rows[-2:])
    yield store
    store.close()


def on_front(env_id: str | None = None, task: str | None = None) -> list[str]:
    return [
        name
        for name, ((env, t, *_), kept) in RUNS.items()
        if kept and env_id in (None, env) and task in (None, t)
    ]


def test_the_front_holds_the_runs_no_other_run_of_their_env_and_task_beats(store):
    front = store.pareto_front()
    assert sorted(front["run_id"]) == sorted(on_front())
    assert list(front.columns) == [
        "env_id", "task", "run_id", "campaign_id", "step", "agent", "val_score",
        "cost_seconds", "n_params",
    ]  # fmt: skip
    t1 = front[(front["env_id"] == A) & (front["task"] == "t1")]
    assert t1["run_id"].tolist()[:2] == ["best", "middle"]  # best score first
    assert t1["val_score"].is_monotonic_decreasing


def test_the_front_of_one_env_or_task(store):
    assert sorted(store.pareto_front(A)["run_id"]) == sorted(on_front(A))
    assert sorted(store.pareto_front(A, "t2")["run_id"]) == ["other_task"]
    assert store.pareto_front(B, "t2").empty
    assert store.pareto_front("researchgym/Nothing-v0").empty


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_cli_prints_the_front(app, store):
    result = CliRunner().invoke(app, ["pareto", "--store", str(store.path), "--env", A])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split("\t") == ["env", "task", "run", "agent", "score", "seconds", "params"]
    assert sorted(line.split("\t")[2] for line in lines[1:]) == sorted(on_front(A))
    assert "best\trandom\t0.95\t20\t5000" in result.stdout


def test_cli_says_when_the_front_is_empty_or_the_env_unknown(app, store):
    runner = CliRunner()
    result = runner.invoke(app, ["pareto", "--store", str(store.path), "--env", B, "--task", "t9"])
    assert result.exit_code == 0 and "no finished runs" in result.output
    result = runner.invoke(app, ["pareto", "--store", str(store.path), "--env", A[:-1] + "1"])
    assert result.exit_code != 0 and f"did you mean {A!r}" in " ".join(result.output.split())
