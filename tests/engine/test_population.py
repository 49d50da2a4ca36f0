"""Population training: a batched job gives each member the run ``train`` gives it alone."""

from __future__ import annotations

import math

import pytest
import torch

from researchgym.engine import (
    Executor,
    InProcessExecutor,
    Job,
    Result,
    TaskRef,
    load_task_data,
    population_groups,
    train,
    train_population,
)

# Stacked members differ from train only in float32 rounding: batched products and the
# fused optimizer arithmetic sum in other orders (about 1e-7 relative per operation).
# Over the few dozen steps here that stays near 1e-6 (5e-7 is typical); 1e-4 leaves
# room while still catching any real difference (another batch order, initialization,
# dropout mask or hyperparameter moves losses by 1e-3 or more). A score may differ by
# one validation example, when rounding flips a near tie between two classes.
LOSS_TOLERANCE = 1e-4


def assert_same_run(batched: Result, alone: Result, task: str) -> None:
    n_val = len(load_task_data(task).x_val)
    assert (batched.status, batched.epochs) == (alone.status, alone.epochs)
    assert (batched.samples, batched.n_params) == (alone.samples, alone.n_params)
    assert len(batched.curve) == len(alone.curve)
    for ours, theirs in zip(batched.curve, alone.curve, strict=True):
        assert ours.keys() == theirs.keys()
        for key in ours:
            tolerance = 1.5 / n_val if key == "val_score" else LOSS_TOLERANCE
            assert ours[key] == pytest.approx(theirs[key], abs=tolerance), key
    for ours, theirs in (
        (batched.val_metrics, alone.val_metrics),
        (batched.test_metrics, alone.test_metrics),
    ):
        assert ours.keys() == theirs.keys()
        for key in ours:
            tolerance = LOSS_TOLERANCE if key in ("loss", "mse") else 1.5 / n_val
            assert ours[key] == pytest.approx(theirs[key], abs=tolerance), key


def one_by_one(metaprograms, task: str, seeds) -> list[Result]:
    return [
        train(m, task=task, seed=s, device="cpu") for m, s in zip(metaprograms, seeds, strict=True)
    ]


def test_members_match_training_alone(digits_schema) -> None:
    """Every per-member setting a stack carries, each against its own train() run."""
    base = {"train.epochs": 2, "model.width": 16, "train.batch_size": 128}
    variants = [
        {},
        {"model.width": 32, "optim.lr": 3e-3, "optim.weight_decay": 1e-3},
        {"optim.name": "sgd", "optim.lr": 0.05, "optim.momentum": 0.8, "optim.weight_decay": 1e-3},
        {"optim.name": "adamw", "optim.weight_decay": 0.05, "optim.schedule": "warmup_cosine"},
        {"model.dropout": 0.2, "train.grad_clip": 0.5, "model.width": 24},
        {"train.label_smoothing": 0.1, "optim.schedule": "cosine", "data.augment": True},
        {"train.epochs": 1},
        {"train.early_stopping": 1, "train.epochs": 3, "optim.lr": 0.5},
        {"optim.name": "sgd", "optim.lr": 0.1, "optim.momentum": 0.0, "model.width": 32},
    ]
    metaprograms = [digits_schema.validate({**base, **v}) for v in variants]
    seeds = list(range(10, 10 + len(metaprograms)))
    assert population_groups(metaprograms) == [list(range(len(metaprograms)))]  # one stack
    for batched, alone in zip(
        train_population(metaprograms, task="digits", seeds=seeds, device="cpu"),
        one_by_one(metaprograms, "digits", seeds),
        strict=True,
    ):
        assert_same_run(batched, alone, "digits")


@pytest.mark.parametrize("task", ["diabetes", "iris"])
def test_tabular_members_match_training_alone(tabular_schema, task: str) -> None:
    """Regression and classification tables, the MLP and the linear family."""
    metaprograms = [
        tabular_schema.validate(
            {"train.epochs": 2, "model.width": w, "train.batch_size": 32, "optim.lr": lr}
        )
        for w, lr in ((16, 1e-3), (64, 1e-2))
    ] + [
        tabular_schema.validate(
            {"model.family": "linear", "train.epochs": 2, "train.batch_size": 32}
        )
    ] * 2
    seeds = [1, 2, 3, 4]
    assert population_groups(metaprograms) == [[0, 1], [2, 3]]
    for batched, alone in zip(
        train_population(metaprograms, task=task, seeds=seeds, device="cpu"),
        one_by_one(metaprograms, task, seeds),
        strict=True,
    ):
        assert_same_run(batched, alone, task)


