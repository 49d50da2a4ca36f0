"""MNIST (IDX) and CIFAR-10 (python batch) loaders, on small files the tests write."""

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from researchgym.engine import (
    SubprocessExecutor,
    TaskRef,
    check_task,
    load_task_data,
    task_name,
    train,
)
from researchgym.engine.file_datasets import (
    DataFilesNotFound,
    check_files,
    load_file_dataset,
    read_cifar_batch,
    read_idx,
    write_cifar_batch,
    write_idx,
)
from researchgym.envs.suites import get_suite


def make_mnist(
    root: Path, n_train: int = 60, n_test: int = 20, gz: bool = False, seed: int = 0
) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 40, size=(n, 28, 28))
        images[np.arange(n), 2 + labels * 2, 5:20] = 255  # a bar whose row gives the label
        write_idx(root / f"{split}-images-idx3-ubyte{suffix}", images)
        write_idx(root / f"{split}-labels-idx1-ubyte{suffix}", labels)
    return root


def make_cifar(
    root: Path, per_batch: int = 12, n_test: int = 20, protocol: int = 2, seed: int = 0
) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        n = n_test if name == "test_batch" else per_batch
        labels = rng.integers(0, 10, size=n)
        images = rng.integers(0, 256, size=(n, 3, 32, 32))
        images[:, 0] = labels[:, None, None] * 25  # the red channel gives the label
        write_cifar_batch(root / name, images, labels, protocol=protocol)
    return root


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files_round_trip(tmp_path, gz):
    array = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    path = tmp_path / ("a-idx3-ubyte.gz" if gz else "a-idx3-ubyte")
    write_idx(path, array)
    np.testing.assert_array_equal(read_idx(path), array)
    if gz:
        with gzip.open(path) as f:
            assert f.read(3) == b"\x00\x00\x08"


def test_malformed_idx_files_are_rejected(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    good = struct.pack(">BBBB", 0, 0, 8, 1) + struct.pack(">I", 10) + bytes(7)
    (tmp_path / "short").write_bytes(good)
    with pytest.raises(ValueError, match="shape \\(10,\\)"):
        read_idx(tmp_path / "short")


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_splits(tmp_path, gz):
    make_mnist(tmp_path, gz=gz)
    s = load_file_dataset("mnist", tmp_path)
    assert s.x_train.shape == (54, 1, 28, 28) and s.x_val.shape == (6, 1, 28, 28)
    assert s.x_test.shape == (20, 1, 28, 28) and s.x_train.dtype == np.float32
    assert 0.0 <= s.x_train.min() and s.x_train.max() == 1.0
    assert s.n_classes == 10 and s.chance == 0.1
    assert sorted(np.concatenate([s.y_train, s.y_val])) == sorted(np.arange(60) % 10)
    again = load_file_dataset("mnist", tmp_path)
    np.testing.assert_array_equal(s.y_val, again.y_val)
    assert len(load_file_dataset("mnist", tmp_path, n_train=10).x_train) == 10


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar_batches(tmp_path, protocol):
    make_cifar(tmp_path / "cifar-10-batches-py", protocol=protocol)
    x, y = read_cifar_batch(tmp_path / "cifar-10-batches-py" / "test_batch")
    assert x.shape == (20, 3, 32, 32) and x.dtype == np.uint8 and y.shape == (20,)
    s = load_file_dataset("cifar10", tmp_path)  # the batches' own subdirectory is found
    assert s.x_train.shape == (54, 3, 32, 32) and s.x_val.shape == (6, 3, 32, 32)
    assert s.x_test.shape == (20, 3, 32, 32)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_cifar_reader_refuses_pickles_that_name_other_globals(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "evil", "wb") as f:
        pickle.dump({b"data": _Exploit(), b"labels": []}, f)
    with pytest.raises(ValueError, match="refusing to load global"):
        read_cifar_batch(tmp_path / "evil")
    assert not (tmp_path / "pwned").exists()


def test_cifar_reader_checks_the_layout(tmp_path):
    with open(tmp_path / "odd", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(ValueError, match=r"expected \(n, 3072\)"):
        read_cifar_batch(tmp_path / "odd")


def test_missing_files_name_the_files_and_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("RESEARCHGYM_MNIST_DIR", raising=False)
    monkeypatch.delenv("RESEARCHGYM_CIFAR10_DIR", raising=False)
    with pytest.raises(DataFilesNotFound) as err:
        check_files("mnist")
    for fragment in (
        "train-images-idx3-ubyte[.gz]",
        "t10k-labels-idx1-ubyte[.gz]",
        "RESEARCHGYM_MNIST_DIR",
        "data_dir=",
    ):
        assert fragment in str(err.value)
    make_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataFilesNotFound, match=r"missing t10k-labels-idx1-ubyte\[.gz\];"):
        check_files("mnist", tmp_path)
    with pytest.raises(DataFilesNotFound) as err:
        check_files("cifar10", tmp_path)
    assert "data_batch_1" in str(err.value) and "test_batch" in str(err.value)


def test_the_directory_can_come_from_the_environment(tmp_path, monkeypatch):
    make_mnist(tmp_path, seed=5)
    monkeypatch.setenv("RESEARCHGYM_MNIST_DIR", str(tmp_path))
    assert check_files("mnist") == str(tmp_path)
    data = load_task_data(task_name("mnist", n_train=20))
    assert data.x_train.shape == (20, 1, 28, 28) and data.kind == "classification"
    assert abs(float(data.x_train.mean())) < 1e-4  # standard scaling on the training split


def test_a_task_reference_carries_the_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("RESEARCHGYM_MNIST_DIR", raising=False)
    ref = TaskRef("mnist?n_train=20", data_dir=make_mnist(tmp_path / "mnist"))
    data = load_task_data(ref)
    assert data.name == "mnist?n_train=20" and data.x_train.shape == (20, 1, 28, 28)
    with pytest.raises(DataFilesNotFound, match="none was given"):
        check_task("mnist")


@pytest.mark.slow
def test_a_worker_process_trains_from_a_task_reference(tmp_path, monkeypatch):
    monkeypatch.delenv("RESEARCHGYM_MNIST_DIR", raising=False)
    ref = TaskRef("mnist?n_train=20", data_dir=make_mnist(tmp_path / "mnist"))
    metaprogram = get_suite("mnist").make_schema().validate({"train.epochs": 1})
    worker = SubprocessExecutor(device="cpu", timeout=120)
    try:
        result = worker.run(metaprogram, task=ref, seed=0)
    finally:
        worker.close()
    assert result.status == "ok", result.error
    assert result.val_metrics == train(metaprogram, task=ref, seed=0, device="cpu").val_metrics
