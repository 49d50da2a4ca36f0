"""The training loop: datasets, models, pipeline settings, hooks and determinism."""

from __future__ import annotations

import importlib
import itertools
import math

import gymnasium as gym
import pytest
import torch
from sklearn import datasets as skdatasets

from researchgym.engine import (
    EarlyStopping,
    Hook,
    Result,
    TrainingState,
    build_model,
    check_trainable,
    count_parameters,
    load_task_data,
    train,
)
from researchgym.envs.suites import get_suite
from tests.conftest import stop_after

train_module = importlib.import_module("researchgym.engine.training")

TASKS = tuple((suite, task) for suite in ("digits", "tabular") for task in get_suite(suite).tasks)


def fit(schema, task: str, seed: int = 0, hooks=(), **settings) -> Result:
    return train(schema.validate(settings), task=task, seed=seed, device="cpu", hooks=hooks)


def majority_rate(y: torch.Tensor) -> float:
    return float(torch.bincount(y).max()) / len(y)


# --- every dataset trains with the defaults ----------------------------------------------
@pytest.mark.parametrize("suite, task", TASKS)
def test_defaults_train_above_chance(suite, task):
    schema = get_suite(suite).make_schema()
    result = fit(schema, task)
    assert result.status == "ok" and result.error is None
    score = result.val_metrics["score"]
    data = load_task_data(task)
    if data.kind == "classification":
        assert result.val_metrics["accuracy"] == score
        assert score > majority_rate(data.y_val) + 0.1
        assert set(result.test_metrics) == set(result.val_metrics)
    else:
        assert score == pytest.approx(result.val_metrics["r2"])
        assert score > 0.3
    if task == "digits":
        assert score > 0.9
    epochs = schema.defaults()["train.epochs"]
    assert len(result.curve) == epochs
    assert [point["epoch"] for point in result.curve] == list(range(1, epochs + 1))
    assert result.curve[-1]["val_score"] == score
    assert result.samples >= epochs * (len(data.x_train) - 1)
    assert result.n_params > 0 and result.seconds > 0


def test_cnn_family_trains_on_digits(digits_schema):
    cnn = fit(digits_schema, "digits", **{"model.family": "cnn"})
    assert cnn.status == "ok"
    assert cnn.val_metrics["score"] > 0.9
    model = build_model(digits_schema.validate({"model.family": "cnn"}), (1, 8, 8), 10)
    assert cnn.n_params == count_parameters(model)
    assert any(isinstance(layer, torch.nn.Conv2d) for layer in model.modules())


@pytest.mark.parametrize(
    "settings",
    [
        {
            "model.family": "cnn",
            "model.norm": "batch",
            "model.pooling": "avg",
            "model.kernel": 5,
            "model.conv_depth": 3,
        },
        {"model.family": "cnn", "model.norm": "layer", "model.dropout": 0.3, "data.augment": True},
        {
            "model.family": "mlp",
            "model.norm": "batch",
            "model.activation": "gelu",
            "model.depth": 1,
        },
        {
            "model.family": "mlp",
            "model.norm": "layer",
            "model.activation": "silu",
            "model.dropout": 0.5,
        },
        {
            "model.family": "mlp",
            "model.activation": "tanh",
            "data.scaling": "minmax",
            "optim.name": "adamw",
        },
        {"data.scaling": "none", "optim.name": "sgd", "optim.lr": 0.05, "train.batch_size": 8},
    ],
)
def test_model_and_pipeline_variants_train(digits_schema, settings):
    result = fit(digits_schema, "digits", **{"train.epochs": 2, **settings})
    assert result.status == "ok"
    assert result.val_metrics["score"] > 0.5
    assert all(math.isfinite(point["train_loss"]) for point in result.curve)


def test_linear_family_on_tabular(tabular_schema):
    result = fit(
        tabular_schema, "wine", **{"model.family": "linear", "optim.lr": 0.03, "train.epochs": 20}
    )
    data = load_task_data("wine")
    n_features = data.input_shape[0]
    assert result.n_params == n_features * data.n_classes + data.n_classes
    assert result.val_metrics["score"] > 0.8


