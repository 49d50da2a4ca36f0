"""Loaders for standard image-dataset files read from a directory the user gives.

Nothing is downloaded. The directory is configuration (an env's ``data_dir=``
argument or an environment variable), never part of an action.

* **MNIST**: the four IDX files ``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte`` (each may be gzipped, ending in ``.gz``), in
  ``$RESEARCHGYM_MNIST_DIR``. IDX is parsed with ``struct`` and numpy.
* **CIFAR-10**: the "python version" batches ``data_batch_1`` ... ``data_batch_5``
  and ``test_batch`` (in the directory or its ``cifar-10-batches-py``
  subdirectory), in ``$RESEARCHGYM_CIFAR10_DIR``. These files are Python
  pickles: that is the standard CIFAR-10 format. They are read with an
  unpickler that only resolves the numpy array constructors such a file
  needs, so a file that names any other global is refused rather than run.

Images become float32 in ``[0, 1]`` with shape ``(n, channels, height, width)``.
The official test split is the test split; a fixed seeded 10% of the official
training split is the validation split.

:func:`write_idx` and :func:`write_cifar_batch` write the same formats, for
small fixtures and subsets.
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from researchgym.engine.splits import TaskSplits
from researchgym.engine.tasks import TaskError
from researchgym.errors import ResearchGymError

__all__ = [
    "FILE_DATASETS",
    "DataFilesNotFound",
    "FileDataset",
    "check_files",
    "load_cifar10",
    "load_file_dataset",
    "load_mnist",
    "read_cifar_batch",
    "read_idx",
    "resolve_data_dir",
    "write_cifar_batch",
    "write_idx",
]

SPLIT_SEED = 20240601
VAL_FRACTION = 0.1


class DataFilesNotFound(ResearchGymError, FileNotFoundError):
    """A file-based dataset's files are not where the configuration points."""


@dataclass(frozen=True)
class FileDataset:
    """A dataset read from standard files in a user-given directory."""

    name: str
    title: str
    env_var: str
    files: tuple[str, ...]  # as named in messages, e.g. "train-images-idx3-ubyte[.gz]"
    env_id: str
    example_dir: str


MNIST = FileDataset(
    "mnist",
    "MNIST",
    "RESEARCHGYM_MNIST_DIR",
    (
        "train-images-idx3-ubyte[.gz]",
        "train-labels-idx1-ubyte[.gz]",
        "t10k-images-idx3-ubyte[.gz]",
        "t10k-labels-idx1-ubyte[.gz]",
    ),
    "researchgym/MNIST-v0",
    "/path/to/mnist",
)
CIFAR10 = FileDataset(
    "cifar10",
    "CIFAR-10",
    "RESEARCHGYM_CIFAR10_DIR",
    tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",),
    "researchgym/CIFAR10-v0",
    "/path/to/cifar-10-batches-py",
)
FILE_DATASETS = {d.name: d for d in (MNIST, CIFAR10)}


def _not_found(dataset: FileDataset, data_dir: str | None, missing: list[str]) -> DataFilesNotFound:
    how = (
        f'pass gym.make("{dataset.env_id}", data_dir="{dataset.example_dir}") or set '
        f"{dataset.env_var}={dataset.example_dir}"
    )
    files = ", ".join(dataset.files)
    if data_dir is None:
        return DataFilesNotFound(
            f"{dataset.title} is read from files ({files}) in a directory, and none was "
            f"given: {how}"
        )
    return DataFilesNotFound(
        f"{dataset.title} files not found in {data_dir!r}: missing {', '.join(missing)}; {how}"
    )


def resolve_data_dir(dataset: str, data_dir: str | os.PathLike | None = None) -> str | None:
    """The directory to read ``dataset`` from: ``data_dir``, else its environment variable."""
    if data_dir is not None:
        return os.fspath(Path(data_dir).expanduser())
    value = os.environ.get(FILE_DATASETS[dataset].env_var)
    return os.fspath(Path(value).expanduser()) if value else None


# --- MNIST (IDX) -----------------------------------------------------------------------------
_IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzipped when its name ends in ``.gz``) into a numpy array.

    Raises:
        TaskError: the file is not a well-formed IDX file.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise TaskError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()!r})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise TaskError(f"{path}: IDX header is truncated")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_TYPES[raw[2]]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise TaskError(
            f"{path}: IDX header says shape {shape} ({expected} bytes of data) but the file has "
            f"{len(raw) - header} bytes after the header"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an unsigned-byte IDX file (gzipped when ``path`` ends in ``.gz``)."""
    array = np.asarray(array)
    if array.ndim < 1 or (array.size and not (array.min() >= 0 and array.max() <= 255)):
        raise TaskError(
            "IDX unsigned bytes need values in [0, 255] and at least one dimension, "
            f"got shape {array.shape}"
        )
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def _idx_path(root: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (root / name).is_file():
            return root / name
    return None


def _mnist_paths(data_dir: str | None) -> dict[str, Path]:
    stems = [f.removesuffix("[.gz]") for f in MNIST.files]
    if data_dir is None:
        raise _not_found(MNIST, None, [])
    root = Path(data_dir)
    found = {stem: path for stem in stems if (path := _idx_path(root, stem)) is not None}
    missing = [f"{stem}[.gz]" for stem in stems if stem not in found]
    if missing:
        raise _not_found(MNIST, data_dir, missing)
    return found


def load_mnist(data_dir: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)``: images ``(n, 1, 28, 28)`` float32 in [0, 1]."""
    paths = _mnist_paths(data_dir)
    out: list[np.ndarray] = []
    for split in ("train", "t10k"):
        images = read_idx(paths[f"{split}-images-idx3-ubyte"])
        labels = read_idx(paths[f"{split}-labels-idx1-ubyte"])
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise TaskError(
                f"MNIST {split} files disagree: images of shape {images.shape}, labels of shape "
                f"{labels.shape}; expected (n, rows, cols) images and n labels"
            )
        out += [images[:, None].astype(np.float32) / 255.0, labels.astype(np.int64)]
    x_train, y_train, x_test, y_test = out
    return x_train, y_train, x_test, y_test


# --- CIFAR-10 (python pickles) --------------------------------------------------------------------
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Resolves only numpy's array constructors; any other global is refused."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: a CIFAR-10 batch holds only a dict of "
                "numpy arrays, lists and bytes"
            )
        return super().find_class(module, name)


