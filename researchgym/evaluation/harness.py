"""The leaderboard harness: planners x held-out tasks x seeds of a suite, resumable, scored.

::

    from researchgym.evaluation import benchmark_suite, run_leaderboard

    board = run_leaderboard(
        benchmark_suite("fast"), ["random", "tpe", "transformer"], seeds=10,
        workers=2, store="runs/board/store", out_dir="runs/board",
    )

Every campaign has a deterministic id made from (suite, version, planner, task,
seed, attempt) and recorded with its steps, so the store says what is done: a
campaign that ended (its last stored step terminated it, by its budget of experiments
or a ``stop``, or truncated it, by its cost budget) is never run again, and one cut
short (a killed run) is run again under the next attempt's id, its partial steps
left aside. The board is read back from the store, so a resumed run reports every
campaign, old and new.

In a multi-fidelity suite (one with a ``fidelity`` range) a planner that asks for
a forkable env (its ``env_kwargs``) chooses its own fidelity, from the suite's
``min_epochs`` (given as its ``min_epochs`` option where it takes one) to the env's
``max_epochs``; every other planner has ``train.epochs`` pinned to ``max_epochs``.

Learned planners (those with a trainer) are trained once per suite on its train
tasks only, saved under ``out_dir/policies/<planner>`` and reused on the next run.

``out_dir`` receives ``leaderboard.md`` and ``report.html`` (a self-contained page:
the board, the references and each task's seed-to-seed spread, the plots, the command
and the versions), ``leaderboard.json`` (every number, the command, versions and the
git commit), ``ranks.png`` and one ``curves-<n>.png`` per task (anytime regret against
steps and against compute seconds).
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import itertools
import json
import shlex
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from researchgym.errors import ConfigError, did_you_mean, shorten
from researchgym.evaluation.plots import plot_ranks, plot_task_curves
from researchgym.evaluation.report import Report, software_versions
from researchgym.evaluation.stats import (
    CampaignScore,
    CampaignTrace,
    LeaderboardRow,
    TaskReference,
    leaderboard,
    score_campaigns,
)
from researchgym.evaluation.suites import (
    BenchmarkSuite,
    SeedSpread,
    best_known,
    campaign_references,
)
from researchgym.planning import make_planner, make_trainer, planner_names, run_campaign

__all__ = ["CampaignJob", "Leaderboard", "campaign_id", "run_leaderboard"]

#: ``progress(done, total, status)``: campaigns done of all of them, and what happened last.
Progress = Callable[[int, int, str], None]


def campaign_id(suite: BenchmarkSuite, agent: str, task: str, seed: int, attempt: int) -> str:
    """The deterministic id of a campaign of ``agent`` on ``task`` with ``seed`` (0-based attempt)."""
    key = json.dumps([suite.name, suite.version, agent, task, seed, attempt])
    return f"{suite.name}-v{suite.version}-{hashlib.sha256(key.encode()).hexdigest()[:24]}"


@dataclass(frozen=True)
class CampaignJob:
    """One campaign of a board, under the id of its current attempt."""

    agent: str
    task: str
    seed: int
    campaign_id: str


@dataclass
class Leaderboard:
    """What :func:`run_leaderboard` measured (or why it skipped the suite).

    Attributes:
        suite: the suite.
        skipped: why nothing ran (e.g. no CUDA for a GPU suite), else ``None``.
        rows: the board, best planner first.
        scores: every campaign's scores.
        traces: every campaign, as read back from the store.
        references: each task's reference and where it came from (``references_from``).
        seed_spread: each task's seed-to-seed spread of one metaprogram (recorded pairs).
        ran, reused: campaigns run now and read back from earlier runs.
        markdown: the ``leaderboard.md`` text (images linked relative to ``out_dir``).
        images: the PNG plots written.
    """

    suite: BenchmarkSuite
    skipped: str | None = None
    rows: list[LeaderboardRow] = field(default_factory=list)
    scores: list[CampaignScore] = field(default_factory=list)
    traces: list[CampaignTrace] = field(default_factory=list)
    references: dict[str, TaskReference] = field(default_factory=dict)
    references_from: str = ""
    seed_spread: dict[str, SeedSpread] = field(default_factory=dict)
    ran: int = 0
    reused: int = 0
    markdown: str = ""
    images: list[Path] = field(default_factory=list)


# --- campaigns -----------------------------------------------------------------------------
_STEP_COLUMNS = (
    "campaign_id", "step", "status", "val_score", "cost_seconds", "terminated", "truncated",
)  # fmt: skip


def _stored_campaigns(store: Path, suite: BenchmarkSuite) -> dict[str, list[dict[str, Any]]]:
    """Stored steps of the suite's env on its test tasks, per campaign id, in step order."""
    from researchgym.store import Store

    if not store.exists():
        return {}
    with Store(store) as opened:
        if not opened.info()["rows"]:
            return {}
        rows = opened.runs(
            suite.env_id,
            tasks=suite.test_tasks,
            columns=_STEP_COLUMNS,
        ).to_pylist()
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row["campaign_id"], []).append(row)
    return out


