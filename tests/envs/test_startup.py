"""Envs that answer steps without training start without the training stack."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "sklearn", "pandas")

SCRIPT = """
import json, sys
import gymnasium as gym
import researchgym

env = gym.make(sys.argv[1])
env.reset(seed=0)
env.step(env.action_space.sample())
env.close()
print(json.dumps(sorted(m for m in {heavy} if m in sys.modules)))
"""


@pytest.mark.parametrize("env_id", ["researchgym/Replay-v0", "researchgym/Surrogate-v0"])
def test_fast_envs_step_without_importing_torch_or_sklearn(env_id):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(heavy=HEAVY), env_id],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_listing_envs_imports_no_training_stack():
    script = (
        "import contextlib, sys; from researchgym.cli import app\n"
        "with contextlib.suppress(SystemExit): app(['envs'], prog_name='researchgym')\n"
        f"print(sorted(m for m in {HEAVY} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.splitlines()[-1] == "[]"
