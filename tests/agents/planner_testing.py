"""Helpers of the planner tests: the cheap env, fast settings, store counts and space checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from researchgym.spaces import Schema

ENV_ID = "researchgym/Tabular-v0"
# One pass with big batches: every step trains in a fraction of a second.
CHEAP = {"train.epochs": 1, "train.batch_size": 256}
# Cheaper still, for RL training smoke tests that take hundreds of steps.
CHEAPEST = {**CHEAP, "model.family": "linear"}


def rows_by_agent(store_dir: Path) -> dict[str, int]:
    """Steps recorded in the store, counted by agent name."""
    from researchgym.store import open_store

    with open_store(store_dir) as store:
        rows = store.sql("SELECT agent, count(*) AS n FROM steps GROUP BY agent").to_pylist()
    return {row["agent"]: row["n"] for row in rows}


def assert_in_space(
    schema: Schema, metaprogram: dict[str, Any], fixed: dict[str, Any] | None = None
) -> None:
    """The metaprogram is exactly the validated form of itself: known, in range, only active settings."""
    assert metaprogram == schema.validate(metaprogram)
    for setting in schema:
        active = all(metaprogram.get(p) in allowed for p, allowed in setting.when.items())
        assert (setting.name in metaprogram) == active, setting.name
    for name, value in (fixed or {}).items():
        assert metaprogram[name] == value
