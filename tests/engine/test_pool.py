"""``run_jobs``: the same results in this process and in a pool (of processes or threads),
errors passed on."""

from __future__ import annotations

import operator
import threading

import pytest

from researchgym.engine.pool import run_jobs


def test_jobs_run_here_in_order_and_in_a_pool_as_they_finish():
    jobs = [(1, 2), (3, 4), (5, 6)]
    assert list(run_jobs(operator.add, jobs)) == [3, 7, 11]
    assert sorted(run_jobs(operator.add, jobs, workers=2)) == [3, 7, 11]
    assert sorted(run_jobs(operator.add, jobs, workers=2, threads=True)) == [3, 7, 11]


def test_threads_run_the_jobs_beside_the_caller():
    def thread(_):
        return threading.get_ident()

    idents = set(run_jobs(thread, [(i,) for i in range(4)], workers=2, threads=True))
    assert threading.get_ident() not in idents and 1 <= len(idents) <= 2


@pytest.mark.parametrize("threads", [False, True])
def test_a_failing_job_raises_in_the_consumer(threads):
    with pytest.raises(ZeroDivisionError):
        list(run_jobs(operator.truediv, [(1, 1), (1, 0)], workers=2, threads=threads))
