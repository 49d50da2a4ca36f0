"""`python -m benchmarks.population --campaign` at its smallest size."""

from __future__ import annotations

import re

from benchmarks import population


def test_the_campaign_comparison_prints_both_sides_and_their_ratio(capsys) -> None:
    population.main(
        ["--campaign", "--steps", "3", "--batch", "2", "--repeats", "1", "--epochs", "1",
         "--device", "cpu"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert out.startswith("command: python -m benchmarks.population --campaign --steps 3")
    rows = re.findall(r"^ +(\d+) +[\d.]+ +([\d.]+)$", out, re.MULTILINE)
    assert [size for size, _ in rows] == ["1", "2"]
    # the same proposals and seeds: the same best score, up to one of 360 validation digits
    assert abs(float(rows[0][1]) - float(rows[1][1])) <= 1.5 / 360
    assert re.search(r"^speedup of batch=2: [\d.]+x$", out, re.MULTILINE)