def _ended(steps: Sequence[dict[str, Any]]) -> bool:
    """Whether a stored campaign ended: its last step terminated or truncated it."""
    last = max(steps, key=lambda row: row["step"])
    return bool(last["terminated"] or last["truncated"])


def _plan(
    suite: BenchmarkSuite,
    agents: Sequence[str],
    seeds: Sequence[int],
    stored: dict[str, list[dict[str, Any]]],
) -> tuple[list[CampaignJob], list[CampaignJob]]:
    """The board's campaigns: those complete in the store, and those still to run."""
    done: list[CampaignJob] = []
    pending: list[CampaignJob] = []
    for agent, task, seed in itertools.product(agents, suite.test_tasks, seeds):
        attempt = 0
        cid = campaign_id(suite, agent, task, seed, attempt)
        while cid in stored and not _ended(stored[cid]):  # cut short: run it again
            attempt += 1
            cid = campaign_id(suite, agent, task, seed, attempt)
        (done if cid in stored else pending).append(CampaignJob(agent, task, seed, cid))
    return done, pending


_WORKER = threading.local()  # each worker thread's (or process's) envs, one per interface


def _chooses_fidelity(planner: Any) -> bool:
    """Whether a planner chooses its own fidelity: it asks for a forkable env."""
    return bool(getattr(planner, "env_kwargs", {}).get("forkable"))


def _fidelity_options(suite: BenchmarkSuite, agent: str) -> dict[str, Any]:
    """Options of a planner without training: a fidelity planner's ``min_epochs``.

    Raises:
        ConfigError: a planner that chooses its fidelity on a suite without a fidelity range.
    """
    planner = make_planner(agent)
    if not _chooses_fidelity(planner):
        return {}
    if suite.fidelity is None:
        raise ConfigError(
            f"planner {agent!r} chooses train.epochs (the fidelity) itself, and suite "
            f"{suite.name!r} has no fidelity range; run it on a multi-fidelity suite"
        )
    takes = inspect.signature(type(planner)).parameters
    return {"min_epochs": suite.fidelity[0]} if "min_epochs" in takes else {}


def _run_job(
    suite: BenchmarkSuite,
    store: str,
    job: CampaignJob,
    planner_options: dict[str, Any],
    executor: Any = None,
) -> CampaignJob:
    """Run one campaign in this thread's cached env of the suite (one per interface)."""
    planner = make_planner(job.agent, **planner_options)
    interface = getattr(planner, "interface", None) or "dict"
    envs = _WORKER.__dict__.setdefault("envs", {})
    key = (suite, store, interface, executor)
    if key not in envs:
        envs[key] = suite.make_env(store=store, interface=interface, executor=executor)
    run_campaign(
        envs[key],
        planner,
        seed=job.seed,
        fixed=suite.pins(_chooses_fidelity(planner)),
        options={"task": job.task, "campaign_id": job.campaign_id},
    )
    return job


