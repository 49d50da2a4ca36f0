"""Fixtures of the planner tests: cheap Tabular envs recording into a temporary store."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
from planner_testing import ENV_ID

import researchgym  # noqa: F401  (registers the envs)


@pytest.fixture
def without_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Imports of ray fail, as on a machine where it is not installed."""
    monkeypatch.setitem(sys.modules, "ray", None)
    for name in [m for m in sys.modules if m == "agents.ppo_rllib"]:
        monkeypatch.delitem(sys.modules, name)


@pytest.fixture
def without_nevergrad(monkeypatch: pytest.MonkeyPatch) -> None:
    """Imports of nevergrad fail, as on a machine where it is not installed."""
    monkeypatch.setitem(sys.modules, "nevergrad", None)


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def make_env(store_dir: Path) -> Iterator[Callable[..., gym.Env]]:
    """Build Tabular envs (budget 3) recording into ``store_dir``; closed after the test."""
    made: list[gym.Env] = []

    def make(**kwargs: Any) -> gym.Env:
        env = gym.make(ENV_ID, **{"store": store_dir, "budget": 3, **kwargs})
        made.append(env)
        return env

    yield make
    for env in made:
        env.close()
