"""`python -m benchmarks.ray_overhead` at a small size."""

from __future__ import annotations

import re

import pytest

from benchmarks import ray_overhead

pytest.importorskip("ray")


@pytest.mark.ray
@pytest.mark.slow
def test_every_number_is_measured_and_the_results_match(capsys) -> None:
    ray_overhead.main(["--seconds", "0.05", "--repeats", "2", "--jobs", "2"])
    out = capsys.readouterr().out
    assert "Ray result equals in-process (same seed): True" in out
    assert re.search(r"overhead: ray/in-process = \d+\.\d{4}", out)
    assert re.search(r"Ray's own cost per step .* median \d+\.\d ms", out)
    assert re.search(r"speed-up with 2 workers vs 1: \d+\.\d\dx", out)
