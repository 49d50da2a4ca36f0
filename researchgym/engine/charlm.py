"""Character-level language modelling on text that ships with Python.

Two corpora, read from the running interpreter's standard library (nothing is
downloaded):

* ``pydocs``: the documentation topics behind ``help()`` (``pydoc_data.topics``),
  English prose with code samples;
* ``pysource``: the source code of a fixed list of standard-library modules.

The text depends on the Python version, so results compare within one version.
Characters map to a fixed vocabulary (newline, printable ASCII, and one symbol
for everything else). The text is cut into blocks that a fixed seed assigns to
train (90%), validation (5%) and test (5%); each block is cut into windows of
``context + 1`` characters: the model reads ``context`` characters and predicts
each next one.

Metric: bits per character, ``bpc = loss / ln 2`` (loss in nats per character).
The score is ``clip(1 - bpc / 8, -1, 1)``: higher is better, 0 at 8 bits per
character (a byte), about 0.18 for uniform guessing over the vocabulary.
"""

from __future__ import annotations

import math
import sys
import sysconfig
from pathlib import Path

import numpy as np

from researchgym.engine.file_datasets import DataFilesNotFound
from researchgym.engine.splits import TaskSplits, int_params
from researchgym.engine.tasks import TaskError
from researchgym.errors import shorten

__all__ = [
    "CORPORA",
    "VOCAB",
    "bpc_score",
    "char_splits",
    "corpus_text",
    "encode_text",
    "validate_params",
]

SPLIT_SEED = 20240601
BLOCK_CHARS = 1024
VAL_FRACTION = TEST_FRACTION = 0.05
DEFAULTS = {"context": 64, "n_chars": 120_000}
LIMITS = {"context": (8, 4096), "n_chars": (10_000, 50_000_000)}

# Index 0 stands for any character outside the vocabulary.
VOCAB = "\0\n" + "".join(chr(c) for c in range(32, 127))
_INDEX = np.zeros(128, dtype=np.int64)
for _i, _c in enumerate(VOCAB):
    _INDEX[ord(_c)] = _i

_SOURCE_MODULES = (
    "argparse.py",
    "textwrap.py",
    "dataclasses.py",
    "functools.py",
    "heapq.py",
    "bisect.py",
    "string.py",
    "difflib.py",
    "fractions.py",
    "statistics.py",
    "random.py",
    "calendar.py",
    "csv.py",
    "shlex.py",
    "fnmatch.py",
    "pprint.py",
    "json/decoder.py",
    "json/encoder.py",
    "collections/__init__.py",
    "enum.py",
    "inspect.py",
    "typing.py",
    "pathlib.py",
    "ast.py",
)


def _pydocs() -> str:
    try:
        from pydoc_data.topics import topics
    except ImportError:
        raise DataFilesNotFound(
            "the 'pydocs' corpus needs pydoc_data.topics, which this Python installation lacks "
            "(some distributions strip it); use the 'pysource' corpus instead"
        ) from None
    return "\n\n".join(topics[key] for key in sorted(topics))


def _pysource() -> str:
    root = Path(sysconfig.get_paths()["stdlib"])
    texts = []
    for name in _SOURCE_MODULES:
        path = root / name
        if not path.exists():
            raise DataFilesNotFound(
                f"the 'pysource' corpus reads {name} from the standard library at {root}, "
                "which is not there; use the 'pydocs' corpus instead"
            )
        texts.append(path.read_text(encoding="utf-8"))
    return "\n\n".join(texts)


CORPORA = {
    "pydocs": (_pydocs, "Python's bundled documentation topics"),
    "pysource": (_pysource, "Python standard-library source code"),
}


def corpus_text(corpus: str) -> str:
    """The full text of a corpus."""
    if corpus not in CORPORA:
        raise TaskError(f"unknown corpus {shorten(corpus)}; choose one of {sorted(CORPORA)}")
    return CORPORA[corpus][0]()


def encode_text(text: str) -> np.ndarray:
    """Character ids in ``[0, len(VOCAB))``; characters outside the vocabulary map to 0."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    return np.where(codes < 128, _INDEX[np.minimum(codes, 127)], 0)


def _windows(blocks: list[np.ndarray], length: int) -> np.ndarray:
    rows = [b[: len(b) // length * length].reshape(-1, length) for b in blocks]
    return np.concatenate(rows) if rows else np.zeros((0, length), np.int64)


def validate_params(corpus: str, **params) -> dict[str, int]:
    """Every parameter of a corpus task (defaults filled), as integers; raises ``TaskError``."""
    if corpus not in CORPORA:
        raise TaskError(f"unknown corpus {shorten(corpus)}; choose one of {sorted(CORPORA)}")
    return int_params(corpus, params, DEFAULTS, LIMITS)


def char_splits(corpus: str, **params) -> TaskSplits:
    """Fixed train/val/test windows of a corpus.

    Args:
        corpus: a key of :data:`CORPORA`.
        params: ``context`` (characters a model reads, default 64) and
            ``n_chars`` (characters of the corpus used, from its start, default 120000).
    """
    p = validate_params(corpus, **params)
    ids = encode_text(corpus_text(corpus)[: p["n_chars"]])
    length = p["context"] + 1
    block = max(1, BLOCK_CHARS // length) * length
    blocks = [ids[i : i + block] for i in range(0, len(ids) - length + 1, block)]
    order = np.random.default_rng(SPLIT_SEED).permutation(len(blocks))
    n_val = max(1, round(VAL_FRACTION * len(blocks)))
    n_test = max(1, round(TEST_FRACTION * len(blocks)))
    if len(blocks) < n_val + n_test + 1:
        raise TaskError(
            f"{corpus}: n_chars={p['n_chars']} gives {len(blocks)} blocks of {block} characters, "
            "too few for three splits; use more characters or a shorter context"
        )

    def pick(indices: np.ndarray) -> np.ndarray:
        return _windows([blocks[i] for i in sorted(indices)], length)

    val, test = pick(order[:n_val]), pick(order[n_val : n_val + n_test])
    train = pick(order[n_val + n_test :])
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return TaskSplits(
        x_train=train[:, :-1],
        y_train=train[:, 1:],
        x_val=val[:, :-1],
        y_val=val[:, 1:],
        x_test=test[:, :-1],
        y_test=test[:, 1:],
        n_classes=len(VOCAB),
        chance=bpc_score(math.log2(len(VOCAB))),
        description=(
            f"character language model of {CORPORA[corpus][1]} (Python {version}), "
            f"{p['n_chars']} characters, context {p['context']}; score = 1 - bits per character / 8"
        ),
    )


def bpc_score(bpc: float) -> float:
    """The score of a bits-per-character value: ``clip(1 - bpc / 8, -1, 1)``."""
    return float(min(1.0, max(-1.0, 1.0 - bpc / 8.0)))
