"""One training loop for token-sequence and language tasks: masked targets, their metrics."""

import math

import pytest
import torch

from researchgym.engine import train
from researchgym.engine.data import IGNORE, TaskData
from researchgym.engine.training import _evaluate
from researchgym.envs.suites import get_suite

SEQ = get_suite("seqarch").make_schema()
LM = get_suite("charlm").make_schema()
TINY = {"arch": {"width": 16, "layers": [{"mixer": "conv", "ffn": "none"}]}, "train.epochs": 1}


def _data(kind, x, y, n_classes):
    return TaskData("t", kind, n_classes, (x.shape[1],), x, y, x, y, x, y)


class _Fixed(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits


def test_unscored_positions_do_not_count():
    y = torch.tensor([[IGNORE, 1, IGNORE], [IGNORE, 0, 2]])
    logits = torch.full((2, 3, 3), -5.0)
    logits[0, 1, 1] = logits[1, 1, 0] = 5.0  # right where scored
    logits[1, 2, 1] = 5.0  # wrong where scored
    logits[0, 0, 2] = logits[0, 2, 0] = 5.0  # anything where not scored
    metrics = _evaluate(_Fixed(logits), _data("sequence", y.clamp_min(0), y, 3), y.clamp_min(0), y)
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    assert metrics["sequence_accuracy"] == pytest.approx(0.5)
    assert metrics["score"] == metrics["accuracy"]
    expected = torch.nn.functional.cross_entropy(logits[y != IGNORE], y[y != IGNORE])
    assert metrics["loss"] == pytest.approx(float(expected))


def test_language_score_is_one_minus_bits_per_character_over_eight():
    y = torch.tensor([[1, 2, 0]])
    logits = torch.zeros(1, 3, 4)  # uniform over 4 symbols: 2 bits per character
    metrics = _evaluate(_Fixed(logits), _data("language", y, y, 4), y, y)
    assert metrics["bpc"] == pytest.approx(2.0)
    assert metrics["loss"] == pytest.approx(2.0 * math.log(2))
    assert metrics["score"] == pytest.approx(0.75)


def test_sequence_task_trains_deterministically():
    task = "reverse?length=4&vocab=6&n_train=64&n_val=16&n_test=16"
    m = SEQ.validate(TINY)
    a, b = train(m, task=task, seed=1, device="cpu"), train(m, task=task, seed=1, device="cpu")
    assert a.ok and a.val_metrics == b.val_metrics and a.test_metrics == b.test_metrics
    assert set(a.val_metrics) == {"loss", "accuracy", "sequence_accuracy", "score"}
    assert a.samples == 64 and a.n_params > 0


def test_language_task_reports_bits_per_character():
    m = LM.validate(TINY)
    r = train(m, task="pysource?context=16&n_chars=10000", seed=0, device="cpu")
    assert r.ok and set(r.val_metrics) == {"loss", "bpc", "accuracy", "score"}
    assert r.val_metrics["bpc"] == pytest.approx(r.val_metrics["loss"] / math.log(2), rel=1e-5)
    assert r.val_metrics["score"] == pytest.approx(
        max(-1.0, 1 - r.val_metrics["bpc"] / 8), rel=1e-5
    )
    assert r.val_metrics["bpc"] < math.log2(97)  # better than uniform after one epoch
