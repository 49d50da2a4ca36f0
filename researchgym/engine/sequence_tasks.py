"""Generated sequence tasks: seeded, fixed splits, nothing downloaded.

Each task makes token sequences ``x`` of shape ``(n, seq_len)`` and targets ``y``
of the same shape, with :data:`IGNORE` (-100, PyTorch's ``ignore_index``) at
positions that are not scored. A causal model reads ``x`` and predicts ``y`` at
every position; loss and accuracy count target positions only.

Tasks and their difficulty parameters (set in a task name as a URL query,
e.g. ``"mqar?n_pairs=16&vocab=128"``):

* ``mqar``: multi-query associative recall. ``n_pairs`` key-value pairs, then
  ``n_queries`` of the keys again; at each query the target is its value.
  Keys come from the first half of ``vocab``, values from the second.
* ``copy`` / ``reverse``: ``length`` random symbols (of ``vocab``), a separator,
  then the symbols again (reversed for ``reverse``), teacher-forced.
* ``modsum``: ``length`` numbers modulo ``modulus``; the target at each
  position is the running sum modulo ``modulus``.
* ``parity``: ``length`` bits; the target at each position is the running parity.
* ``brackets``: bracket matching. A balanced, properly nested word of
  ``length`` brackets of two kinds; after each closing bracket the target is
  the bracket that must close next (``)`` or ``]``), or "none" at depth 0: the
  model has to keep a stack.

Splits depend only on the task name and its parameters, never on a training
seed, and validation and test sequences never occur in the training split.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from researchgym.engine.splits import TaskSplits, int_params
from researchgym.engine.tasks import TaskError
from researchgym.errors import shorten

__all__ = ["IGNORE", "SEQUENCE_TASKS", "SequenceTask", "generate_splits", "validate_params"]

IGNORE = -100
SPLIT_SEED = 20240601


@dataclass(frozen=True)
class SequenceTask:
    """A generator of sequence examples with named integer difficulty parameters.

    Attributes:
        name: task name.
        description: one line; ``{param}`` fields are filled with the parameters.
        defaults: difficulty parameters and their defaults (the cheap configuration).
        limits: ``param -> (low, high)`` allowed values.
        generate: ``(rng, n, **params) -> (x, y)``.
        vocab: ``params -> vocabulary size``.
        chance: ``params -> chance accuracy``.
        check: ``params -> None``; raises ``TaskError`` for inconsistent parameters.
    """

    name: str
    description: str
    defaults: dict[str, int]
    limits: dict[str, tuple[int, int]]
    generate: Callable[..., tuple[np.ndarray, np.ndarray]]
    vocab: Callable[[Mapping[str, int]], int]
    chance: Callable[[Mapping[str, int]], float]
    check: Callable[[Mapping[str, int]], None] = field(default=lambda p: None)


SPLIT_DEFAULTS = {"n_train": 2000, "n_val": 500, "n_test": 500}
SPLIT_LIMITS = {"n_train": (2, 1_000_000), "n_val": (1, 100_000), "n_test": (1, 100_000)}


# --- generators ---------------------------------------------------------------------------
def _mqar(rng: np.random.Generator, n: int, n_pairs: int, n_queries: int, vocab: int):
    half = vocab // 2
    keys = np.argsort(rng.random((n, half)), axis=1)[:, :n_pairs]
    values = rng.integers(half, vocab, size=(n, n_pairs))
    asked = np.argsort(rng.random((n, n_pairs)), axis=1)[:, :n_queries]
    context = np.empty((n, 2 * n_pairs), dtype=np.int64)
    context[:, 0::2], context[:, 1::2] = keys, values
    queries = np.take_along_axis(keys, asked, axis=1)
    answers = np.take_along_axis(values, asked, axis=1)
    x = np.concatenate([context, queries], axis=1)
    y = np.full_like(x, IGNORE)
    y[:, 2 * n_pairs :] = answers
    return x, y


def _check_mqar(p: Mapping[str, int]) -> None:
    if p["n_pairs"] > p["vocab"] // 2:
        raise TaskError(
            f"mqar: n_pairs={p['n_pairs']} needs as many distinct keys, but vocab={p['vocab']} "
            f"has {p['vocab'] // 2}; raise vocab to at least {2 * p['n_pairs']}"
        )
    if p["n_queries"] > p["n_pairs"]:
        raise TaskError(
            f"mqar: n_queries={p['n_queries']} exceeds n_pairs={p['n_pairs']}; "
            "each query asks a different key"
        )


def _copy(rng: np.random.Generator, n: int, length: int, vocab: int, reverse: bool = False):
    symbols = rng.integers(1, vocab + 1, size=(n, length))  # 0 is the separator
    answer = symbols[:, ::-1] if reverse else symbols
    x = np.concatenate([symbols, np.zeros((n, 1), np.int64), answer[:, :-1]], axis=1)
    y = np.full_like(x, IGNORE)
    y[:, length:] = answer
    return x, y


def _reverse(rng: np.random.Generator, n: int, length: int, vocab: int):
    return _copy(rng, n, length, vocab, reverse=True)


def _modsum(rng: np.random.Generator, n: int, length: int, modulus: int):
    x = rng.integers(0, modulus, size=(n, length))
    return x, np.cumsum(x, axis=1) % modulus


def _parity(rng: np.random.Generator, n: int, length: int):
    x = rng.integers(0, 2, size=(n, length))
    return x, np.cumsum(x, axis=1) % 2


_OPEN, _CLOSE, _EMPTY = (0, 2), (1, 3), 4  # "(" ")" "[" "]", and "nothing to close"


def _brackets(rng: np.random.Generator, n: int, length: int):
    x = np.empty((n, length), dtype=np.int64)
    y = np.full((n, length), IGNORE, dtype=np.int64)
    for row in range(n):
        stack: list[int] = []
        for i in range(length):
            if stack and (len(stack) == length - i or rng.random() < 0.5):
                x[row, i] = _CLOSE[stack.pop()]
                # Scored only after a closing bracket: after an opening one the answer is
                # its own partner, readable from the current token alone.
                y[row, i] = _CLOSE[stack[-1]] if stack else _EMPTY
            else:
                kind = int(rng.integers(2))
                stack.append(kind)
                x[row, i] = _OPEN[kind]
    return x, y


def _check_even(p: Mapping[str, int]) -> None:
    if p["length"] % 2:
        raise TaskError(
            f"brackets: length={p['length']} must be even (a balanced word pairs every bracket)"
        )


SEQUENCE_TASKS: dict[str, SequenceTask] = {
    task.name: task
    for task in [
        SequenceTask(
            "mqar",
            "multi-query associative recall: {n_pairs} key-value pairs, then {n_queries} keys "
            "to recall (vocab {vocab})",
            {"n_pairs": 6, "n_queries": 6, "vocab": 32},
            {"n_pairs": (1, 256), "n_queries": (1, 256), "vocab": (4, 8192)},
            _mqar,
            lambda p: p["vocab"],
            lambda p: 1.0 / (p["vocab"] - p["vocab"] // 2),
            _check_mqar,
        ),
        SequenceTask(
            "copy",
            "copy {length} symbols (of {vocab}) after a separator",
            {"length": 8, "vocab": 16},
            {"length": (1, 1024), "vocab": (2, 8192)},
            _copy,
            lambda p: p["vocab"] + 1,
            lambda p: 1.0 / p["vocab"],
        ),
        SequenceTask(
            "reverse",
            "reverse {length} symbols (of {vocab}) after a separator",
            {"length": 8, "vocab": 16},
            {"length": (1, 1024), "vocab": (2, 8192)},
            _reverse,
            lambda p: p["vocab"] + 1,
            lambda p: 1.0 / p["vocab"],
        ),
        SequenceTask(
            "modsum",
            "running sum of {length} numbers modulo {modulus}",
            {"length": 8, "modulus": 5},
            {"length": (1, 1024), "modulus": (2, 1024)},
            _modsum,
            lambda p: p["modulus"],
            lambda p: 1.0 / p["modulus"],
        ),
        SequenceTask(
            "parity",
            "running parity of {length} bits",
            {"length": 12},
            {"length": (1, 1024)},
            _parity,
            lambda p: 2,
            lambda p: 0.5,
        ),
        SequenceTask(
            "brackets",
            "bracket matching: {length} balanced brackets of two kinds; after each closing "
            "one, name the bracket that must close next (or none)",
            {"length": 16},
            {"length": (2, 1024)},
            _brackets,
            lambda p: 5,
            lambda p: 1.0 / 3.0,
            _check_even,
        ),
    ]
}


# --- splits -------------------------------------------------------------------------------
def _parse(task: SequenceTask, params: Mapping[str, Any]) -> dict[str, int]:
    out = int_params(
        task.name, params, {**task.defaults, **SPLIT_DEFAULTS}, {**task.limits, **SPLIT_LIMITS}
    )
    task.check(out)
    return out


def _rows(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.dtype((np.void, a.dtype.itemsize * a.shape[1]))).ravel()


def _fresh(task, rng, n, params, seen: set[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """``n`` examples whose inputs are not in ``seen`` (which is then updated)."""
    xs, ys, have = [], [], 0
    for _ in range(50):
        x, y = task.generate(rng, max(n - have, 16) * 2, **params)
        keep = []
        for i, row in enumerate(_rows(x.astype(np.int64))):
            key = row.tobytes()
            if key not in seen:
                seen.add(key)
                keep.append(i)
                if have + len(keep) == n:
                    break
        xs.append(x[keep])
        ys.append(y[keep])
        have += len(keep)
        if have == n:
            return np.concatenate(xs).astype(np.int64), np.concatenate(ys).astype(np.int64)
    raise TaskError(
        f"{task.name}: could not draw {n} distinct held-out sequences with {params}; the task has "
        "too few distinct sequences: make it longer or use fewer examples (n_train, n_val, n_test)"
    )


def validate_params(name: str, **params: Any) -> dict[str, int]:
    """Every parameter of a task (defaults filled), as integers; raises ``TaskError``."""
    if name not in SEQUENCE_TASKS:
        raise TaskError(
            f"unknown sequence task {shorten(name)}; choose one of {sorted(SEQUENCE_TASKS)}"
        )
    return _parse(SEQUENCE_TASKS[name], params)


def generate_splits(name: str, **params: Any) -> TaskSplits:
    """Generate a task's train/val/test splits (deterministic in the name and parameters).

    Args:
        name: a key of :data:`SEQUENCE_TASKS`.
        params: difficulty parameters and split sizes (``n_train``, ``n_val``,
            ``n_test``), as integers or strings of integers.

    Raises:
        TaskError: an unknown task or parameter, or a value out of range.
    """
    p = validate_params(name, **params)
    task = SEQUENCE_TASKS[name]
    sizes = {k: p.pop(k) for k in SPLIT_DEFAULTS}
    key = f"{name}?" + "&".join(f"{k}={v}" for k, v in sorted(p.items()))
    rng = np.random.default_rng([SPLIT_SEED, zlib.crc32(key.encode())])
    # Training rows may repeat (small tasks); held-out rows never repeat a training row.
    x_train, y_train = task.generate(rng, sizes["n_train"], **p)
    seen = {row.tobytes() for row in _rows(x_train.astype(np.int64))}
    x_val, y_val = _fresh(task, rng, sizes["n_val"], p, seen)
    x_test, y_test = _fresh(task, rng, sizes["n_test"], p, seen)
    return TaskSplits(
        x_train=x_train.astype(np.int64),
        y_train=y_train.astype(np.int64),
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        n_classes=task.vocab(p),
        chance=task.chance(p),
        description=task.description.format(**p),
    )
