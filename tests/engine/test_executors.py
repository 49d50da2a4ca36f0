"""Executors: every failure of a training job becomes a Result with a status."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from researchgym.engine import (
    InProcessExecutor,
    LambdaHook,
    SubprocessExecutor,
    TaskRef,
    TrainingTimeout,
    failure_result,
    train,
)


def cheap(schema, **settings):
    return schema.validate({"model.family": "linear", "train.epochs": 2, **settings})


# --- mapping exceptions to statuses ----------------------------------------------------------
@pytest.mark.parametrize(
    "exc, status",
    [
        (TrainingTimeout("ran past its budget"), "timeout"),
        (MemoryError("cannot allocate memory for array"), "oom"),
        (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), "oom"),
        (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate"), "oom"),
        (ValueError("shapes do not match"), "error"),
        (KeyError("model.width"), "error"),
    ],
)
def test_failure_result_maps_exceptions_to_statuses(exc, status):
    try:
        raise exc
    except Exception as caught:  # noqa: BLE001 - a traceback is part of the case
        result = failure_result(caught, seconds=1.5)
    assert result.status == status
    assert type(exc).__name__ in result.error
    assert result.seconds == 1.5
    assert result.score is None and result.val_metrics == {}


def test_failure_result_of_an_error_includes_where_it_happened():
    def broken():
        raise ValueError("bad shape")

    try:
        broken()
    except ValueError as exc:
        result = failure_result(exc)
    assert result.status == "error"
    assert "ValueError: bad shape" in result.error and "broken" in result.error


# --- in-process ------------------------------------------------------------------------------
def test_in_process_gives_the_same_result_as_train(tabular_schema):
    m = cheap(tabular_schema)
    result = InProcessExecutor(device="cpu").run(m, task=TaskRef("iris"), seed=3)
    direct = train(m, task="iris", seed=3, device="cpu")
    assert result.status == "ok"
    assert result.val_metrics == direct.val_metrics and result.curve == direct.curve


def test_in_process_hook_exception_becomes_error(tabular_schema):
    def explode(state):
        raise RuntimeError(f"hook failed at epoch {state.epoch}")

    executor = InProcessExecutor(device="cpu", hooks=[LambdaHook(explode)])
    result = executor.run(cheap(tabular_schema), task=TaskRef("iris"), seed=0)
    assert result.status == "error"
    assert "RuntimeError: hook failed at epoch 0" in result.error
    assert result.seconds > 0


def test_in_process_unknown_task_becomes_error(tabular_schema):
    result = InProcessExecutor(device="cpu").run(
        cheap(tabular_schema), task=TaskRef("nope"), seed=0
    )
    assert result.status == "error" and "nope" in result.error


def test_in_process_timeout(digits_schema):
    executor = InProcessExecutor(device="cpu", timeout=0.05)
    result = executor.run(
        digits_schema.validate({"train.epochs": 100}), task=TaskRef("digits"), seed=0
    )
    assert result.status == "timeout"
    assert "0.05s budget" in result.error
    match = re.search(r"stopped after epoch (\d+) of 100", result.error)
    assert match and int(match.group(1)) < 100


def test_in_process_propagates_nothing_for_a_diverged_run(tabular_schema):
    m = tabular_schema.validate(
        {
            "optim.name": "sgd",
            "optim.lr": 1.0,
            "optim.momentum": 0.99,
            "model.depth": 4,
            "data.scaling": "none",
        }
    )
    result = InProcessExecutor(device="cpu").run(m, task=TaskRef("diabetes"), seed=0)
    assert result.status == "diverged" and result.error


# --- subprocess ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def worker():
    executor = SubprocessExecutor(device="cpu", timeout=120)
    yield executor
    executor.close()


def test_subprocess_matches_in_process(worker, tabular_schema):
    m = cheap(tabular_schema, **{"model.family": "mlp"})
    remote = worker.run(m, task=TaskRef("wine"), seed=4)
    local = train(m, task="wine", seed=4, device="cpu")
    assert remote.status == "ok"
    assert remote.val_metrics == local.val_metrics  # bitwise: same seed, same CPU
    assert remote.test_metrics == local.test_metrics
    assert remote.curve == local.curve
    assert remote.samples == local.samples and remote.n_params == local.n_params


def test_subprocess_error_keeps_the_worker(worker, tabular_schema):
    failed = worker.run(cheap(tabular_schema), task=TaskRef("nope"), seed=0)
    assert failed.status == "error" and "nope" in failed.error
    pid = worker._worker.process.pid
    ok = worker.run(cheap(tabular_schema), task=TaskRef("iris"), seed=0)
    assert ok.status == "ok"
    assert worker._worker.process.pid == pid


@pytest.mark.slow
def test_subprocess_timeout_stops_the_job_and_the_next_job_gets_a_fresh_worker(
    worker, digits_schema, tabular_schema, monkeypatch
):
    assert worker.run(cheap(tabular_schema), task=TaskRef("iris"), seed=0).status == "ok"
    old = worker._worker.process
    monkeypatch.setattr(worker, "timeout", 0.5)
    slow = worker.run(digits_schema.validate({"train.epochs": 100}), task=TaskRef("digits"), seed=0)
    assert slow.status == "timeout"
    assert "0.5s budget" in slow.error
    assert 0.5 <= slow.seconds < 10
    assert old.poll() is not None  # the runaway worker was killed
    # a fresh worker, and the job's 0.5 s do not include its start-up
    fast = worker.run(cheap(tabular_schema), task=TaskRef("iris"), seed=0)
    assert fast.status == "ok", fast.error
    assert worker._worker.process is not old


def test_subprocess_close_is_idempotent(worker, tabular_schema):
    assert worker.run(cheap(tabular_schema), task=TaskRef("iris"), seed=0).status == "ok"
    process = worker._worker.process
    worker.close()
    assert process.poll() is not None
    worker.close()


def test_subprocess_keeps_one_warm_worker_and_with_stops_it(tabular_schema):
    with SubprocessExecutor(device="cpu", timeout=120) as executor:
        first = executor.run(cheap(tabular_schema), task=TaskRef("iris"), seed=0)
        process = executor._worker.process
        second = executor.run(cheap(tabular_schema), task=TaskRef("wine"), seed=1)
        assert first.status == second.status == "ok"
        assert executor._worker.process is process
    assert process.poll() is not None  # stopped and reaped: no zombie left behind
    assert executor._worker is None


def test_workers_left_running_stop_when_the_interpreter_exits():
    script = (
        "from researchgym.engine import SubprocessExecutor, TaskRef\n"
        "from researchgym.envs.suites import get_suite\n"
        "schema = get_suite('tabular').make_schema()\n"
        "executor = SubprocessExecutor(device='cpu', timeout=120)\n"
        "m = schema.validate({'model.family': 'linear', 'train.epochs': 1})\n"
        "assert executor.run(m, task=TaskRef('iris'), seed=0).status == 'ok'\n"
        "print(executor._worker.process.pid)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    pid = int(done.stdout.split()[-1])
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
def test_in_process_on_cuda(tabular_schema):
    result = InProcessExecutor(device="cuda").run(
        cheap(tabular_schema), task=TaskRef("iris"), seed=0
    )
    assert result.status == "ok" and result.device.startswith("cuda")
