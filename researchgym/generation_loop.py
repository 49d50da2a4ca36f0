"""The generation loop: a planner that learns from the research it does.

Each round trains the transformer planner on every stored run of the env's
training tasks (the starting data plus all campaigns of earlier rounds;
round 0 from scratch, later rounds continuing from the previous checkpoint),
measures its normalized regret on the suite's held-out tasks (replayed from
recorded runs, see :mod:`researchgym.evaluation`), then lets it run new
campaigns on the training tasks with real training, recorded into the loop's
store, so the next round learns from them.

    researchgym generation-loop --env researchgym/Synthetic-v0 --rounds 3 --out runs/generation_loop
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from researchgym.evaluation import RegretBench, summarize
from researchgym.planning import PlannerError, make_planner, make_trainer, run_campaign

__all__ = ["RoundReport", "generation_loop", "plot_rounds"]


@dataclass(frozen=True)
class RoundReport:
    """What one round of the loop trained on, how long it took and how well it did."""

    round: int
    training_runs: int
    train_seconds: float
    held_out_median_regret: float
    held_out_q25: float
    held_out_q75: float
    held_out_campaigns: int
    new_runs: int
    campaign_best_mean: float | None
    checkpoint: str


def _has_rows(path: Path) -> bool:
    from researchgym.store import open_store

    with open_store(path) as opened:
        return opened.info()["rows"] > 0


def generation_loop(
    env_id: str,
    *,
    out: str | Path,
    store: str | Path,
    data: str | Path | None = None,
    rounds: int = 3,
    campaigns: int = 24,
    budget: int = 20,
    steps: int = 800,
    later_steps: int | None = None,
    eval_seeds: int = 10,
    fixed: Mapping[str, Any] | None = None,
    n_candidates: int = 8,
    seed: int = 0,
    train_options: Mapping[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> list[RoundReport]:
    """Run ``rounds`` rounds of train -> evaluate on held-out tasks -> run campaigns.

    Args:
        env_id: a real env whose suite has held-out tasks (e.g. ``researchgym/Synthetic-v0``).
        out: directory of the checkpoints (``round0``, ...), ``rounds.json`` and ``rounds.png``.
        store: store the planner's campaigns are recorded in (and learned from).
        data: store of the starting runs, also used to replay the held-out tasks
            (default: the shipped reference runs).
        rounds: rounds to run.
        campaigns: campaigns per round, on the suite's training tasks in turn.
        budget: experiments per campaign (training and held-out evaluation).
        steps: optimizer steps of round 0.
        later_steps: optimizer steps of each later round (default: ``steps // 2``).
        eval_seeds: held-out campaigns per task and round.
        fixed: settings pinned in every experiment (default: those the starting runs pinned).
        n_candidates: proposals decoded per step, the best predicted kept.
        seed: seed of training and campaigns.
        train_options: other training options of the transformer planner (``TrainConfig`` fields).
        log: receives one line per phase.

    Returns:
        One :class:`RoundReport` per round (also written to ``out/rounds.json``).
    """
    import gymnasium as gym

    from researchgym.envs.replay import REFERENCE_STORE
    from researchgym.envs.suites import suite_of

    if rounds < 1 or campaigns < 0 or budget < 1 or eval_seeds < 1:
        raise PlannerError(
            f"rounds={rounds}, budget={budget} and eval_seeds={eval_seeds} must be >= 1 and campaigns={campaigns} >= 0"
        )
    suite = suite_of(env_id)
    tasks = list(suite.tasks)
    out, store = Path(out), Path(store)
    train = make_trainer("transformer")
    reports: list[RoundReport] = []
    checkpoint: Path | None = None
    with contextlib.ExitStack() as stack:
        bench = RegretBench(env_id, data=data, budget=budget, fixed=fixed)
        stack.callback(bench.close)
        if store.exists() and _has_rows(store):
            raise PlannerError(
                f"the store {store} already holds runs; give the loop a new --store, so round 0 learns only from --data"
            )
        fixed = bench.fixed
        env = gym.make(
            env_id,
            budget=budget,
            store=str(store),
            tasks=tasks,
            agent="transformer",
            disable_env_checker=True,
        )
        stack.callback(env.close)
        for r in range(rounds):
            stores = [str(data if data is not None else REFERENCE_STORE)] + (
                [str(store)] if store.exists() else []
            )
            log(
                f"round {r}: training on the runs of {len(tasks)} training tasks in {', '.join(stores)}"
            )
            started = time.perf_counter()
            checkpoint = train(
                env_id,
                total_timesteps=steps if r == 0 else (later_steps or max(1, steps // 2)),
                seed=seed + r,
                save_path=out / f"round{r}",
                data=stores,
                tasks=tasks,
                init_from=None if checkpoint is None else str(checkpoint),
                **dict(train_options or {}),
            )
            train_seconds = time.perf_counter() - started
            training_runs = json.loads((checkpoint / "training.json").read_text())["n_runs"]
            planner = make_planner("transformer", policy=checkpoint, n_candidates=n_candidates)
            held_out = summarize(bench.run(planner, range(eval_seeds), name=f"round{r}"))[0]
            log(
                f"round {r}: trained on {training_runs} runs in {train_seconds:.0f} s; held-out normalized regret "
                f"median {held_out.median:.4f} (IQR {held_out.q25:.4f}-{held_out.q75:.4f}, {held_out.campaigns} campaigns)"
            )
            bests, new_runs = [], 0
            for c in range(campaigns):
                result = run_campaign(
                    env,
                    planner,
                    seed=seed + 1000 * (r + 1) + c,
                    fixed=fixed,
                    options={"task": tasks[c % len(tasks)]},
                )
                bests.append(result.best_score)
                new_runs += len(result.steps)
            scored = [b for b in bests if b is not None]
            reports.append(
                RoundReport(
                    round=r,
                    training_runs=training_runs,
                    train_seconds=train_seconds,
                    held_out_median_regret=held_out.median,
                    held_out_q25=held_out.q25,
                    held_out_q75=held_out.q75,
                    held_out_campaigns=held_out.campaigns,
                    new_runs=new_runs,
                    campaign_best_mean=float(np.mean(scored)) if scored else None,
                    checkpoint=str(checkpoint),
                )
            )
            log(f"round {r}: ran {campaigns} campaigns ({new_runs} experiments) into {store}")
            out.mkdir(parents=True, exist_ok=True)
            (out / "rounds.json").write_text(json.dumps([asdict(x) for x in reports], indent=1))
    plot_rounds(reports, out / "rounds.png", f"generation loop on {env_id}")
    return reports


def plot_rounds(reports: list[RoundReport], path: str | Path, title: str = "") -> Path:
    """Held-out median regret (with interquartile range) per round."""
    from researchgym.plotting import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    x = [r.round for r in reports]
    median = np.array([r.held_out_median_regret for r in reports])
    ax.errorbar(
        x,
        median,
        yerr=[
            median - [r.held_out_q25 for r in reports],
            np.array([r.held_out_q75 for r in reports]) - median,
        ],
        fmt="o-",
        capsize=4,
    )
    ax.set_xticks(x)
    ax.set_xlabel("round")
    ax.set_ylabel("held-out normalized regret")
    ax.set_title(title)
    return save_figure(fig, path)