def test_padded_widths_never_change_a_member(digits_schema) -> None:
    """A narrow member beside a wide one trains as it would beside its own width."""
    narrow = digits_schema.validate({"train.epochs": 1, "model.width": 16})
    wide = digits_schema.validate({"train.epochs": 1, "model.width": 256, "model.dropout": 0.3})
    beside_wide = train_population([narrow, wide], task="digits", seeds=[5, 6], device="cpu")[0]
    beside_narrow = train_population([narrow, narrow], task="digits", seeds=[5, 6], device="cpu")[0]
    assert beside_wide.n_params == beside_narrow.n_params < 64 * 16 + 16 * 16 + 16 * 10 + 100
    assert_same_run(beside_wide, beside_narrow, "digits")


def test_a_diverging_member_diverges_alone(digits_schema) -> None:
    metaprograms = [
        digits_schema.validate({"train.epochs": 2, "model.width": w}) for w in (16, 32, 16)
    ]
    metaprograms[1] = {
        **metaprograms[1],
        "optim.name": "sgd",
        "optim.lr": 1e12,
        "optim.momentum": 0.9,
    }
    seeds = [0, 1, 2]
    results = train_population(metaprograms, task="digits", seeds=seeds, device="cpu")
    assert [r.status for r in results] == ["ok", "diverged", "ok"]
    assert "non-finite" in (results[1].error or "")
    assert not math.isfinite(results[1].curve[-1]["train_loss"])
    assert results[1].val_metrics == {} and results[1].epochs == 1
    for i in (0, 2):  # the others are the runs they make without it
        assert_same_run(
            results[i], train(metaprograms[i], task="digits", seed=seeds[i], device="cpu"), "digits"
        )


def test_members_that_cannot_share_a_stack_are_grouped_or_trained_alone(digits_schema) -> None:
    def m(**settings):
        return digits_schema.validate({"train.epochs": 1, "model.width": 16, **settings})

    metaprograms = [
        m(),  # 0: the default MLP structure
        m(**{"model.family": "cnn", "model.channels": 4}),  # 1: another family
        m(**{"model.norm": "batch"}),  # 2: normalization layers are not stacked
        m(**{"model.width": 64, "optim.name": "sgd"}),  # 3: stacks with 0
        m(**{"model.depth": 1}),  # 4: another depth, and alone in it
        m(**{"train.batch_size": 32}),  # 5: another batch size...
        m(**{"train.batch_size": 32, "model.activation": "tanh"}),  # 6: ... and activation
        m(**{"train.batch_size": 32, "model.dropout": 0.1}),  # 7: stacks with 5
    ]
    assert population_groups(metaprograms) == [[0, 3], [1], [2], [4], [5, 7], [6]]
    # on a GPU nn.Dropout draws its masks with a fused kernel: a member with dropout is alone
    on_gpu = [[0, 3], [1], [2], [4], [5], [6], [7]]
    assert population_groups(metaprograms, torch.device("cuda")) == on_gpu
    seeds = list(range(len(metaprograms)))
    results = train_population(metaprograms, task="digits", seeds=seeds, device="cpu")
    for i in (1, 2, 4, 6):  # trained by train itself: exactly its results
        alone = train(metaprograms[i], task="digits", seed=seeds[i], device="cpu")
        assert (results[i].curve, results[i].test_metrics) == (alone.curve, alone.test_metrics)
    assert all(r.ok for r in results)


def test_seeds_must_match_the_metaprograms(digits_schema) -> None:
    with pytest.raises(ValueError, match="one seed per metaprogram"):
        train_population([digits_schema.validate({})], task="digits", seeds=[0, 1], device="cpu")


def test_run_many_batches_in_process_and_loops_elsewhere(digits_schema, tmp_path) -> None:
    task = TaskRef("digits")
    metaprograms = [digits_schema.validate({"train.epochs": 1, "model.width": w}) for w in (16, 32)]
    jobs = [Job(m, task, seed) for seed, m in enumerate(metaprograms)]
    jobs.append(Job(metaprograms[0], task, 0, save_to=str(tmp_path / "run.pt")))  # runs alone

    class Looping(Executor):  # the base class: one run() per job
        def run(self, metaprogram, *, task, seed, start=None, save_to=None, schedule_epochs=None):
            return train(metaprogram, task=task, seed=seed, device="cpu", save_to=save_to)

    batched = InProcessExecutor(device="cpu").run_many(jobs)
    looped = Looping().run_many(jobs)
    assert [r.status for r in batched] == ["ok"] * 3
    assert (tmp_path / "run.pt").exists()
    for ours, theirs in zip(batched, looped, strict=True):
        assert_same_run(ours, theirs, "digits")


def test_run_many_turns_a_failed_stack_into_failed_results(digits_schema) -> None:
    broken = digits_schema.validate({"train.epochs": 1})
    del broken["train.grad_clip"]  # a stack of two fails as a whole
    good = digits_schema.validate({"train.epochs": 1, "model.depth": 1})
    jobs = [
        Job(broken, TaskRef("digits"), 0),
        Job(broken, TaskRef("digits"), 1),
        Job(good, TaskRef("digits"), 2),
    ]
    results = InProcessExecutor(device="cpu").run_many(jobs)
    assert [r.status for r in results] == ["error", "error", "ok"]
