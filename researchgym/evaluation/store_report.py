"""A summary of any trajectory store: runs, best configurations and learning curves.

:func:`store_report` reads a store through its DuckDB views and writes
``report.md``, ``report.html`` (self-contained, see
:mod:`researchgym.evaluation.report`) and the PNG plots under ``plots/``:

* runs per env and agent, with campaigns and the count of each step status;
* the best configuration per (env, task): score, agent, run id and the settings
  of its metaprogram;
* per env, the best validation score so far against the steps of a campaign
  (median and interquartile range over each agent's campaigns), and the stored
  per-epoch validation curves of the best runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from researchgym.errors import NotFound, shorten
from researchgym.evaluation.report import Report
from researchgym.plotting import pyplot, save_figure
from researchgym.store import Store
from researchgym.store.schema import STATUSES

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["StoreReport", "store_report"]

#: Tasks whose best configuration and per-epoch curve the report shows per env.
MAX_TASKS = 40

#: Tasks drawn in one per-epoch curves plot (their legend stays readable).
_MAX_CURVES = 10


@dataclasses.dataclass(frozen=True)
class StoreReport:
    """The files :func:`store_report` wrote.

    Attributes:
        markdown: ``report.md``.
        html: ``report.html``, self-contained.
        plots: The PNG plots, which the Markdown links and the HTML embeds.
    """

    markdown: Path
    html: Path
    plots: tuple[Path, ...]


def store_report(
    store: Store, out: str | os.PathLike[str], *, commands: Sequence[str] = ()
) -> StoreReport:
    """Summarize ``store`` as ``report.md``, ``report.html`` and PNG plots under ``out``.

    Args:
        store: The store to summarize.
        out: Folder to write into (made if missing).
        commands: The commands that made the report, shown in it.

    Returns:
        The paths written.

    Raises:
        NotFound: The store holds no runs.
    """
    out = Path(out)
    totals = store.sql(
        "SELECT count(*) AS runs, count(DISTINCT campaign_id) AS campaigns, "
        "count(DISTINCT env_id) AS envs FROM steps"
    ).to_pylist()[0]
    if totals["runs"] == 0:
        raise NotFound(
            f"the store at {shorten(str(store.path))} holds no runs; record some (e.g. "
            "`researchgym rollout researchgym/Digits-v0 --steps 8`) or pass --store PATH "
            "of a store that has runs"
        )
    report = Report("Trajectory store report")
    report.paragraph(
        f"Store {store.path}: {totals['runs']:,} runs in {totals['campaigns']:,} campaigns "
        f"of {totals['envs']:,} envs."
    )
    _runs_section(report, store)
    plots = []
    for i, env_id in enumerate(store.envs()):
        report.heading(f"Env {env_id}")
        best = store.best_runs(env_id).head(MAX_TASKS)
        if best.empty:
            report.paragraph("No run of this env has a validation score.")
            continue
        _best_section(report, store, env_id)
        stem = out / "plots" / f"{i:02d}-{_slug(env_id)}"
        plots += _curves_section(report, store, env_id, best, stem)
    if commands:
        report.heading("Commands")
        report.code("\n".join(commands))
    report.versions()
    return StoreReport(
        markdown=report.write_markdown(out / "report.md"),
        html=report.write_html(out / "report.html"),
        plots=tuple(plots),
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text)[:60]


def _label(text: object, limit: int = 40) -> str:
    """Text that matplotlib shows as it is (no math mode), cut to about ``limit`` characters."""
    label = str(text)
    if len(label) > limit:
        label = f"{label[: limit - 3]}..."
    return label.replace("$", r"\$")


def _runs_section(report: Report, store: Store) -> None:
    counts = ", ".join(f"count(*) FILTER (WHERE status = '{s}') AS \"{s}\"" for s in STATUSES)
    table = store.sql(
        "SELECT env_id AS env, agent, count(DISTINCT campaign_id) AS campaigns, count(*) AS runs, "
        f"{counts}, count(*) FILTER (WHERE status IS NULL OR status NOT IN "
        f"({', '.join(repr(s) for s in STATUSES)})) AS other "
        "FROM steps GROUP BY ALL ORDER BY env_id NULLS LAST, agent NULLS LAST"
    )
    report.heading("Runs per env and agent")
    report.table(table.column_names, [list(row.values()) for row in table.to_pylist()])


def _settings(metaprogram: str | None) -> str:
    """``name=value`` pairs of a metaprogram's JSON, floats with 3 significant digits."""
    try:
        settings = json.loads(metaprogram or "{}")
    except ValueError:
        return metaprogram or ""
    if not isinstance(settings, dict):
        return str(settings)

    def value(v: object) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    return ", ".join(f"{name}={value(v)}" for name, v in settings.items())


