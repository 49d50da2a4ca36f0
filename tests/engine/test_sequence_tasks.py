"""Generated sequence tasks: seeded fixed splits, correct targets, held-out sequences."""

import numpy as np
import pytest
import torch

from researchgym.engine import load_task_data, parse_task, task_name
from researchgym.engine.data import IGNORE
from researchgym.engine.datasets import check_task
from researchgym.engine.sequence_tasks import SEQUENCE_TASKS, generate_splits

SMALL = {"n_train": 300, "n_val": 60, "n_test": 60}


@pytest.mark.parametrize("name", sorted(SEQUENCE_TASKS))
def test_splits_are_deterministic_well_formed_and_held_out(name):
    a, b = generate_splits(name, **SMALL), generate_splits(name, **SMALL)
    for field in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert len(a.x_train) == 300 and len(a.x_val) == 60 and len(a.x_test) == 60
    for x, y in ((a.x_train, a.y_train), (a.x_val, a.y_val), (a.x_test, a.y_test)):
        assert x.shape == y.shape and x.dtype == y.dtype == np.int64
        assert 0 <= x.min() and x.max() < a.n_classes
        scored = y != IGNORE
        assert scored.any(axis=1).all()  # every sequence has something to predict
        assert 0 <= y[scored].min() and y[scored].max() < a.n_classes
    train = {row.tobytes() for row in a.x_train}
    held_out = [row.tobytes() for row in np.concatenate([a.x_val, a.x_test])]
    assert not train & set(held_out)
    assert len(set(held_out)) == len(held_out)
    assert 0 < a.chance < 1 and a.description


def test_splits_depend_on_the_parameters():
    a = generate_splits("mqar", **SMALL)
    b = generate_splits("mqar", n_pairs=4, n_queries=4, **SMALL)
    assert a.x_train.shape[1] == 18 and b.x_train.shape[1] == 12


def test_mqar_targets_are_the_values_of_the_queried_keys():
    s = generate_splits("mqar", n_pairs=5, n_queries=3, vocab=20, **SMALL)
    for x, y in zip(s.x_val, s.y_val):
        pairs = dict(zip(x[0:10:2], x[1:10:2]))
        assert len(pairs) == 5 and all(k < 10 <= v < 20 for k, v in pairs.items())
        assert (y[:10] == IGNORE).all()
        assert [pairs[k] for k in x[10:]] == list(y[10:])


@pytest.mark.parametrize("name", ["copy", "reverse"])
def test_copy_and_reverse_targets(name):
    s = generate_splits(name, length=5, vocab=7, **SMALL)
    for x, y in zip(s.x_test, s.y_test):
        source = x[:5]
        expected = source[::-1] if name == "reverse" else source
        assert x[5] == 0 and (y[:5] == IGNORE).all()
        assert list(y[5:]) == list(expected)
        assert list(x[6:]) == list(expected[:-1])  # teacher forcing


def test_running_sum_and_parity_targets():
    s = generate_splits("modsum", length=6, modulus=7, **SMALL)
    np.testing.assert_array_equal(s.y_val, np.cumsum(s.x_val, axis=1) % 7)
    p = generate_splits("parity", length=9, **SMALL)
    np.testing.assert_array_equal(p.y_val, np.cumsum(p.x_val, axis=1) % 2)


def test_bracket_targets_follow_a_stack():
    s = generate_splits("brackets", length=10, **SMALL)
    partner = {0: 1, 2: 3}  # "(" -> ")", "[" -> "]"
    for x, y in zip(s.x_train, s.y_train):
        stack = []
        for token, target in zip(x, y):
            if token in partner:
                stack.append(partner[token])
                assert target == IGNORE
            else:
                assert stack.pop() == token  # balanced and properly nested
                assert target == (stack[-1] if stack else 4)
        assert not stack


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ("mqar?n_pairz=3", "no parameter 'n_pairz'"),
        ("mqar?n_pairs=abc", "is not an integer"),
        ("mqar?n_pairs=0", "outside"),
        ("mqar?n_pairs=20&vocab=16", "raise vocab to at least 40"),
        ("mqar?n_queries=9&n_pairs=4", "exceeds n_pairs"),
        ("brackets?length=7", "must be even"),
        ("mqar?n_pairs", "key=value"),
        ("mqr", "unknown dataset 'mqr'"),
        ("digits?n_train=3", "parameters: none"),
    ],
)
def test_bad_task_parameters_are_clear_errors(task, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        check_task(task)


def test_too_small_a_task_space_is_a_clear_error():
    with pytest.raises(ValueError, match="too few distinct sequences"):
        generate_splits("parity", length=3, n_train=10, n_val=20, n_test=20)


def test_task_names_round_trip_and_load_as_token_tensors():
    name = task_name("copy", length=4, vocab=5, n_train=40, n_val=10, n_test=10)
    spec, params = parse_task(name)
    assert spec.kind == "sequence" and params == {
        "length": "4",
        "vocab": "5",
        "n_train": "40",
        "n_val": "10",
        "n_test": "10",
    }
    data = load_task_data(name)
    assert data.kind == "sequence" and data.input_shape == (8,) and data.n_classes == 6
    assert data.x_train.dtype == data.y_train.dtype == torch.long and data.y_train.shape == (40, 8)
    assert data.chance == pytest.approx(0.2)
    assert data.features()["n_features"] == 8.0 and data.features()["is_image"] == 0.0
    assert "copy 4 symbols" in data.description
