"""Continuing and forking runs from checkpoints: exact resumption, forks, refusals."""

from __future__ import annotations

import pytest

from researchgym.engine import InProcessExecutor, Result, Start, SubprocessExecutor, train

TASK = "synth_cls?rows=300"


def settings(tabular_schema, **changes):
    return tabular_schema.validate(
        {"model.family": "mlp", "model.width": 32, "train.batch_size": 32, **changes}
    )


def run(m, seed=0, **kwargs) -> Result:
    result = train(m, task=TASK, seed=seed, device="cpu", **kwargs)
    assert result.ok, result.error
    return result


@pytest.fixture
def parent(tabular_schema, tmp_path):
    """A 2-epoch run of a 4-epoch cosine schedule, saved: (its result, its checkpoint)."""
    path = str(tmp_path / "parent.pt")
    m = settings(tabular_schema, **{"optim.schedule": "cosine", "train.epochs": 2})
    return run(m, seed=3, save_to=path, schedule_epochs=4), path


# --- continue ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "changes, seed, first, total",
    [
        # dropout and a cosine schedule over the full horizon
        ({"optim.schedule": "cosine", "model.dropout": 0.1}, 3, 2, 4),
        # early stopping ends the run after the checkpoint (at epoch 4)...
        ({"optim.lr": 0.03, "train.early_stopping": 1}, 2, 2, 6),
        # ... and before it (at epoch 2): continuing trains nothing more
        ({"optim.lr": 0.03, "train.early_stopping": 1}, 1, 3, 6),
    ],
)
def test_continuing_equals_one_uninterrupted_run(
    tabular_schema, tmp_path, changes, seed, first, total
):
    path = str(tmp_path / "run.pt")
    whole = run(settings(tabular_schema, **changes, **{"train.epochs": total}), seed=seed)
    part = run(
        settings(tabular_schema, **changes, **{"train.epochs": first}),
        seed=seed,
        save_to=path,
        schedule_epochs=total,
    )
    rest = run(
        settings(tabular_schema, **changes, **{"train.epochs": total}),
        seed=seed + 100,  # a continued run restores its random states: the seed does not matter
        start=Start(path, "continue"),
    )
    assert rest.val_metrics == whole.val_metrics
    assert rest.test_metrics == whole.test_metrics
    assert rest.curve == whole.curve
    assert rest.epochs == whole.epochs == len(whole.curve)
    assert part.samples + rest.samples == whole.samples  # each job counts its own work
    if "train.early_stopping" in changes:
        assert whole.epochs < total  # early stopping did end the run


def test_continuing_a_continued_run_stays_exact(tabular_schema, parent, tmp_path):
    _, path = parent
    m = settings(tabular_schema, **{"optim.schedule": "cosine"})
    middle = str(tmp_path / "middle.pt")
    run({**m, "train.epochs": 3}, start=Start(path, "continue"), save_to=middle)
    last = run({**m, "train.epochs": 4}, start=Start(middle, "continue"))
    assert last.curve == run({**m, "train.epochs": 4}, seed=3, schedule_epochs=4).curve


@pytest.mark.parametrize(
    "changes, named",
    [
        ({"optim.lr": 0.01}, "optim.lr=0.01 (saved: 0.001)"),
        ({"train.batch_size": 64}, "train.batch_size=64 (saved: 32)"),
        ({"train.epochs": 2}, "train.epochs=2 must be above the 2 epochs"),
    ],
)
def test_continuing_with_other_settings_is_refused(tabular_schema, parent, changes, named):
    _, path = parent
    m = settings(tabular_schema, **{"optim.schedule": "cosine", "train.epochs": 4, **changes})
    result = train(m, task=TASK, device="cpu", start=Start(path, "continue"))
    assert result.status == "invalid_action"
    assert result.error is not None and named in result.error


def test_a_checkpoint_continues_only_on_its_task(tabular_schema, parent):
    _, path = parent
    m = settings(tabular_schema, **{"optim.schedule": "cosine", "train.epochs": 4})
    result = train(m, task="synth_cls?rows=301", device="cpu", start=Start(path, "continue"))
    assert result.status == "invalid_action"
    assert "trained on task 'synth_cls?rows=300'" in (result.error or "")


# --- fork --------------------------------------------------------------------------------
def test_a_fork_starts_from_its_parents_weights(tabular_schema, parent, tmp_path):
    first, path = parent
    m = settings(tabular_schema, **{"optim.name": "sgd", "optim.lr": 0.05, "train.epochs": 4})
    fork = run(m, seed=7, start=Start(path, "fork"), save_to=str(tmp_path / "fork.pt"))
    head = fork.curve[0]
    assert head == {"epoch": 2, "val_loss": first.curve[-1]["val_loss"],
                    "val_score": first.curve[-1]["val_score"]}  # fmt: skip
    assert [c["epoch"] for c in fork.curve] == [2, 3, 4]
    assert fork.epochs == 4
    assert fork.samples == first.samples  # two epochs each
    # the fork's own checkpoint continues it exactly
    more = run({**m, "train.epochs": 5}, start=Start(str(tmp_path / "fork.pt"), "continue"))
    assert more.curve == run({**m, "train.epochs": 5}, seed=7, start=Start(path, "fork")).curve


def test_a_fork_that_changes_the_architecture_is_refused(tabular_schema, parent):
    _, path = parent
    m = settings(tabular_schema, **{"model.width": 64, "model.depth": 3, "train.epochs": 4})
    result = train(m, task=TASK, device="cpu", start=Start(path, "fork"))
    assert result.status == "invalid_action"
    assert "model.depth=3 (saved: 2), model.width=64 (saved: 32)" in (result.error or "")
    assert "architecture" in (result.error or "")


def test_start_mode_is_checked():
    with pytest.raises(ValueError, match="mode='resume' is not one of"):
        Start("x.pt", "resume")


# --- executors pass checkpoints through ----------------------------------------------------
@pytest.mark.parametrize("executor_type", [InProcessExecutor, SubprocessExecutor])
def test_executors_save_and_start_from_checkpoints(tabular_schema, tmp_path, executor_type):
    m = settings(tabular_schema, **{"optim.schedule": "cosine"})
    path = str(tmp_path / "run.pt")
    with executor_type(device="cpu") as executor:
        part = executor.run(
            {**m, "train.epochs": 1}, task=TASK, seed=1, save_to=path, schedule_epochs=2
        )
        rest = executor.run(
            {**m, "train.epochs": 2}, task=TASK, seed=1, start=Start(path, "continue")
        )
    assert part.ok and rest.ok, (part.error, rest.error)
    assert (part.epochs, rest.epochs) == (1, 2)
    assert rest.curve == run({**m, "train.epochs": 2}, seed=1).curve
