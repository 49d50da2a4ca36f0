"""Synthetic rows that follow the store's row contract, and subprocess helpers, for tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

T0 = datetime(2024, 1, 1, tzinfo=UTC)
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def make_row(
    campaign_id: str | None = None,
    step: int = 0,
    *,
    env_id: str = "researchgym/Digits-v0",
    task: str = "digits",
    agent: str = "random",
    seed: int = 0,
    obs_dim: int = 6,
    act_dim: int = 3,
    **overrides: Any,
) -> dict[str, Any]:
    """Return one step row with deterministic, plausible values."""
    campaign_id = campaign_id or uuid.uuid4().hex
    rng = np.random.default_rng(zlib.crc32(f"{campaign_id}/{step}".encode()))
    val = float(rng.uniform(0.5, 1.0))
    action = {
        "model": "mlp",
        "width": int(rng.integers(16, 256)),
        "lr": float(rng.uniform(1e-4, 1e-1)),
    }
    started = T0 + timedelta(seconds=10 * step)
    row: dict[str, Any] = {
        "campaign_id": campaign_id,
        "step": step,
        "run_id": uuid.uuid4().hex,
        "env_id": env_id,
        "env_version": 0,
        "task": task,
        "agent": agent,
        "seed": seed,
        "metaprogram": json.dumps({**action, "epochs": 5}),
        "action": json.dumps(action),
        "obs": rng.normal(size=obs_dim).tolist(),
        "action_flat": rng.uniform(size=act_dim).tolist(),
        "val_score": val,
        "val_metrics": json.dumps({"accuracy": val}),
        "test_metrics": json.dumps({"accuracy": val - 0.01}),
        "curve": json.dumps([{"epoch": e, "val_accuracy": val * (e + 1) / 3} for e in range(3)]),
        "reward": val,
        "terminated": False,
        "truncated": False,
        "cost_seconds": 0.5,
        "cost_samples": 1000,
        "status": "ok",
        "error": None,
        "started_at": started,
        "finished_at": started + timedelta(seconds=5),
    }
    row.update(overrides)
    return row


def make_episode(
    n_steps: int, campaign_id: str | None = None, **kwargs: Any
) -> list[dict[str, Any]]:
    """Return the rows of one campaign; the last step is terminated."""
    campaign_id = campaign_id or uuid.uuid4().hex
    rows = [make_row(campaign_id, step, **kwargs) for step in range(n_steps)]
    rows[-1]["terminated"] = True
    return rows


def spawn(script: str, *args: object) -> subprocess.Popen[str]:
    """Start a helper script next to this file, with researchgym importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), str(HERE), *filter(None, [env.get("PYTHONPATH")])]
    )
    return subprocess.Popen(
        [sys.executable, str(HERE / script), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