def _best_section(report: Report, store: Store, env_id: str) -> None:
    best = store.df(
        "SELECT b.task, b.best_val_score, b.n_runs, b.agent, b.run_id, s.metaprogram "
        "FROM best_runs AS b JOIN steps AS s USING (run_id) WHERE b.env_id = ? "
        "ORDER BY b.task NULLS LAST",
        [env_id],
    )
    report.heading("Best configurations", level=3)
    shown = best.head(MAX_TASKS)
    if len(best) > len(shown):
        report.paragraph(f"The first {len(shown)} of {len(best)} tasks, by name.")
    report.table(
        ["task", "best score", "runs", "agent", "run id", "settings"],
        [
            [r.task, r.best_val_score, r.n_runs, r.agent, r.run_id, _settings(r.metaprogram)]
            for r in shown.itertuples()
        ],
    )


def _curves_section(
    report: Report, store: Store, env_id: str, best: pd.DataFrame, stem: Path
) -> list[Path]:
    report.heading("Learning curves", level=3)
    progress = store.df(
        """
        WITH best AS (
            SELECT agent, step, max(CASE WHEN isnan(val_score) THEN NULL ELSE val_score END)
                OVER (PARTITION BY campaign_id ORDER BY step) AS best
            FROM steps WHERE env_id = ?
        )
        SELECT agent, step, quantile_cont(best, 0.25) AS q25, median(best) AS q50,
               quantile_cont(best, 0.75) AS q75
        FROM best WHERE best IS NOT NULL GROUP BY ALL ORDER BY agent NULLS LAST, step
        """,
        [env_id],
    )
    plots = []
    if progress.step.nunique() < 2:
        report.paragraph(
            "Every campaign of this env has one scored step: there is no best-so-far curve."
        )
    else:
        path = _plot_progress(progress, stem.with_name(f"{stem.name}-progress.png"), env_id)
        report.image(path, f"{env_id}: best validation score so far per campaign")
        plots.append(path)
    curves = store.curves(list(best.run_id))
    if "val_score" not in curves:
        report.paragraph("No per-epoch curves are stored for the best runs of this env.")
        return plots
    tasks = dict(zip(best.run_id, best.task))
    path = _plot_epochs(curves, tasks, stem.with_name(f"{stem.name}-epochs.png"), env_id)
    caption = f"{env_id}: per-epoch validation score of the best run of each task"
    if len(tasks) > _MAX_CURVES:
        caption += f" (the first {_MAX_CURVES} of {len(tasks)} tasks)"
    report.image(path, caption)
    return [*plots, path]


def _plot_progress(progress: pd.DataFrame, path: Path, env_id: str) -> Path:
    """Median and interquartile band of the best score so far per step, one line per agent."""
    fig, ax = pyplot().subplots(figsize=(8, 3.8))
    for agent, group in progress.groupby("agent", dropna=False, sort=False):
        x = group.step.to_numpy() + 1
        name = "(no agent)" if not isinstance(agent, str) else agent
        (line,) = ax.plot(x, group.q50, marker="o" if len(x) == 1 else None, label=_label(name))
        ax.fill_between(x, group.q25, group.q75, alpha=0.15, color=line.get_color())
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("experiment")
    ax.set_ylabel("best validation score so far")
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1, 0.5))
    ax.set_title(_label(env_id, 60))
    return save_figure(fig, path)


def _plot_epochs(curves: pd.DataFrame, tasks: dict[str, str], path: Path, env_id: str) -> Path:
    """Validation score per epoch of each task's best run."""
    import pandas as pd

    fig, ax = pyplot().subplots(figsize=(8, 3.8))
    for run_id in list(tasks)[:_MAX_CURVES]:
        curve = curves[curves.run_id == run_id]
        scores = pd.to_numeric(curve.val_score, errors="coerce")
        if scores.notna().any():
            epochs = pd.to_numeric(curve.epoch, errors="coerce")
            ax.plot(epochs, scores, marker=".", label=_label(tasks[run_id]))
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation score")
    if ax.lines:
        ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1, 0.5))
    ax.set_title(_label(env_id, 60))
    return save_figure(fig, path)
