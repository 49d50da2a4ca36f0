"""Runtime options: precision, compilation and determinism, on the CPU."""

from __future__ import annotations

import os
import time

import gymnasium as gym
import pytest
import torch

from researchgym.engine import (
    InProcessExecutor,
    LambdaHook,
    Runtime,
    TaskRef,
    train,
    train_population,
)
from researchgym.engine.data import augment_images
from researchgym.errors import MAX_ERROR_CHARS, ConfigError

# bf16 autocast rounds every product of the forward pass to 8 bits of mantissa; over
# three epochs of digits the validation loss moved by 1e-4 (0.38642 against 0.38632) and
# accuracy not at all. 5% of the loss and 2% accuracy (7 of 360 examples) still catch a
# run that trains wrongly (a bad cast or an unscaled loss moves them by far more).
BF16_LOSS_RTOL, BF16_SCORE_ATOL = 0.05, 0.02


@pytest.fixture
def digits(digits_schema):
    return digits_schema.validate({"train.epochs": 3, "model.width": 64})


@pytest.mark.parametrize(
    "options, message",
    [
        ({"precision": "fp16"}, "precision='fp16' is not one of ('fp32', 'bf16')"),
        ({"precision": "x" * 10_000}, "(10,002 characters)"),
        ({"compile": "yes"}, "compile='yes' must be True or False"),
        ({"deterministic": 1}, "deterministic=1 must be True or False"),
    ],
)
def test_bad_options_are_refused_with_bounded_messages(options, message) -> None:
    with pytest.raises(ConfigError, match="must be|is not one of") as raised:
        Runtime(**options)
    assert message in str(raised.value) and len(str(raised.value)) < MAX_ERROR_CHARS


def test_runtime_of_takes_a_runtime_a_mapping_or_none() -> None:
    bf16 = Runtime(precision="bf16")
    assert Runtime.of(None) == Runtime() and Runtime.of(bf16) is bf16
    assert Runtime.of({"precision": "bf16"}) == bf16
    with pytest.raises(ConfigError, match="no option 'precison'; the options are"):
        Runtime.of({"precison": "bf16"})
    with pytest.raises(ConfigError, match="must be a Runtime, a mapping of"):
        Runtime.of("bf16")


def test_bad_options_fail_train_executors_and_envs_before_training(digits) -> None:
    with pytest.raises(ConfigError, match="precision='fp16'"):
        train(digits, task="digits", device="cpu", runtime={"precision": "fp16"})
    with pytest.raises(ConfigError, match="precision='fp16'"):
        InProcessExecutor(device="cpu", runtime={"precision": "fp16"})
    with pytest.raises(ConfigError, match="compile='no'"):
        gym.make("researchgym/Digits-v0", store=False, runtime={"compile": "no"})


def test_bf16_is_refused_where_autocast_cannot_compute_in_it(monkeypatch) -> None:
    bf16 = Runtime(precision="bf16")
    with pytest.raises(ConfigError, match="not supported on device 'meta'.*use precision='fp32'"):
        bf16.check(torch.device("meta"))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    with pytest.raises(ConfigError, match="Ampere or later"):
        bf16.check(torch.device("cuda"))
    bf16.check(torch.device("cpu"))


def test_bf16_on_the_cpu_trains_close_to_fp32(digits) -> None:
    fp32 = train(digits, task="digits", seed=0, device="cpu")
    bf16 = train(digits, task="digits", seed=0, device="cpu", runtime={"precision": "bf16"})
    assert fp32.status == bf16.status == "ok"
    assert bf16.val_metrics["loss"] != fp32.val_metrics["loss"]  # the autocast is real
    assert bf16.val_metrics["loss"] == pytest.approx(fp32.val_metrics["loss"], rel=BF16_LOSS_RTOL)
    assert bf16.val_metrics["score"] == pytest.approx(
        fp32.val_metrics["score"], abs=BF16_SCORE_ATOL
    )
    assert all(type(v) is float for v in bf16.val_metrics.values())  # metrics read as float32


