"""MNIST-v0 and CIFAR10-v0: registered, clear errors without data, checkers pass on small files."""

import json
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import researchgym  # noqa: F401 - registers the envs
from researchgym.engine import TaskRef
from researchgym.engine.file_datasets import DataFilesNotFound, write_cifar_batch, write_idx
from researchgym.store import open_store
from tests.conftest import check_env

# Small, fast experiments: the checkers' random designs stay cheap.
CHEAP = {"store": False, "max_train_steps": 40, "max_params": 200_000}


def mnist_dir(root: Path) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 50), ("t10k", 20)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 30, size=(n, 28, 28))
        images[np.arange(n), 2 + 2 * labels, 4:24] = 255
        write_idx(root / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels)
    return root


def cifar_dir(root: Path) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = np.arange(10)
        images = rng.integers(0, 256, size=(10, 3, 32, 32))
        images[:, 0] = labels[:, None, None] * 25
        write_cifar_batch(root / name, images, labels)
    return root


DATA = {"researchgym/MNIST-v0": mnist_dir, "researchgym/CIFAR10-v0": cifar_dir}
VARIABLES = {
    "researchgym/MNIST-v0": "RESEARCHGYM_MNIST_DIR",
    "researchgym/CIFAR10-v0": "RESEARCHGYM_CIFAR10_DIR",
}


@pytest.mark.parametrize("env_id", sorted(DATA))
def test_absent_data_is_a_clear_error_at_make(env_id, monkeypatch, tmp_path):
    monkeypatch.delenv(VARIABLES[env_id], raising=False)
    with pytest.raises(DataFilesNotFound) as err:
        gym.make(env_id, store=False)
    message = str(err.value)
    assert VARIABLES[env_id] in message and "data_dir=" in message
    expected = "train-images-idx3-ubyte[.gz]" if "MNIST" in env_id else "data_batch_1"
    assert expected in message
    with pytest.raises(DataFilesNotFound, match="missing"):
        gym.make(env_id, store=False, data_dir=tmp_path)


@pytest.mark.parametrize("env_id", sorted(DATA))
@pytest.mark.parametrize("interface", ["dict", "flat", "text"])
def test_gymnasium_check_env_with_generated_files(env_id, interface, tmp_path):
    env = gym.make(env_id, data_dir=DATA[env_id](tmp_path), interface=interface, **CHEAP)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # render_fps is not declared: there is no human rendering
        check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("env_id", sorted(DATA))
def test_stable_baselines3_check_env_with_generated_files(env_id, tmp_path):
    env = gym.make(env_id, data_dir=DATA[env_id](tmp_path), interface="flat", **CHEAP)
    sb3_check_env(env.unwrapped, warn=True)


@pytest.mark.parametrize("env_id", sorted(DATA))
def test_cnn_trains_on_the_files(env_id, tmp_path):
    env = gym.make(env_id, data_dir=DATA[env_id](tmp_path), store=False)
    env.reset(seed=0)
    action = env.unwrapped.to_action(
        {"model.family": "cnn", "model.channels": 4, "train.epochs": 2}
    )
    _, reward, _, _, info = env.step(action)
    assert info["status"] == "ok", info["error"]
    assert info["task"] == ("mnist" if "MNIST" in env_id else "cifar10")
    assert 0.0 <= reward <= 1.0
    assert env.unwrapped.estimate(action)["params"] > 0


def test_data_directory_from_the_environment_and_never_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCHGYM_MNIST_DIR", str(mnist_dir(tmp_path / "mnist")))
    env = gym.make("researchgym/MNIST-v0", store=False, interface="text")
    obs, info = env.reset(seed=0)
    assert info["task"] == "mnist" and str(tmp_path) not in obs
    assert json.loads(obs)["task"] == "mnist"
    with pytest.raises(ValueError, match="give it as data_dir"):
        gym.make("researchgym/MNIST-v0", store=False, tasks=[f"mnist?data_dir={tmp_path}"])
    small = gym.make("researchgym/MNIST-v0", store=tmp_path / "store", tasks=["mnist?n_train=10"])
    small.reset(seed=0)
    assert small.unwrapped.task_ref == TaskRef("mnist?n_train=10", data_dir=tmp_path / "mnist")
    assert small.unwrapped.estimate({})["train_examples"] == 10 * 10
    small.step(small.unwrapped.to_action({"model.width": 16, "train.epochs": 1}))
    with open_store(tmp_path / "store") as store:
        (row,) = store.sql("SELECT * FROM steps").to_pylist()
    assert row["task"] == "mnist?n_train=10" and row["status"] == "ok"
    assert str(tmp_path) not in json.dumps(row, default=str)