def read_cifar_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python batch: images ``(n, 3, 32, 32)`` uint8 and labels ``(n,)``.

    Raises:
        TaskError: the file is not a CIFAR-10 batch.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError) as exc:
        raise TaskError(f"{path} is not a CIFAR-10 python batch: {exc}") from None
    if not isinstance(batch, dict):  # a malformed file: bad input, not a caller's type error
        raise TaskError(
            f"{path} is not a CIFAR-10 python batch (got {type(batch).__name__}, expected a dict)"
        )
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise TaskError(f"{path}: a CIFAR-10 batch needs b'data' and b'labels' entries")
    data = np.asarray(data)
    labels = np.asarray(labels, dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise TaskError(
            f"{path}: data has shape {data.shape} and labels {labels.shape}; "
            "expected (n, 3072) and (n,)"
        )
    return data.astype(np.uint8).reshape(-1, 3, 32, 32), labels


def write_cifar_batch(
    path: str | os.PathLike, images: np.ndarray, labels, protocol: int = 2
) -> None:
    """Write a CIFAR-10 python batch: images ``(n, 3, 32, 32)`` uint8, labels ``(n,)``."""
    images = np.asarray(images, dtype=np.uint8)
    if images.shape[1:] != (3, 32, 32) or len(images) != len(labels):
        raise TaskError(
            f"expected images (n, 3, 32, 32) and n labels, got {images.shape} and {len(labels)}"
        )
    batch = {
        b"batch_label": Path(path).name.encode(),
        b"labels": [int(label) for label in labels],
        b"data": images.reshape(len(images), -1),
        b"filenames": [f"{i}.png".encode() for i in range(len(images))],
    }
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=protocol)


def _cifar_root(data_dir: str | None) -> Path:
    if data_dir is None:
        raise _not_found(CIFAR10, None, [])
    for root in (Path(data_dir), Path(data_dir) / "cifar-10-batches-py"):
        if all((root / name).is_file() for name in CIFAR10.files):
            return root
    missing = [name for name in CIFAR10.files if not (Path(data_dir) / name).is_file()]
    raise _not_found(CIFAR10, data_dir, missing)


def load_cifar10(data_dir: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)``: images ``(n, 3, 32, 32)`` float32 in [0, 1]."""
    root = _cifar_root(data_dir)
    train = [read_cifar_batch(root / f"data_batch_{i}") for i in range(1, 6)]
    x_test, y_test = read_cifar_batch(root / "test_batch")
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return x_train.astype(np.float32) / 255.0, y_train, x_test.astype(np.float32) / 255.0, y_test


_LOADERS = {"mnist": load_mnist, "cifar10": load_cifar10}


def check_files(dataset: str, data_dir: str | None = None) -> str:
    """Raise :class:`DataFilesNotFound` unless the files are there; return the directory used."""
    resolved = resolve_data_dir(dataset, data_dir)
    if resolved is None:
        raise _not_found(FILE_DATASETS[dataset], None, [])
    (_mnist_paths if dataset == "mnist" else _cifar_root)(resolved)
    return resolved


def load_file_dataset(
    dataset: str, data_dir: str | None = None, n_train: int | str | None = None
) -> TaskSplits:
    """Train/val/test splits of a file dataset.

    Args:
        dataset: ``"mnist"`` or ``"cifar10"``.
        data_dir: the directory of the files; ``None`` reads the dataset's
            environment variable.
        n_train: keep only this many training images (after the validation split),
            for quick runs; ``None`` keeps all.
    """
    x, y, x_test, y_test = _LOADERS[dataset](resolve_data_dir(dataset, data_dir))
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    n_val = max(1, round(VAL_FRACTION * len(x)))
    if len(x) - n_val < 2:
        raise TaskError(f"{dataset}: {len(x)} training images are too few to split off validation")
    val, train = order[:n_val], order[n_val:]
    if n_train is not None:
        n_train = int(n_train)
        if n_train < 2:
            raise TaskError(f"{dataset}: n_train={n_train} must be at least 2")
        train = train[:n_train]
    for labels in (y, y_test):
        if labels.size and not 0 <= labels.min() <= labels.max() < 10:
            raise TaskError(
                f"{dataset}: labels must be classes 0 to 9, got {labels.min()} to {labels.max()}"
            )
    return TaskSplits(
        x_train=x[train],
        y_train=y[train],
        x_val=x[val],
        y_val=y[val],
        x_test=x_test,
        y_test=y_test,
        n_classes=10,
        chance=0.1,
        description=f"{FILE_DATASETS[dataset].title} image classification, 10 classes",
    )