def _run_jobs(
    suite: BenchmarkSuite,
    store: Path,
    jobs: list[CampaignJob],
    options: dict[str, dict[str, Any]],
    workers: int,
    executor: Any,
) -> Iterator[CampaignJob]:
    """Run campaigns (for ``workers > 1``, in a spawn process pool, or in threads when an
    executor trains the steps elsewhere), yielding each as it ends."""
    from researchgym.engine.pool import run_jobs

    yield from run_jobs(
        _run_job,
        ((suite, str(store), job, options.get(job.agent, {}), executor) for job in jobs),
        workers=workers,
        threads=executor is not None,
    )


# --- learned planners ----------------------------------------------------------------------
def _trained_policy(
    suite: BenchmarkSuite, agent: str, out_dir: Path, progress: Progress, total: int
) -> dict[str, Any]:
    """The planner options of a learned planner: its policy, trained on the suite's train tasks
    (once: a policy saved by an earlier run is reused)."""
    training = suite.training.get(agent)
    if training is None:
        raise ConfigError(
            f"suite {suite.name!r} does not train the learned planner {agent!r}; "
            f"it trains {shorten(sorted(suite.training)) if suite.training else 'none'}"
        )
    folder = out_dir / "policies" / agent
    record = folder / "trained.json"
    if record.exists():
        saved = json.loads(record.read_text())
        if Path(saved["policy"]).exists():
            return {"policy": saved["policy"], **training.planner_options}
    progress(0, total, f"training {agent} on {len(suite.train_tasks)} train tasks")
    policy = make_trainer(agent)(
        training.env_id,
        **{
            "total_timesteps": training.steps,
            "seed": 0,
            "fixed": suite.pins(),
            "save_path": str(folder.absolute() / "policy"),
            "store": False,
            "budget": suite.budget,
            "tasks": list(suite.train_tasks),
            **training.options,
        },
    )
    record.write_text(
        json.dumps(
            {
                "policy": str(policy),
                "env_id": training.env_id,
                "steps": training.steps,
                "tasks": list(suite.train_tasks),
            },
            indent=1,
        )
    )
    return {"policy": str(policy), **training.planner_options}


# --- the board -----------------------------------------------------------------------------
def _check_agents(agents: Sequence[str]) -> list[str]:
    known = planner_names()
    agents = list(agents)
    if not agents:
        raise ConfigError(f"no planners given; name one or more of {', '.join(known)}")
    for agent in agents:
        if agent not in known:
            raise ConfigError(
                f"unknown planner {shorten(agent)}; {did_you_mean(agent, known)}"
                f"registered planners: {', '.join(known)}"
            )
    if len(set(agents)) != len(agents):
        raise ConfigError(f"planners {shorten(agents)} name one twice; name each once")
    return agents


def _traces(
    jobs: list[CampaignJob], stored: dict[str, list[dict[str, Any]]]
) -> list[CampaignTrace]:
    out = []
    for job in jobs:
        steps = sorted(stored[job.campaign_id], key=lambda row: row["step"])
        out.append(
            CampaignTrace(
                job.agent,
                job.task,
                job.seed,
                tuple(r["val_score"] if r["status"] == "ok" else None for r in steps),
                tuple(float(r["cost_seconds"] or 0.0) for r in steps),
            )
        )
    return out


def _board_table(rows: Sequence[LeaderboardRow]) -> tuple[list[str], list[list[Any]]]:
    columns = [
        "planner", "campaigns", "mean regret", "95% CI", "median", "AUC steps",
        "AUC log-seconds", "avg rank", "W/T/L vs best baseline", "p", "ties",
    ]  # fmt: skip
    cells = []
    for r in rows:
        versus = r.versus
        cells.append(
            [
                r.planner,
                r.campaigns,
                round(r.mean, 3),
                f"{r.ci_low:.3f}-{r.ci_high:.3f}",
                round(r.median, 3),
                round(r.auc_steps, 3),
                round(r.auc_seconds, 3),
                round(r.average_rank, 2),
                "baseline"
                if versus is None
                else f"{versus.wins}/{versus.ties}/{versus.losses} vs {versus.baseline}",
                None if versus is None else float(f"{versus.p_value:.2g}"),
                None if versus is None else f"{versus.tie_rate:.0%}",
            ]
        )
    return columns, cells


