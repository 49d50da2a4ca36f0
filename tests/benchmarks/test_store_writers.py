"""`python -m benchmarks.store_writers` at a small size."""

from __future__ import annotations

import json

from benchmarks import store_writers


def test_two_writers_and_a_reader_lose_and_duplicate_nothing(tmp_path) -> None:
    out = tmp_path / "writers.json"
    args = ["--writers", "2", "--rows", "12", "--compact-every", "4", "--json", str(out)]
    assert store_writers.main(args) == 0
    (result,) = json.loads(out.read_text())["results"]
    assert result["commits"] == result["reader_last_count"] == 24
    assert result["rows_after_full_compaction"] == 24
    assert result["lost_rows"] == result["duplicate_rows"] == 0
    assert result["compactions"] >= 1 and result["reader_count_went_back"] == 0
