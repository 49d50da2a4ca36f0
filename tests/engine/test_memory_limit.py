"""A subprocess worker's memory limit: a small job fits, an oversized one is ``oom``."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from researchgym.engine import SubprocessExecutor, TaskRef
from researchgym.envs.suites import get_suite

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not sys.platform.startswith("linux"), reason="reads /proc to size the limit"
    ),
]

# A parity task whose training inputs alone are 10**6 x 1024 int64 values (8 GiB).
OVERSIZED_TASK = TaskRef("parity?length=1024&n_train=1000000")
IRIS = TaskRef("iris")


def _peak_mb(pid: int) -> int:
    """Peak address space of a process in MB, from ``/proc/<pid>/status``."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmPeak:\s+(\d+) kB", status).group(1)) // 1024


def test_small_job_is_ok_and_an_oversized_one_is_oom(tabular_schema):
    small = tabular_schema.validate({"model.family": "linear", "train.epochs": 2})
    # The limit is sized from what a worker needs on this machine (torch's address space
    # depends on the build and the thread count), plus 1 GiB: far below the oversized job.
    unlimited = SubprocessExecutor(device="cpu", timeout=120)
    try:
        assert unlimited.run(small, task=IRIS, seed=0).status == "ok"
        limit_mb = _peak_mb(unlimited._worker.process.pid) + 1024
    finally:
        unlimited.close()

    executor = SubprocessExecutor(device="cpu", timeout=120, memory_limit_mb=limit_mb)
    try:
        fits = executor.run(small, task=IRIS, seed=0)
        assert fits.status == "ok", fits.error
        seqarch = get_suite("seqarch").make_schema().validate({"train.epochs": 1})
        oversized = executor.run(seqarch, task=OVERSIZED_TASK, seed=0)
        assert oversized.status == "oom"
        assert f"more memory than the worker's {limit_mb} MB limit" in oversized.error
        assert "MemoryError" in oversized.error and "raise the limit" in oversized.error
        assert oversized.score is None
        assert executor._worker is None  # replaced: a failed allocation can leave it unusable
        again = executor.run(small, task=IRIS, seed=0)
        assert again.status == "ok" and again.val_metrics == fits.val_metrics
    finally:
        executor.close()
