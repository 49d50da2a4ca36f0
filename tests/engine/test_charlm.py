"""Character language modelling on text that ships with Python: fixed splits, bits per character."""

import math

import numpy as np
import pytest

from researchgym.engine import load_task_data
from researchgym.engine.charlm import CORPORA, VOCAB, bpc_score, char_splits, encode_text


def test_encoding_uses_a_fixed_vocabulary():
    ids = encode_text("a\n~é\t")
    assert list(ids) == [VOCAB.index("a"), VOCAB.index("\n"), VOCAB.index("~"), 0, 0]
    assert len(VOCAB) == 97


@pytest.mark.parametrize("corpus", sorted(CORPORA))
def test_splits_are_fixed_windows_of_next_characters(corpus):
    a = char_splits(corpus, context=32, n_chars=20_000)
    b = char_splits(corpus, context=32, n_chars=20_000)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    for x, y in ((a.x_train, a.y_train), (a.x_val, a.y_val), (a.x_test, a.y_test)):
        assert x.shape == y.shape and x.shape[1] == 32 and len(x) > 0
        np.testing.assert_array_equal(x[:, 1:], y[:, :-1])  # targets are the next characters
        assert 0 <= x.min() and max(x.max(), y.max()) < len(VOCAB)
    assert len(a.x_val) < len(a.x_train) / 5 and len(a.x_test) < len(a.x_train) / 5
    train = {row.tobytes() for row in a.x_train}
    assert not train & {row.tobytes() for row in a.x_val}
    assert a.n_classes == len(VOCAB)
    assert a.chance == pytest.approx(1 - math.log2(len(VOCAB)) / 8)


def test_task_parameters_are_checked():
    with pytest.raises(ValueError, match="context=2 is outside"):
        load_task_data("pydocs?context=2")
    with pytest.raises(ValueError, match="no parameter 'lenght'"):
        load_task_data("pydocs?lenght=5")


def test_bpc_score_is_higher_is_better_and_bounded():
    assert bpc_score(0.0) == 1.0
    assert bpc_score(8.0) == 0.0
    assert bpc_score(2.0) == 0.75
    assert bpc_score(100.0) == -1.0