def test_bf16_population_members_match_their_bf16_runs_alone(digits_schema) -> None:
    members = [
        digits_schema.validate({"train.epochs": 2, "model.width": w, "optim.lr": lr})
        for w, lr in ((32, 1e-3), (64, 3e-3))
    ]
    bf16 = Runtime(precision="bf16")
    stacked = train_population(members, task="digits", seeds=[1, 2], device="cpu", runtime=bf16)
    for member, seed, ours in zip(members, [1, 2], stacked, strict=True):
        alone = train(member, task="digits", seed=seed, device="cpu", runtime=bf16)
        assert ours.status == alone.status == "ok"
        # bf16 rounding of differently ordered products: within the bf16 tolerances
        assert ours.val_metrics["loss"] == pytest.approx(
            alone.val_metrics["loss"], rel=BF16_LOSS_RTOL
        )
        assert ours.val_metrics["score"] == pytest.approx(
            alone.val_metrics["score"], abs=BF16_SCORE_ATOL
        )


@pytest.fixture
def nondeterministic():
    """Torch's deterministic algorithms off for the test (RLlib's seeding turns them on for
    the whole process), restored after it."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(False)
    yield
    torch.use_deterministic_algorithms(before)


def test_deterministic_runs_repeat_bitwise_and_restore_the_global_state(
    digits, nondeterministic
) -> None:
    seen = []
    hook = LambdaHook(lambda state: seen.append(torch.are_deterministic_algorithms_enabled()))
    runs = [
        train(
            {**digits, "data.augment": True, "model.dropout": 0.1},
            task="digits",
            seed=3,
            device="cpu",
            hooks=[hook],
            runtime=Runtime(deterministic=True),
        )
        for _ in range(2)
    ]
    assert runs[0].status == "ok" and seen == [True] * 6
    assert runs[0].curve == runs[1].curve and runs[0].val_metrics == runs[1].val_metrics
    assert not torch.are_deterministic_algorithms_enabled()


def test_deterministic_mode_sets_and_restores_cuda_settings(monkeypatch) -> None:
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    cudnn = torch.backends.cudnn
    before = (cudnn.benchmark, cudnn.deterministic)
    with Runtime(deterministic=True).applied(torch.device("cuda")):
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        assert (cudnn.benchmark, cudnn.deterministic) == (False, True)
        assert torch.are_deterministic_algorithms_enabled()
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    assert (cudnn.benchmark, cudnn.deterministic) == before
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # a value already set is kept
    with Runtime(deterministic=True).applied(torch.device("cuda")):
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def test_compile_without_a_cpp_compiler_is_a_clear_error(digits, monkeypatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(ConfigError, match="needs a C\\+\\+ compiler.*use compile=False"):
        train(digits, task="digits", device="cpu", runtime={"compile": True})
    result = InProcessExecutor(device="cpu", runtime={"compile": True}).run(
        digits, task=TaskRef("digits"), seed=0
    )
    assert result.status == "error" and "C++ compiler" in (result.error or "")


def test_a_compiled_population_trains_every_member_alone(digits_schema, monkeypatch) -> None:
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda model: compiled.append(model) or model)
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")  # a compiler found
    members = [digits_schema.validate({"train.epochs": 1, "model.width": w}) for w in (16, 32)]
    runs = train_population(
        members, task="digits", seeds=[0, 1], device="cpu", runtime={"compile": True}
    )
    assert len(compiled) == 2  # one compiled model per member: nothing stacked
    for member, seed, ours in zip(members, [0, 1], runs, strict=True):
        alone = train(member, task="digits", seed=seed, device="cpu")
        assert ours.curve == alone.curve and ours.val_metrics == alone.val_metrics


@pytest.mark.slow
def test_compile_on_the_cpu_trains_like_eager(digits) -> None:
    """torch.compile of a digits MLP took 25 s on this project's 2-core CPU, most of it
    compiling C++; the compiled kernels sum in other orders, so metrics agree to float32
    rounding, not bitwise."""
    eager = train(digits, task="digits", seed=0, device="cpu")
    started = time.perf_counter()
    compiled = train(digits, task="digits", seed=0, device="cpu", runtime={"compile": True})
    assert compiled.status == "ok", compiled.error
    assert time.perf_counter() - started < 300
    assert compiled.val_metrics["loss"] == pytest.approx(eager.val_metrics["loss"], rel=1e-3)
    assert compiled.val_metrics["score"] == pytest.approx(eager.val_metrics["score"], abs=0.01)


def test_augmentation_offsets_stay_on_the_device_and_shift_as_slicing_does() -> None:
    x = torch.randn(4, 1, 8, 8)
    for seed in range(10):
        shifted = augment_images(x, torch.Generator().manual_seed(seed))
        dy, dx = torch.randint(0, 3, (2,), generator=torch.Generator().manual_seed(seed)).tolist()
        padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
        assert torch.equal(shifted, padded[:, :, dy : dy + 8, dx : dx + 8])