def _task_table(board: Leaderboard) -> tuple[list[str], list[list[Any]]]:
    columns = [
        "task", "best", "typical", "seed pairs", "median seed-to-seed gap",
        "gap in regret units", "planners' mean final regret (best - worst)",
    ]  # fmt: skip
    cells = []
    for task, ref in board.references.items():
        finals: dict[str, list[float]] = {}
        for s in board.scores:
            if s.task == task:
                finals.setdefault(s.planner, []).append(s.final)
        means = [float(np.mean(v)) for v in finals.values()]
        spread = board.seed_spread.get(task)
        cells.append(
            [
                task,
                ref.best,
                ref.typical,
                None if spread is None else spread.pairs,
                None if spread is None else spread.median,
                None if spread is None else round(spread.median_regret, 3),
                f"{min(means):.3f} - {max(means):.3f}",
            ]
        )
    return columns, cells


def _report(board: Leaderboard, seeds: Sequence[int], command: str) -> Report:
    """The board as one document: written as ``leaderboard.md`` and ``report.html``."""
    suite = board.suite
    pairs = [r.versus for r in board.rows if r.versus is not None]
    ties = sum(p.ties for p in pairs) / max(1, sum(p.pairs for p in pairs))
    report = Report(f"Leaderboard: suite {suite.name} v{suite.version}")
    report.paragraph(
        f"{suite.description}. Planners act on {suite.env_id} for {suite.spend} "
        f"({suite.fidelity_text}) on {len(suite.test_tasks)} held-out tasks x {len(seeds)} seeds. "
        "Regret is normalized between each task's best score and a typical one "
        f"({board.references_from}), clipped to [0, 1]. The best baseline is the best planner "
        "without training; wins/ties/losses and the Wilcoxon p are paired by task and seed."
    )
    if suite.cost_budget is not None:
        report.paragraph(
            "Each campaign ends with the step that spends its cost budget (or earlier, by a "
            "planner's stop); final regret is the regret then. Its steps differ in cost (a "
            "continued run pays only its new epochs), so the anytime comparison is the area "
            "against measured compute seconds, not steps."
        )
    report.table(*_board_table(board.rows), caption="final normalized regret and anytime areas")
    report.paragraph(f"Tie rate of paired campaigns against the best baseline: {ties:.1%}.")
    report.heading("Tasks: references and seed-to-seed spread of one metaprogram")
    report.table(*_task_table(board))
    report.heading("Plots")
    report.image(board.images[0], "average rank by final regret (bootstrap 95% interval)")
    for task, image in zip(suite.test_tasks, board.images[1:], strict=True):
        report.image(image, f"{task}: best-so-far regret against steps and compute seconds")
    report.heading("Command")
    report.code(command)
    return report.versions()


