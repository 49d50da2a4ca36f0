"""`python -m benchmarks.fast_envs` at a small size."""

from __future__ import annotations

import re

from benchmarks import fast_envs


def test_every_rate_is_measured_even_with_fewer_steps_than_a_batch(capsys) -> None:
    fast_envs.main(["--steps", "150"])
    out = capsys.readouterr().out
    rates = dict(re.findall(r"^(.+?)\s{2,}([\d,]+)\s+[\d.]+$", out, flags=re.MULTILINE))
    assert set(rates) == {
        "trivial gymnasium env",
        "Replay-v0",
        "Surrogate-v0",
        "surrogate model alone, 150 actions per call",
    }
    assert all(int(rate.replace(",", "")) > 0 for rate in rates.values())
