"""Training on CUDA: data on the device, no waiting inside an epoch, bf16, determinism,
compilation and populations. Marked ``gpu``: skipped without a CUDA device."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import gymnasium as gym
import pytest
import torch

from researchgym.engine import Result, Runtime, load_task_data, train, train_population
from tests.engine.test_population import assert_same_run
from tests.engine.test_runtime import BF16_LOSS_RTOL, BF16_SCORE_ATOL

pytestmark = pytest.mark.gpu


@pytest.fixture
def digits(digits_schema):
    return digits_schema.validate({"train.epochs": 3, "model.width": 64})


def test_data_and_training_stay_on_the_device(digits) -> None:
    data = load_task_data("digits", device="cuda")
    splits = (data.x_train, data.y_train, data.x_val, data.y_val, data.x_test, data.y_test)
    assert {t.device.type for t in splits} == {"cuda"}
    result = train(digits, task="digits", seed=0, device="cuda")
    assert result.status == "ok" and result.device.startswith("cuda")


def host_syncs(run: Callable[[], list[Result]]) -> int:
    """Synchronizing CUDA calls torch reports while ``run`` trains."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            results = run()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert all(r.status == "ok" for r in results)
    return sum("synchroniz" in str(w.message).lower() for w in caught)


@pytest.mark.parametrize("population", [False, True])
def test_nothing_inside_an_epoch_waits_for_the_device(digits_schema, population) -> None:
    """As many host synchronizations with 67 steps an epoch as with 3: none per step."""
    settings = {
        "train.epochs": 2,
        "data.augment": True,
        "train.grad_clip": 1.0,
        "optim.schedule": "cosine",
    }

    def run(batch_size: int) -> Callable[[], list[Result]]:
        m = digits_schema.validate({**settings, "train.batch_size": batch_size})
        if population:
            return lambda: train_population([m, m], task="digits", seeds=[0, 1], device="cuda")
        return lambda: [train(m, task="digits", seed=0, device="cuda")]

    host_syncs(run(16))  # CUDA, cuBLAS and the data warmed up
    assert host_syncs(run(512)) == host_syncs(run(16))


def test_bf16_trains_close_to_fp32(digits) -> None:
    fp32 = train(digits, task="digits", seed=0, device="cuda")
    bf16 = train(digits, task="digits", seed=0, device="cuda", runtime={"precision": "bf16"})
    assert fp32.status == bf16.status == "ok"
    assert bf16.val_metrics["loss"] == pytest.approx(fp32.val_metrics["loss"], rel=BF16_LOSS_RTOL)
    assert bf16.val_metrics["score"] == pytest.approx(
        fp32.val_metrics["score"], abs=BF16_SCORE_ATOL
    )


@pytest.mark.parametrize("family", ["mlp", "cnn"])
def test_deterministic_runs_repeat_bitwise(digits_schema, family) -> None:
    m = digits_schema.validate(
        {
            "model.family": family,
            "model.norm": "batch",
            "model.dropout": 0.1,
            "data.augment": True,
            "train.epochs": 2,
        }
    )
    deterministic = Runtime(deterministic=True)
    first, second = (
        train(m, task="digits", seed=5, device="cuda", runtime=deterministic) for _ in range(2)
    )
    assert first.status == "ok", first.error
    assert first.curve == second.curve and first.val_metrics == second.val_metrics
    assert not torch.are_deterministic_algorithms_enabled()


def test_compiled_training_matches_eager(digits) -> None:
    eager = train(digits, task="digits", seed=0, device="cuda")
    compiled = train(digits, task="digits", seed=0, device="cuda", runtime={"compile": True})
    assert compiled.status == "ok", compiled.error
    # compiled kernels fuse and reorder float32 arithmetic: equal up to rounding
    assert compiled.val_metrics["loss"] == pytest.approx(eager.val_metrics["loss"], rel=1e-3)
    assert compiled.val_metrics["score"] == pytest.approx(eager.val_metrics["score"], abs=0.01)


def test_population_members_match_their_runs_alone(digits_schema) -> None:
    """Members with dropout train alone on CUDA (``nn.Dropout`` draws its masks there with a
    fused kernel), so they match too."""
    base = {"train.epochs": 2, "model.width": 16, "train.batch_size": 128}
    variants = [
        {},
        {"model.dropout": 0.2},
        {"model.width": 32, "optim.lr": 3e-3, "optim.weight_decay": 1e-3},
        {"optim.name": "sgd", "optim.lr": 0.05, "optim.momentum": 0.8},
        {"optim.name": "adamw", "optim.schedule": "warmup_cosine", "train.grad_clip": 0.5},
        {"train.label_smoothing": 0.1, "data.augment": True},
    ]
    members = [digits_schema.validate({**base, **v}) for v in variants]
    seeds = list(range(len(members)))
    stacked = train_population(members, task="digits", seeds=seeds, device="cuda")
    for m, seed, ours in zip(members, seeds, stacked, strict=True):
        assert_same_run(ours, train(m, task="digits", seed=seed, device="cuda"), "digits")


def test_an_env_trains_in_bf16_on_cuda() -> None:
    env = gym.make(
        "researchgym/Digits-v0", store=False, device="cuda", runtime={"precision": "bf16"}
    )
    env.reset(seed=0)
    *_, info = env.step(env.unwrapped.to_action({"train.epochs": 2}))
    assert info["status"] == "ok"
    env.close()
