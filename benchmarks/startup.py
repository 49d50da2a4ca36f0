"""Start-up and worker cost: cold starts of envs, and the subprocess executor's cost per step.

* Cold start: a fresh interpreter runs ``gym.make`` + ``reset`` + one ``step`` of
  Replay-v0 (answered from recorded runs) and of Digits-v0 (trains a 2-epoch
  MLP). Reported: the child's wall and CPU time from start to exit (CPU time is
  the steadier on a shared machine), the part spent in imports + make + reset +
  step, and whether torch / scikit-learn were imported. Children read compiled
  bytecode, as an installed package does: an untimed first run writes it to a
  temporary ``PYTHONPYCACHEPREFIX`` (even under ``PYTHONDONTWRITEBYTECODE``).
* Per step: the same 2-epoch Digits MLP job (about 0.5 s on a busy 2-core CPU)
  run by :class:`InProcessExecutor` and by :class:`SubprocessExecutor` after a
  warm-up job each, interleaved so drift hits both alike; the overhead is the
  ratio of medians measured in this run.

Run: ``python -m benchmarks.startup [--repeats 5] [--threads 1]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

COLD_START = """
import json, sys, time
started = time.perf_counter()
import gymnasium as gym
import researchgym

env = gym.make(sys.argv[1], store=False)
env.reset(seed=0)
action = env.unwrapped.schema.to_space({"model.family": "mlp", "train.epochs": 2})
env.step(action)
print(json.dumps({"seconds": time.perf_counter() - started,
                  "torch": "torch" in sys.modules, "sklearn": "sklearn" in sys.modules}))
"""

JOB = {"model.family": "mlp", "train.epochs": 2}


def cold_start(env_id: str, repeats: int, bytecode: str) -> dict[str, float | bool]:
    """Medians over fresh interpreters: the process's wall and CPU time, and the in-process part.

    ``bytecode`` is the directory the children cache compiled modules in.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = bytecode
    command = [sys.executable, "-c", COLD_START, env_id]
    subprocess.run(command, env=env, capture_output=True, check=True)  # compiles the modules
    walls, cpus, insides, child = [], [], [], {}
    for _ in range(repeats):
        started, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        child = json.loads(done.stdout.splitlines()[-1])
        insides.append(child["seconds"])
    return {
        "process": statistics.median(walls),
        "cpu": statistics.median(cpus),
        "make_reset_step": statistics.median(insides),
        "torch": child["torch"],
        "sklearn": child["sklearn"],
    }


def per_step(repeats: int) -> tuple[float, float]:
    """Median seconds per job of the in-process and the subprocess executor."""
    from researchgym.engine import InProcessExecutor, SubprocessExecutor, TaskRef
    from researchgym.envs.suites import get_suite

    metaprogram = get_suite("digits").make_schema().validate(JOB)
    task = TaskRef("digits")
    times: dict[str, list[float]] = {"in-process": [], "subprocess": []}
    executors = {
        "in-process": InProcessExecutor(device="cpu"),
        "subprocess": SubprocessExecutor(device="cpu", timeout=600),
    }
    try:
        for executor in executors.values():  # warm-up: worker start, imports, task data
            assert executor.run(metaprogram, task=task, seed=0).ok
        for seed in range(repeats):
            for name, executor in executors.items():
                started = time.perf_counter()
                result = executor.run(metaprogram, task=task, seed=seed)
                times[name].append(time.perf_counter() - started)
                assert result.ok, result.error
    finally:
        for executor in executors.values():
            executor.close()
    return statistics.median(times["in-process"]), statistics.median(times["subprocess"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs of each measurement")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (OMP_NUM_THREADS)")
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # children and the worker inherit it

    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as bytecode:
        rows = {
            env_id: cold_start(env_id, args.repeats, bytecode)
            for env_id in ("researchgym/Replay-v0", "researchgym/Digits-v0")
        }
    local, remote = per_step(args.repeats)

    print(f"command: python -m benchmarks.startup {' '.join(argv or sys.argv[1:])}".rstrip())
    print(f"medians of {args.repeats} runs, {args.threads} torch thread(s)")
    print()
    print(
        "| cold start (fresh process)  | process s | CPU s | make+reset+step s | torch | sklearn |"
    )
    print(
        "|-----------------------------|-----------|-------|-------------------|-------|---------|"
    )
    for env_id, row in rows.items():
        print(
            f"| {env_id:<27} | {row['process']:9.2f} | {row['cpu']:5.2f} "
            f"| {row['make_reset_step']:17.2f} "
            f"| {'yes' if row['torch'] else 'no':<5} | {'yes' if row['sklearn'] else 'no':<7} |"
        )
    print()
    print("| 2-epoch Digits MLP job | s per step |")
    print("|------------------------|------------|")
    print(f"| InProcessExecutor      | {local:10.3f} |")
    print(f"| SubprocessExecutor     | {remote:10.3f} |")
    print(f"subprocess overhead per step: {(remote / local - 1) * 100:+.1f}% (target < +10%)")


if __name__ == "__main__":
    main()