def test_build_model_shapes(digits_schema, tabular_schema):
    for schema, shape, outputs in [(digits_schema, (1, 8, 8), 10), (tabular_schema, (13,), 3)]:
        for family in schema["model.family"].choices:
            m = schema.validate({"model.family": family})
            model = build_model(m, shape, outputs)
            assert model(torch.zeros(4, *shape)).shape == (4, outputs)
            assert count_parameters(model) > 0
    with pytest.raises(ValueError, match="CNN needs image inputs"):
        build_model(digits_schema.validate({"model.family": "cnn"}), (64,), 10)


# --- determinism ---------------------------------------------------------------------------
def test_same_seed_gives_bitwise_same_result(digits_schema):
    settings = {"train.epochs": 3, "model.dropout": 0.2, "data.augment": True}
    a = fit(digits_schema, "digits", seed=5, **settings)
    b = fit(digits_schema, "digits", seed=5, **settings)
    assert a.val_metrics == b.val_metrics
    assert a.test_metrics == b.test_metrics
    assert a.curve == b.curve
    assert a.samples == b.samples


def test_different_seed_gives_a_different_curve(digits_schema):
    a = fit(digits_schema, "digits", seed=5, **{"train.epochs": 3})
    b = fit(digits_schema, "digits", seed=6, **{"train.epochs": 3})
    assert [p["train_loss"] for p in a.curve] != [p["train_loss"] for p in b.curve]


# --- pipeline settings ---------------------------------------------------------------------
def test_early_stopping_stops_early(tabular_schema):
    patience, epochs = 2, 100
    result = fit(
        tabular_schema, "iris", **{"train.epochs": epochs, "train.early_stopping": patience}
    )
    assert result.status == "ok"
    scores = [p["val_score"] for p in result.curve]
    assert len(scores) < epochs
    best_before = max(scores[:-patience])
    assert all(s <= best_before for s in scores[-patience:])
    # replaying the curve, the rule first fires at the last epoch trained
    hook, state = EarlyStopping(patience), TrainingState(metaprogram={}, epochs=epochs)
    for point in result.curve:
        assert not state.stop
        state.curve.append(point)
        hook.on_epoch_end(state)
    assert state.stop


def test_early_stopping_hook_counts_epochs_without_improvement():
    hook = EarlyStopping(patience=2)
    state = TrainingState(metaprogram={}, epochs=10)
    stops = []
    for score in [0.5, 0.6, 0.6, 0.7, 0.7, 0.65]:
        state.curve.append({"val_score": score})
        hook.on_epoch_end(state)
        stops.append(state.stop)
    assert stops == [False, False, False, False, False, True]


@pytest.fixture
def recorded_lrs(monkeypatch):
    """Learning rates in force at every optimizer step of the next ``train`` call."""
    lrs: list[float] = []
    original = train_module._optimizer

    def spying_optimizer(m, params):
        optimizer = original(m, params)
        step = optimizer.step

        def recording_step(*args, **kwargs):
            lrs.append(optimizer.param_groups[0]["lr"])
            return step(*args, **kwargs)

        optimizer.step = recording_step
        return optimizer

    monkeypatch.setattr(train_module, "_optimizer", spying_optimizer)
    return lrs


def test_constant_schedule(tabular_schema, recorded_lrs):
    assert fit(tabular_schema, "wine", **{"train.epochs": 3, "optim.lr": 0.01}).status == "ok"
    assert recorded_lrs and all(lr == 0.01 for lr in recorded_lrs)


