"""Shared fixtures: the suites' schemas and cheap executors for env-level tests."""

from __future__ import annotations

import math
import os
from collections.abc import Container, Iterable, Iterator, Mapping
from typing import Any

# One intra-op thread: the models here are tiny, and on a busy 2-core machine
# torch's thread pool is many times slower than one thread. Set before torch is
# imported so that executor workers (fresh interpreters) inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import gymnasium as gym
import pytest
import torch
from gymnasium.utils import env_checker
from hypothesis import settings

import researchgym  # noqa: F401 - registers the envs
from researchgym.engine import InProcessExecutor, LambdaHook, TrainingState
from researchgym.envs.research_env import MEASURED_INFO
from researchgym.envs.suites import get_suite
from researchgym.spaces import Float, Schema

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

# Timing varies a lot on a shared machine; examples are judged on results only.
settings.register_profile("researchgym", deadline=None)
settings.load_profile("researchgym")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` are skipped on machines without CUDA."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def slow_params(values: Iterable[Any], slow: Container[Any]) -> list[Any]:
    """``values`` for ``pytest.mark.parametrize``, those in ``slow`` (over ~5 s) marked ``slow``."""
    return [pytest.param(v, marks=pytest.mark.slow) if v in slow else v for v in values]


def stop_after(epochs: int) -> LambdaHook:
    """A hook that ends training after ``epochs`` epochs, whatever the metaprogram asks."""

    def stop(state: TrainingState) -> None:
        if state.epoch + 1 >= epochs:
            state.stop = True

    return LambdaHook(stop)


def capped_executor(epochs: int = 1) -> InProcessExecutor:
    """A CPU executor that trains at most ``epochs`` epochs (keeps random actions cheap)."""
    return InProcessExecutor(device="cpu", hooks=[stop_after(epochs)])


def without_measurements(info: Any) -> Any:
    """``info`` without the entries of ``MEASURED_INFO`` (wall-clock seconds); other values as is."""
    if not isinstance(info, Mapping):
        return info
    info = dict(info)
    for key, entry in MEASURED_INFO:
        if isinstance(info.get(key), Mapping):
            info[key] = {k: v for k, v in info[key].items() if k != entry}
    return info


def check_env(env: gym.Env, **kwargs: Any) -> None:
    """gymnasium's ``check_env``, whose step-determinism check compares infos exactly,
    comparing them without their measurements (``MEASURED_INFO``): seconds vary from run
    to run, everything else must not."""

    def equivalent(a: Any, b: Any, exact: bool = False) -> bool:
        return compare(without_measurements(a), without_measurements(b), exact)

    compare = env_checker.data_equivalence
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(env_checker, "data_equivalence", equivalent)
        env_checker.check_env(env, **kwargs)


def assert_same_metaprogram(
    schema: Schema, got: Mapping[str, Any], want: Mapping[str, Any], range_tol: float = 1e-7
) -> None:
    """Equal keys and values; floats to 1e-6 relative or ``range_tol`` of their range.

    The default ``range_tol`` is the resolution of a float32 coordinate in ``[-1, 1]``
    (flat actions are float32), spread over the setting's range.
    """
    assert list(got) == list(want)
    for name, value in want.items():
        setting = schema[name]
        if isinstance(setting, Float):
            tol = range_tol * (setting.high - setting.low)
            assert math.isclose(got[name], value, rel_tol=1e-6, abs_tol=tol), (
                name,
                got[name],
                value,
            )
        else:
            assert got[name] == value and type(got[name]) is type(value), (name, got[name], value)


@pytest.fixture(autouse=True)
def _no_leaked_global_state() -> Iterator[None]:
    """Fail a test that leaves torch's thread count, the working directory or the
    environment variables the code reads changed, so that the suite passes in any
    order (restore them with ``monkeypatch`` or a fixture's ``try``/``finally``)."""
    before = torch.get_num_threads(), os.getcwd(), _environment()
    yield
    after = torch.get_num_threads(), os.getcwd(), _environment()
    names = ("torch threads", "working directory", "environment")
    leaked = [
        name if name != "environment" else f"environment ({_changed_keys(old, new)})"
        for name, old, new in zip(names, before, after)
        if old != new
    ]
    assert not leaked, f"the test leaked global state: {', '.join(leaked)}"


# Variables that change what the code does (libraries set others of their own once, on import).
_WATCHED_PREFIXES = ("RESEARCHGYM_", "MINARI_", "OMP_", "MKL_", "CUDA_")


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(_WATCHED_PREFIXES)}


def _changed_keys(old: Mapping[str, str], new: Mapping[str, str]) -> str:
    return ", ".join(sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k)))


@pytest.fixture(scope="session")
def digits_schema() -> Schema:
    return get_suite("digits").make_schema()


@pytest.fixture(scope="session")
def tabular_schema() -> Schema:
    return get_suite("tabular").make_schema()


@pytest.fixture
def one_epoch_executor() -> InProcessExecutor:
    return capped_executor(1)
