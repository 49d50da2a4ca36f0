"""`python -m benchmarks.multi_fidelity` at its smallest size, and its measures."""

from __future__ import annotations

import math
import re

from benchmarks import multi_fidelity


def test_compute_to_reach_is_the_first_compute_at_the_target() -> None:
    points = [(1.0, 0.2), (3.0, 0.5), (6.0, 0.7)]
    assert multi_fidelity.compute_to_reach(points, 0.5) == 3.0
    assert multi_fidelity.compute_to_reach(points, 0.9) == math.inf


def test_the_benchmark_prints_both_tables_and_saves_the_plot(tmp_path, capsys) -> None:
    plot = tmp_path / "anytime.png"
    multi_fidelity.main(
        ["--seeds", "1", "--tasks", "synthetic", "--max-epochs", "3", "--random-runs", "2",
         "--population", "2", "--interval", "1", "--max-steps", "8", "--cost", "samples",
         "--set", "model.family=linear", "--set", "train.batch_size=256", "--plot", str(plot)]
    )  # fmt: skip
    out = capsys.readouterr().out
    ratios = re.findall(
        r"^\| synthetic \| (hyperband|asha) \| ([\d.]+|inf) \| ([01])/1 \|", out, re.MULTILINE
    )
    assert [name for name, _, _ in ratios] == ["hyperband", "asha"]
    for _, ratio, reached in ratios:
        assert (ratio == "inf") == (reached == "0")
    assert re.search(r"^\| synthetic \| -?[\d.]+ \| -?[\d.]+ \| [01]/1 \|", out, re.MULTILINE)
    assert out.startswith("command: python -m benchmarks.multi_fidelity --seeds 1")
    assert plot.stat().st_size > 0


def test_the_benchmark_replays_the_recorded_curves_without_pbt(tmp_path, capsys) -> None:
    multi_fidelity.main(
        ["--seeds", "1", "--tasks", "synthetic", "--random-runs", "4", "--max-steps", "40",
         "--cost", "samples", "--replay", "--plot", str(tmp_path / "anytime.png")]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "replayed from recorded curves" in out
    ratios = re.findall(r"^\| synthetic \| (hyperband|asha) \| ([\d.]+|inf) \|", out, re.MULTILINE)
    assert [name for name, _ in ratios] == ["hyperband", "asha"]
    assert "PBT" not in out  # forks cannot be replayed