def test_cosine_schedule(tabular_schema, recorded_lrs):
    settings = {
        "train.epochs": 10,
        "train.batch_size": 8,
        "optim.lr": 0.01,
        "optim.schedule": "cosine",
    }
    result = fit(tabular_schema, "wine", **settings)
    assert result.status == "ok"
    assert recorded_lrs[0] == pytest.approx(0.01)
    assert all(a >= b for a, b in itertools.pairwise(recorded_lrs))
    assert recorded_lrs[-1] < 0.01 * 0.01
    assert recorded_lrs[len(recorded_lrs) // 2] == pytest.approx(0.005, rel=0.1)


def test_warmup_cosine_schedule(tabular_schema, recorded_lrs):
    settings = {
        "train.epochs": 10,
        "optim.lr": 0.01,
        "optim.schedule": "warmup_cosine",
        "optim.warmup_frac": 0.2,
    }
    assert fit(tabular_schema, "wine", **settings).status == "ok"
    peak = recorded_lrs.index(max(recorded_lrs))
    warmup = int(0.2 * len(recorded_lrs))
    assert max(recorded_lrs) == pytest.approx(0.01)
    assert peak == warmup - 1
    assert recorded_lrs[0] == pytest.approx(0.01 / warmup)
    assert all(a < b for a, b in itertools.pairwise(recorded_lrs[: peak + 1]))
    assert all(a >= b for a, b in itertools.pairwise(recorded_lrs[peak:]))


def test_label_smoothing_raises_the_training_loss(digits_schema):
    plain = fit(digits_schema, "digits", **{"train.epochs": 3})
    smooth = fit(digits_schema, "digits", **{"train.epochs": 3, "train.label_smoothing": 0.3})
    assert smooth.status == "ok" and smooth.val_metrics["score"] > 0.8
    assert smooth.curve[-1]["train_loss"] > plain.curve[-1]["train_loss"] + 0.3


def test_grad_clip_is_applied(tabular_schema, monkeypatch):
    calls: list[float] = []
    original = torch.nn.utils.clip_grad_norm_

    def spy(parameters, max_norm, *args, **kwargs):
        calls.append(max_norm)
        return original(parameters, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    unclipped = fit(tabular_schema, "wine", **{"train.epochs": 2})
    assert calls == []
    clipped = fit(tabular_schema, "wine", **{"train.epochs": 2, "train.grad_clip": 0.01})
    assert calls and set(calls) == {0.01}
    assert clipped.curve != unclipped.curve


def test_label_smoothing_is_ignored_for_regression(tabular_schema):
    assert "train.label_smoothing" in tabular_schema  # the suite mixes both kinds
    smooth = fit(tabular_schema, "diabetes", **{"train.label_smoothing": 0.3, "train.epochs": 3})
    plain = fit(tabular_schema, "diabetes", **{"train.epochs": 3})
    assert smooth.status == "ok" and "r2" in smooth.val_metrics
    assert smooth.curve == plain.curve


def test_divergence_is_a_status_not_an_exception(tabular_schema):
    result = fit(
        tabular_schema,
        "diabetes",
        **{
            "optim.name": "sgd",
            "optim.lr": 1.0,
            "optim.momentum": 0.99,
            "model.depth": 4,
            "data.scaling": "none",
        },
    )
    assert result.status == "diverged"
    assert "non-finite" in result.error
    assert result.val_metrics == {} and result.score is None
    assert len(result.curve) < 10  # stopped at the epoch it diverged
    assert "val_score" not in result.curve[-1]


# --- hooks -------------------------------------------------------------------------------
class Recorder(Hook):
    def __init__(self):
        self.events: list[str] = []

    def on_train_start(self, state):
        self.events.append("start")

    def on_epoch_end(self, state):
        self.events.append(f"epoch{state.epoch}:{len(state.curve)}")

    def on_train_end(self, state):
        self.events.append("end")


def test_hooks_see_every_epoch(tabular_schema):
    recorder = Recorder()
    fit(tabular_schema, "iris", hooks=[recorder], **{"train.epochs": 3})
    assert recorder.events == ["start", "epoch0:1", "epoch1:2", "epoch2:3", "end"]


def test_a_hook_can_stop_training(tabular_schema):
    result = fit(tabular_schema, "iris", hooks=[stop_after(2)], **{"train.epochs": 50})
    assert result.status == "ok" and len(result.curve) == 2


def test_result_round_trips_through_a_dict(tabular_schema):
    result = fit(tabular_schema, "iris", **{"train.epochs": 2})
    assert Result(**result.to_dict()) == result
    assert result.ok and result.score == result.val_metrics["score"]


# --- data --------------------------------------------------------------------------------
def test_task_data_is_cached():
    a = load_task_data("iris")
    assert load_task_data("iris") is a
    assert load_task_data("iris", "minmax") is not a
    assert load_task_data("iris", "minmax") is load_task_data("iris", "minmax")


@pytest.mark.parametrize("task", ["digits", "iris", "diabetes"])
def test_splits_are_disjoint_and_scaled(task):
    data = load_task_data(task)
    sizes = [len(data.x_train), len(data.x_val), len(data.x_test)]
    assert (
        len(data.y_train) == sizes[0]
        and len(data.y_val) == sizes[1]
        and len(data.y_test) == sizes[2]
    )
    assert sizes[0] > sizes[1] > 0 and sizes[2] > 0
    loader = {
        "digits": skdatasets.load_digits,
        "iris": skdatasets.load_iris,
        "diabetes": skdatasets.load_diabetes,
    }
    assert sum(sizes) == len(loader[task](return_X_y=True)[1])
    flat = data.x_train.reshape(len(data.x_train), -1)
    assert torch.allclose(flat.mean(0), torch.zeros(flat.shape[1]), atol=1e-4)
    assert data.x_train.device.type == "cpu" and data.x_train.dtype == torch.float32
    minmax = load_task_data(task, "minmax").x_train
    assert float(minmax.min()) >= -1e-6 and float(minmax.max()) <= 1 + 1e-6


def test_unknown_dataset():
    with pytest.raises(ValueError, match="nope"):
        load_task_data("nope")


def test_non_finite_validation_metrics_count_as_divergence():
    """A finite training loss whose last steps blow the weights up is still a divergence."""
    schema = gym.make("researchgym/Tabular-v0", store=False).unwrapped.schema
    metaprogram = schema.validate(
        {
            "optim.name": "sgd",
            "optim.lr": 1.0,
            "model.depth": 4,
            "train.epochs": 3,
            "train.batch_size": 64,
        }
    )
    result = train(metaprogram, task="diabetes", seed=0)
    assert math.isfinite(result.curve[-1]["train_loss"])  # the loss alone did not reveal it
    assert result.status == "diverged"
    assert result.val_metrics == {} and result.score is None
    assert "non-finite" in result.error


# --- the one-batch check -------------------------------------------------------------------
@pytest.mark.parametrize("task", ["wine", "diabetes"])
def test_check_trainable_builds_and_runs_one_step_without_touching_the_rng(tabular_schema, task):
    metaprogram = tabular_schema.validate({"model.width": 16})
    before = torch.get_rng_state()
    check = check_trainable(metaprogram, task=task, batch=4, seed=1)
    assert torch.equal(torch.get_rng_state(), before)
    data = load_task_data(task)
    model = build_model(metaprogram, data.input_shape, data.n_outputs)
    assert check.ok and check.error is None and check.n_params == count_parameters(model)


class _NaNOut(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x) * float("nan")


class _Raises(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(3))

    def forward(self, x):
        raise RuntimeError("kernel unavailable")


def test_check_trainable_reports_non_finite_losses_and_failures(tabular_schema, monkeypatch):
    metaprogram = tabular_schema.validate({})
    real = train_module.build_model
    monkeypatch.setattr(train_module, "build_model", lambda *a: _NaNOut(real(*a)))
    nan = check_trainable(metaprogram, task="wine")
    assert nan.status == "non_finite" and "the loss of one batch is nan" in nan.error
    assert nan.n_params is not None and nan.n_params > 0
    monkeypatch.setattr(train_module, "build_model", lambda *a: _Raises())
    broken = check_trainable(metaprogram, task="wine")
    assert broken.status == "error" and not broken.ok
    assert "RuntimeError: kernel unavailable" in broken.error and broken.n_params == 3