def run_leaderboard(
    suite: BenchmarkSuite,
    agents: Sequence[str],
    seeds: int | Sequence[int],
    *,
    workers: int = 1,
    store: str | Path,
    out_dir: str | Path,
    data: str | Path | None = None,
    progress: Progress | None = None,
    command: str | None = None,
    executor: Any = None,
) -> Leaderboard:
    """Run (or resume) a suite's board and write its outputs to ``out_dir``.

    Args:
        suite: the suite (see :func:`~researchgym.evaluation.benchmark_suite`).
        agents: registered planner names.
        seeds: campaign seeds per (planner, task): a count (``0..N-1``) or the seeds.
        workers: processes running campaigns (each with ``cores // workers`` torch threads),
            or with ``executor``, campaigns in flight at once (threads of this process).
        store: the store campaigns are recorded in and read back from.
        out_dir: where the outputs and the learned planners' policies go.
        data: recorded runs defining the references, instead of the suite's.
        progress: called as ``progress(done, total, status)`` as campaigns finish;
            an exception it raises stops the board (what finished stays stored).
        command: the command line recorded with the results (default: ``sys.argv``).
        executor: trains every step instead of the suite env's own executor, e.g. a
            :class:`~researchgym.engine.RayExecutor` whose workers train the steps while
            this process runs the planners and records the rows.

    Returns:
        The board; ``skipped`` says why nothing ran when the suite cannot run here.
    """
    if data is not None:
        suite = dataclasses.replace(suite, data=Path(data))
    reason = suite.unavailable()
    if reason is not None:
        return Leaderboard(suite, skipped=reason)
    agents = _check_agents(agents)
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seeds:
        raise ConfigError("no seeds given; run at least one seed per planner and task")
    if workers < 1:
        raise ConfigError(f"workers={workers!r} must be 1 or more")
    notify = progress or (lambda done, total, status: None)
    store, out_dir = Path(store), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    references = suite.references()  # checked before any campaign runs
    if references is None and "random" not in agents:
        raise ConfigError(
            f"suite {suite.name!r} has no recorded runs, so its typical scores come from random "
            "search's campaigns; add random to the planners"
        )

    done, pending = _plan(suite, agents, seeds, _stored_campaigns(store, suite))
    total = len(done) + len(pending)
    learned = set(planner_names(trainable=True))
    options = {agent: _fidelity_options(suite, agent) for agent in agents if agent not in learned}
    options |= {
        agent: _trained_policy(suite, agent, out_dir, notify, total)
        for agent in agents
        if agent in learned and any(job.agent == agent for job in pending)
    }
    notify(len(done), total, f"{len(done)} campaigns already stored")
    for finished, job in enumerate(_run_jobs(suite, store, pending, options, workers, executor), 1):
        notify(len(done) + finished, total, f"{job.agent} on {job.task} seed {job.seed}")

    jobs = [*done, *pending]
    order = list(itertools.product(agents, suite.test_tasks, seeds))
    jobs.sort(key=lambda j: order.index((j.agent, j.task, j.seed)))
    traces = _traces(jobs, _stored_campaigns(store, suite))
    board = Leaderboard(suite, traces=traces, ran=len(pending), reused=len(done))
    if references is None:
        board.references = campaign_references(traces)
        board.references_from = "best found by any planner, median of random search's steps"
    else:
        board.references = best_known(references, traces)
        board.references_from = f"{suite.references_source}; best raised to the best found"
    board.seed_spread = suite.seed_spread()
    board.scores = score_campaigns(traces, board.references)
    baselines = [a for a in agents if a not in learned]
    board.rows = leaderboard(board.scores, baselines=baselines or None)
    board.images = [plot_ranks(board.scores, out_dir / "ranks.png", title=f"{suite.name} suite")]
    for i, task in enumerate(suite.test_tasks):
        board.images.append(
            plot_task_curves(
                [t for t in traces if t.task == task],
                board.references[task],
                out_dir / f"curves-{i}.png",
            )
        )
    command = command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
    report = _report(board, seeds, command)
    report.write_markdown(out_dir / "leaderboard.md")
    report.write_html(out_dir / "report.html")
    board.markdown = report.markdown(out_dir)
    (out_dir / "leaderboard.json").write_text(
        json.dumps(
            {
                "suite": {
                    "name": suite.name,
                    "version": suite.version,
                    "env_id": suite.env_id,
                    "source": suite.source,
                    "test_tasks": list(suite.test_tasks),
                    "train_tasks": list(suite.train_tasks),
                    "budget": suite.budget,
                    "fixed": dict(suite.fixed),
                    "fidelity": suite.fidelity,
                    "cost_budget": suite.cost_budget and dict(suite.cost_budget),
                    "data": None if suite.data is None else str(suite.data),
                },
                "agents": agents,
                "seeds": seeds,
                "command": command,
                "versions": software_versions(),
                "references_from": board.references_from,
                "references": [dataclasses.asdict(r) for r in board.references.values()],
                "seed_spread": [dataclasses.asdict(s) for s in board.seed_spread.values()],
                "rows": [dataclasses.asdict(r) for r in board.rows],
                "campaigns": [
                    {**dataclasses.asdict(s), "campaign_id": j.campaign_id}
                    for s, j in zip(board.scores, jobs, strict=True)
                ],
            },
            indent=1,
        )
    )
    return board
