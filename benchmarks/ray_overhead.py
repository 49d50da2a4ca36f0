"""Ray executor: per-step overhead against in-process training, and steps/s with 2 workers vs 1.

The job is a digits MLP (2 x 128, Adam, batch 64) on the CPU with one torch thread,
its epochs calibrated so that it trains for about ``--seconds`` in process.

* Overhead: the same job run one at a time by ``InProcessExecutor`` in this process
  and by ``RayExecutor`` as a Ray task (1 CPU), timed from the caller: submitting,
  scheduling, pickling the job and its result, and waiting. Repetitions are
  interleaved so drift hits both alike; medians are compared. On a busy machine the
  two medians drift apart by more than Ray's cost, so Ray's own cost per step (the
  wall time of a Ray step less the training time its worker measured) is reported
  too.
* Throughput: ``--jobs`` jobs through ``RayExecutor.run`` one after another (one
  worker busy) and through ``RayExecutor.run_many`` (one job per CPU of the local
  Ray, ``--cpus`` workers busy).

Everything runs on a local Ray started here with ``--cpus`` CPUs, after warm-up
jobs that start its workers and load the data they cache; ratios come from one run.

Run: ``python -m benchmarks.ray_overhead [--seconds 1.0] [--repeats 20] [--jobs 8] [--cpus 2]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # as a Ray task with 1 CPU gets

import torch

from researchgym.engine import InProcessExecutor, Job, RayExecutor, TaskRef
from researchgym.envs.suites import get_suite

TASK = TaskRef("digits")


def _timed(run, *args, **kwargs):
    start = time.perf_counter()
    result = run(*args, **kwargs)
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="target length of a job")
    parser.add_argument("--repeats", type=int, default=20, help="timed jobs per side")
    parser.add_argument("--jobs", type=int, default=8, help="jobs of the throughput runs")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    schema = get_suite("digits").make_schema()
    local = InProcessExecutor(device="cpu")
    probe = schema.validate({"model.family": "mlp", "train.epochs": 5})
    local.run(probe, task=TASK, seed=0)  # loads the data and imports what training needs
    seconds = min(_timed(local.run, probe, task=TASK, seed=0)[0] for _ in range(3))
    epochs = max(1, min(100, round(5 * args.seconds / seconds)))
    job = schema.validate({"model.family": "mlp", "train.epochs": epochs})

    with RayExecutor(num_cpus=args.cpus, device="cpu") as ray_executor:
        # warm-up: start every worker and have each load the data
        ray_executor.run_many([Job(probe, TASK, s) for s in range(4)])
        same = ray_executor.run(job, task=TASK, seed=0).val_metrics == (
            local.run(job, task=TASK, seed=0).val_metrics
        )

        local_times, ray_times, ray_costs = [], [], []
        for seed in range(args.repeats):
            local_times.append(_timed(local.run, job, task=TASK, seed=seed)[0])
            wall, result = _timed(ray_executor.run, job, task=TASK, seed=seed)
            ray_times.append(wall)
            ray_costs.append(wall - result.seconds)  # all but the training the worker timed

        jobs = [Job(job, TASK, s) for s in range(args.jobs)]
        one_at_a_time, _ = _timed(lambda: [ray_executor.run_job(j) for j in jobs])
        all_at_once, results = _timed(ray_executor.run_many, jobs)
        if failed := [r.error for r in results if not r.ok]:
            raise SystemExit(f"{len(failed)} jobs failed, the first with: {failed[0]}")

    local_med, ray_med = statistics.median(local_times), statistics.median(ray_times)
    serial_rate, parallel_rate = args.jobs / one_at_a_time, args.jobs / all_at_once
    words = argv if argv is not None else sys.argv[1:]
    print(f"command: python -m benchmarks.ray_overhead {' '.join(words)}".rstrip())
    print(
        f"job: digits MLP 2x128, {epochs} epochs, CPU, 1 torch thread; torch {torch.__version__}; "
        f"local Ray with {args.cpus} CPUs; this machine has {os.cpu_count()} cores"
    )
    print(f"Ray result equals in-process (same seed): {same}")
    print(
        f"in-process run     median {local_med * 1e3:8.1f} ms  (min {min(local_times) * 1e3:.1f})"
    )
    print(f"RayExecutor.run    median {ray_med * 1e3:8.1f} ms  (min {min(ray_times) * 1e3:.1f})")
    print(
        f"overhead: ray/in-process = {ray_med / local_med:.4f}  "
        f"({(ray_med / local_med - 1) * 100:+.2f}%, target < +5%)"
    )
    cost = statistics.median(ray_costs)
    print(
        f"Ray's own cost per step (wall time less the training time the worker measured): "
        f"median {cost * 1e3:.1f} ms = {cost / local_med * 100:.2f}% of the in-process step"
    )
    print(f"{args.jobs} jobs, 1 worker busy (run)         {serial_rate:6.3f} steps/s")
    print(f"{args.jobs} jobs, {args.cpus} workers busy (run_many)   {parallel_rate:6.3f} steps/s")
    print(f"speed-up with {args.cpus} workers vs 1: {parallel_rate / serial_rate:.2f}x")


if __name__ == "__main__":
    main()
