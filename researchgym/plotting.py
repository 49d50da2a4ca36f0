"""Plots people would rather look at than read: learning curves and campaigns."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["plot_campaign", "plot_curve", "pyplot", "save_figure"]


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> Path:
    """Lay out ``fig``, save it as a PNG at ``path`` (folders made) and close it."""
    path = Path(path)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


def plot_curve(curve: Sequence[dict[str, float]], path: str | Path, title: str = "") -> Path:
    """Save a learning curve (losses and validation score per epoch) as a PNG."""
    plt = pyplot()
    epochs = [row["epoch"] for row in curve]
    fig, (ax_loss, ax_score) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax_loss.plot(epochs, [row.get("train_loss") for row in curve], label="train loss")
    if any("val_loss" in row for row in curve):
        ax_loss.plot(epochs, [row.get("val_loss") for row in curve], label="validation loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    ax_score.plot(epochs, [row.get("val_score") for row in curve], color="tab:green")
    ax_score.set_xlabel("epoch")
    ax_score.set_ylabel("validation score")
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_campaign(scores: Sequence[float | None], path: str | Path, title: str = "") -> Path:
    """Save a campaign's score per step and best-so-far curve as a PNG."""
    plt = pyplot()
    steps = list(range(1, len(scores) + 1))
    best, best_so_far = None, []
    for score in scores:
        if score is not None and (best is None or score > best):
            best = score
        best_so_far.append(best)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ok = [(s, v) for s, v in zip(steps, scores) if v is not None]
    ax.scatter([s for s, _ in ok], [v for _, v in ok], label="step score", alpha=0.7)
    ax.step(
        steps,
        [float("nan") if b is None else b for b in best_so_far],
        where="post",
        label="best so far",
    )
    ax.set_xlabel("experiment")
    ax.set_ylabel("validation score")
    ax.legend()
    ax.set_title(title)
    return save_figure(fig, path)
