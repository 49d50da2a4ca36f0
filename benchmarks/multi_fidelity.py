"""Multi-fidelity planners against random search: the compute they need to match it.

Real training on Digits-v0 and Synthetic-v0, each made forkable with
``max_epochs=R`` (so every run's learning-rate schedule spans R epochs). For each
task and seed:

1. random search trains ``--random-runs`` random configurations for R epochs; its
   final best validation score and the compute it spent are the reference;
2. each planner of ``--planners`` (Hyperband and ASHA by default) searches the same
   task with fidelities up to R until it has spent ``--max-ratio`` times random's
   compute; the compute it spent until its best validation score first reached
   random's final best, over random's total, is its *ratio* (``inf`` when it never
   did; target <= 0.5, median over seeds);
3. PBT (``--population`` members trained ``--interval`` epochs at a time up to R)
   against as many independent random runs of R epochs, the same epochs in all: the
   best validation score each found.

Compute is what the env reports for each step (``info["cost"]``): training seconds,
or with ``--cost samples`` the examples processed (deterministic). The anytime plot
(best score against compute, median over seeds) is saved as a PNG.

With ``--replay`` the same campaigns run on Replay-v0 instead, answered from the
shipped runs recorded with full curves at ``max_epochs=27`` (nearest recorded
metaprogram, its curve at the asked fidelity; see ``researchgym.envs.replay``), in
seconds instead of hours. Forks cannot be replayed, so PBT is left out.

Run: ``python -m benchmarks.multi_fidelity [--seeds 10] [--tasks digits synthetic]
[--max-epochs 27] [--random-runs 20] [--planners hyperband asha] [--replay] [--plot PATH]``
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import researchgym  # noqa: F401 - registers the envs
from researchgym.envs.suites import suite_of
from researchgym.planning import CampaignResult, make_planner, run_campaign
from researchgym.plotting import pyplot, save_figure

#: Benchmark task -> (env id, task of the env).
TASKS = {
    "digits": ("researchgym/Digits-v0", "digits"),
    "synthetic": ("researchgym/Synthetic-v0", "synth_cls?seed=0"),
}


def anytime(result: CampaignResult, cost: str) -> list[tuple[float, float]]:
    """``(compute spent, best validation score so far)`` after each step that scored."""
    spent, points = 0.0, []
    for step, best in zip(result.steps, result.best_so_far(), strict=True):
        spent += step.info["cost"][cost]
        if best is not None:
            points.append((spent, best))
    return points


def compute_to_reach(points: list[tuple[float, float]], target: float) -> float:
    """Compute spent when the best score first reached ``target`` (``inf``: never)."""
    return next((spent for spent, best in points if best >= target), math.inf)


def campaign(
    task: str,
    planner: Any,
    *,
    seed: int,
    budget: int,
    max_epochs: int,
    fixed: dict[str, Any],
    cost: str,
    replay: bool = False,
    limit: float = math.inf,
) -> list[tuple[float, float]]:
    """One campaign of ``planner`` on ``task``'s forkable env (or its replay), ended by the
    step that spends ``limit`` of compute: its anytime points."""
    env_id, task_name = TASKS[task]
    made: dict[str, Any] = {"id": env_id}
    if replay:
        made = {"id": "researchgym/Replay-v0", "source": env_id, "missing": "nearest"}
    env = gym.make(
        **made,
        forkable=True,
        max_epochs=max_epochs,
        budget=budget,
        cost_budget=None if math.isinf(limit) else {cost: limit},
        store=False,
        disable_env_checker=True,
    )
    try:
        result = run_campaign(env, planner, seed=seed, fixed=fixed, options={"task": task_name})
    finally:
        env.close()
    return anytime(result, cost)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def plot(curves: dict[str, dict[str, list[list[tuple[float, float]]]]], cost: str, path: Path):
    """Best score against compute, one panel per task, the median over seeds per planner
    (drawn up to the planner's longest campaign)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 3.8), squeeze=False)
    for ax, (task, by_planner) in zip(axes[0], curves.items(), strict=True):
        spent = [c for runs in by_planner.values() for points in runs for c, _ in points]
        grid = np.unique(np.concatenate([np.linspace(0.0, max(spent, default=1.0), 200), spent]))
        for name, runs in by_planner.items():
            table = np.full((len(runs), len(grid)), np.nan)
            for i, points in enumerate(runs):
                for spent_here, best in points:  # a campaign keeps its best once it ended
                    table[i, grid >= spent_here] = best
            with warnings.catch_warnings():  # columns before any run scored: all NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                curve = np.nanmedian(table, axis=0)
            curve[grid > max((p[-1][0] for p in runs if p), default=0.0)] = np.nan
            ax.step(grid, curve, where="post", label=name)
        ax.set_title(task)
        ax.set_xlabel(f"compute ({cost})")
        ax.set_ylabel("best validation score")
        ax.legend()
    return save_figure(fig, path)


def print_pbt_table(
    args: argparse.Namespace,
    bests: dict[tuple[str, str], list[float]],
    spent: dict[tuple[str, str], list[float]],
) -> None:
    """PBT's best scores against those of as many independent runs, median over seeds."""
    print()
    print(f"PBT ({args.population} members, {args.interval} epochs a generation) against "
          f"{args.population} independent runs of R epochs")  # fmt: skip
    print()
    print("| task | PBT best | independent best | PBT better | PBT compute | independent compute |")
    print("|------|----------|------------------|------------|-------------|---------------------|")
    for task in args.tasks:
        pbt, alone = bests[task, "pbt"], bests[task, "independent"]
        wins = sum(p > a for p, a in zip(pbt, alone, strict=True))
        print(
            f"| {task} | {median(pbt):.4f} | {median(alone):.4f} | {wins}/{len(pbt)} "
            f"| {median(spent[task, 'pbt']):.4g} | {median(spent[task, 'independent']):.4g} |"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="campaigns per task and planner")
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=sorted(TASKS))
    parser.add_argument("--max-epochs", type=int, default=27, help="highest fidelity R")
    parser.add_argument("--random-runs", type=int, default=20, help="random search's runs of R")
    parser.add_argument("--planners", nargs="+", default=["hyperband", "asha"])
    parser.add_argument("--eta", type=int, default=3)
    parser.add_argument("--max-ratio", type=float, default=2.0, help="compute cap, x random's")
    parser.add_argument("--max-steps", type=int, default=1000, help="step budget of a campaign")
    parser.add_argument("--population", type=int, default=8, help="PBT members")
    parser.add_argument("--interval", type=int, default=3, help="PBT epochs per generation")
    parser.add_argument("--cost", choices=("seconds", "samples"), default="seconds")
    parser.add_argument("--replay", action="store_true", help="replay recorded curves instead")
    parser.add_argument(
        "--set", dest="fixed", action="append", default=[], help="pin a setting, as name=value"
    )
    parser.add_argument("--plot", type=Path, default=Path("benchmarks/results/multi_fidelity.png"))
    args = parser.parse_args(argv)
    if args.random_runs < 2 or args.population < 2:
        parser.error("--random-runs and --population need 2 or more (a forkable env's budget)")

    full = args.max_epochs
    ratios: dict[tuple[str, str], list[float]] = {}
    bests: dict[tuple[str, str], list[float]] = {}
    spent: dict[tuple[str, str], list[float]] = {}
    curves: dict[str, dict[str, list[list[tuple[float, float]]]]] = {}
    for task in args.tasks:
        env_id, _ = TASKS[task]
        pins = suite_of(env_id).make_schema().parse_overrides(args.fixed)
        curves[task] = {}

        def run(name: str, points: list[tuple[float, float]], task: str = task) -> None:
            best = f"{points[-1][1]:.4f}" if points else "-"
            print(f"{task} {name}: {len(points)} steps, best {best}", file=sys.stderr, flush=True)
            curves[task].setdefault(name, []).append(points)
            bests.setdefault((task, name), []).append(points[-1][1] if points else math.nan)
            spent.setdefault((task, name), []).append(points[-1][0] if points else math.nan)

        for seed in range(args.seeds):
            common = {"seed": seed, "max_epochs": full, "cost": args.cost, "replay": args.replay}
            at_full = {**pins, "train.epochs": full}
            reference = campaign(
                task, make_planner("random"), budget=args.random_runs, fixed=at_full, **common
            )
            run("random", reference)
            if not reference:
                sys.exit(f"random search trained no run on {task} (seed {seed}); nothing to match")
            total, target = reference[-1]
            for name in args.planners:
                points = campaign(
                    task,
                    make_planner(name, max_epochs=full, eta=args.eta),
                    budget=args.max_steps,
                    fixed=pins,
                    limit=args.max_ratio * total,
                    **common,
                )
                run(name, points)
                ratios.setdefault((task, name), []).append(compute_to_reach(points, target) / total)
            if args.replay:
                continue  # forks cannot be replayed
            population = make_planner(
                "pbt", population=args.population, interval=args.interval, max_epochs=full
            )
            generations = math.ceil(full / args.interval)
            run(
                "pbt",
                campaign(
                    task, population, budget=args.population * generations + 1, fixed=pins, **common
                ),
            )
            independent = campaign(
                task, make_planner("random"), budget=args.population, fixed=at_full, **common
            )
            run("independent", independent)

    print(f"command: python -m benchmarks.multi_fidelity {' '.join(argv or sys.argv[1:])}".rstrip())
    print(
        f"{args.seeds} seed(s); R={full} epochs, eta={args.eta}; random search: "
        f"{args.random_runs} runs of R; compute: {args.cost}; medians over seeds"
        + ("; replayed from recorded curves" if args.replay else "")
    )
    print()
    print("Compute to reach random search's final best, as a ratio to random's (target <= 0.5)")
    print()
    print("| task | planner | ratio | reached | best score | random's best | compute |")
    print("|------|---------|-------|---------|------------|---------------|---------|")
    for (task, name), values in ratios.items():
        reached = sum(math.isfinite(v) for v in values)
        print(
            f"| {task} | {name} | {median(values):.3f} | {reached}/{len(values)} "
            f"| {median(bests[task, name]):.4f} | {median(bests[task, 'random']):.4f} "
            f"| {median(spent[task, name]):.4g} |"
        )
    if not args.replay:
        print_pbt_table(args, bests, spent)
    print()
    print(f"anytime plot: {plot(curves, args.cost, args.plot)}")


if __name__ == "__main__":
    main()
