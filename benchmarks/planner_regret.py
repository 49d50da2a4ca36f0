"""Held-out normalized regret of the transformer planner against random search and Optuna TPE.

One command trains the transformer planner from scratch on the recorded runs of
the env's *training* tasks, then runs every planner for ``--seeds`` campaigns of
``--steps`` experiments on each *held-out* task (never in the planner's
training data) of ``researchgym/Replay-v0``, and reports the final normalized
regret (see ``researchgym.evaluation``): median and interquartile range per
planner, with one-sided paired Wilcoxon tests of the transformer against each
baseline (same task and seed). Writes ``table.md``, ``results.json`` and
``anytime.png`` under ``--out`` (and, with ``--store``, every step to a store).

Run: ``python -m benchmarks.planner_regret [--env researchgym/Synthetic-v0] [--seeds 30]
[--steps 20] [--timesteps 1200] [--n-candidates 8] [--out runs/planner_regret]``
"""

from __future__ import annotations

import argparse
import inspect
import json
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from scipy.stats import wilcoxon

import researchgym  # noqa: F401 - registers the envs
from agents.transformer_planner import TrainConfig, TransformerPlanner, train_planner
from researchgym.envs.suites import suite_of
from researchgym.evaluation import RegretBench, markdown_table, plot_anytime, summarize
from researchgym.planning import make_planner
from researchgym.terminal import progress_bar


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--env", default="researchgym/Synthetic-v0", help="env whose recorded runs are replayed"
    )
    parser.add_argument(
        "--data", default=None, help="store of recorded runs (default: the shipped reference runs)"
    )
    parser.add_argument(
        "--seeds", type=int, default=30, help="campaigns per held-out task and planner"
    )
    parser.add_argument("--steps", type=int, default=20, help="experiments per campaign")
    parser.add_argument(
        "--set",
        dest="fixed",
        action="extend",
        nargs="+",
        default=None,
        help="pin settings (default: those the recorded runs pinned)",
    )
    parser.add_argument(
        "--timesteps",
        type=int,
        default=TrainConfig.steps,
        help="optimizer steps of the transformer planner",
    )
    parser.add_argument(
        "--n-candidates",
        type=int,
        default=inspect.signature(TransformerPlanner).parameters["n_candidates"].default,
        help="proposals decoded per step (best predicted kept)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--out", default="runs/planner_regret", help="output directory")
    parser.add_argument(
        "--store", default=None, help="also record every campaign step in this store"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    suite = suite_of(args.env)

    config = TrainConfig(
        env_id=args.env,
        stores=[] if args.data is None else [args.data],
        tasks=list(suite.tasks),
        steps=args.timesteps,
    )
    started = time.perf_counter()
    with progress_bar() as progress:
        bar = progress.add_task("training the transformer planner", total=config.steps, status="")
        policy = train_planner(
            config,
            out=out / "planner",
            progress=lambda done, loss: progress.update(
                bar, completed=done, status=f"loss {loss:.3f}"
            ),
        )
    train_seconds = time.perf_counter() - started

    fixed = suite.make_schema().parse_overrides(args.fixed) if args.fixed else None
    bench = RegretBench(
        args.env, data=args.data, budget=args.steps, fixed=fixed, store=args.store or False
    )
    planners = {
        "random": make_planner("random"),
        "tpe": make_planner("tpe"),
        "transformer": TransformerPlanner(policy, n_candidates=args.n_candidates),
    }
    seeds = range(args.seeds)
    results, seconds = [], {}
    with progress_bar() as progress:
        for name, planner in planners.items():
            bar = progress.add_task(
                f"{name} on {len(bench.tasks)} held-out tasks",
                total=len(bench.tasks) * args.seeds,
                status="",
            )
            started = time.perf_counter()
            results += bench.run(
                planner, seeds, name=name, progress=lambda bar=bar: progress.advance(bar)
            )
            seconds[name] = time.perf_counter() - started
    bench.close()

    rows = summarize(results)
    finals = {name: np.array([r.final for r in results if r.planner == name]) for name in planners}
    tests = {}
    for baseline in ("random", "tpe"):
        diff = finals["transformer"] - finals[baseline]
        p = wilcoxon(diff, alternative="less").pvalue if np.any(diff != 0) else 1.0
        tests[baseline] = {
            "p_less": float(p),
            "wins": int((diff < 0).sum()),
            "ties": int((diff == 0).sum()),
            "losses": int((diff > 0).sum()),
        }
    command = "python -m benchmarks.planner_regret " + shlex.join(
        argv if argv is not None else sys.argv[1:]
    )
    lines = [
        (
            f"Held-out normalized regret after {args.steps} experiments on {args.env} replayed "
            f"({len(bench.tasks)} held-out tasks x {args.seeds} seeds per planner)."
        ),
        "",
        markdown_table(rows),
        "",
        *(
            f"transformer vs {b}: {t['wins']} wins, {t['ties']} ties, {t['losses']} losses; "
            f"one-sided Wilcoxon p = {t['p_less']:.2g}"
            for b, t in tests.items()
        ),
        f"transformer planner trained in {train_seconds:.0f} s ({config.steps} steps, CPU, {args.threads} threads); "
        + ", ".join(f"{n} campaigns {s:.0f} s" for n, s in seconds.items()),
        f"command: `{command}`",
    ]
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(
        json.dumps(
            {
                "command": command,
                "tasks": bench.tasks,
                "train_seconds": train_seconds,
                "seconds": seconds,
                "summary": [asdict(r) for r in rows],
                "tests": tests,
                "campaigns": [asdict(r) for r in results],
            },
            indent=1,
        )
    )
    plot_anytime(results, out / "anytime.png", f"held-out tasks of {args.env} (replayed)")
    print("\n".join(lines))
    print(f"wrote {out / 'table.md'}, {out / 'results.json'} and {out / 'anytime.png'}")


if __name__ == "__main__":
    main()
