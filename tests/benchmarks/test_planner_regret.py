"""The planner leaderboard runs end to end and writes what it measured."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers")

from benchmarks import planner_regret


@pytest.mark.slow
def test_a_tiny_leaderboard_run(tmp_path, capsys):
    out = tmp_path / "board"
    planner_regret.main(
        [
            "--seeds",
            "1",
            "--steps",
            "2",
            "--timesteps",
            "2",
            "--n-candidates",
            "2",
            "--threads",
            "1",
            "--out",
            str(out),
            "--store",
            str(tmp_path / "store"),
        ]
    )
    results = json.loads((out / "results.json").read_text())
    assert [r["planner"] for r in results["summary"]] == ["random", "tpe", "transformer"]
    assert len(results["campaigns"]) == 3 * len(results["tasks"]) == 24
    assert all(len(c["curve"]) == 2 for c in results["campaigns"])
    table = (out / "table.md").read_text()
    assert (
        "| transformer | 8 |" in table
        and "command: `python -m benchmarks.planner_regret --seeds 1" in table
    )
    assert (out / "anytime.png").exists() and (out / "planner" / "training.json").exists()
    from researchgym.store import open_store

    agents = (
        open_store(tmp_path / "store")
        .sql("SELECT agent, count(*) AS n FROM steps GROUP BY agent ORDER BY agent")
        .to_pylist()
    )
    assert agents == [{"agent": a, "n": 16} for a in ("random", "tpe", "transformer")]
