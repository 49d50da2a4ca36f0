"""Setting types: declarations, validation messages, flat codec and gymnasium spaces."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from researchgym.spaces import Bool, Categorical, Float, Int, SettingError

any_float = st.floats(allow_nan=True, allow_infinity=True)


# --- strategies: random declarations with a valid value ------------------------------
@st.composite
def float_with_value(draw):
    log = draw(st.booleans())
    if log:
        low = draw(st.floats(1e-6, 1e3))
        high = low * draw(st.floats(1.01, 1e6))
    else:
        low = draw(st.floats(-1e6, 1e6))
        high = low + draw(st.floats(1e-3, 1e6))
    setting = Float("x.value", low, low=low, high=high, log=log)
    return setting, draw(st.floats(low, high))


@st.composite
def int_with_value(draw):
    log = draw(st.booleans())
    low = draw(st.integers(1, 10_000) if log else st.integers(-(10**6), 10**6))
    high = low + draw(st.integers(1, 10**6))
    setting = Int("x.count", low, low=low, high=high, log=log)
    return setting, draw(st.integers(low, high))


choice_values = st.one_of(
    st.text(min_size=1, max_size=8),
    st.integers(-1000, 1000),
    st.floats(-1e3, 1e3, allow_nan=False),
    st.booleans(),
)


@st.composite
def categorical_with_value(draw):
    choices = draw(st.lists(choice_values, min_size=2, max_size=8))
    unique: list = []
    for c in choices:  # distinct under ==, as the declaration requires (1 == 1.0 == True)
        if all(c != u for u in unique):
            unique.append(c)
    if len(unique) < 2:
        unique = ["a", "b"]
    setting = Categorical("x.choice", unique[0], choices=tuple(unique))
    return setting, draw(st.sampled_from(unique))


@st.composite
def bool_with_value(draw):
    return Bool("x.flag", draw(st.booleans())), draw(st.booleans())


any_setting_with_value = st.one_of(
    float_with_value(), int_with_value(), categorical_with_value(), bool_with_value()
)


# --- round trips -------------------------------------------------------------------------
@given(float_with_value())
def test_float_encode_decode_round_trip(case):
    setting, value = case
    assert setting.validate(value) == value
    x = setting.encode(value)
    assert -1.0 - 1e-9 <= x <= 1.0 + 1e-9
    back = setting.decode(x)
    assert math.isclose(back, value, rel_tol=1e-6, abs_tol=1e-9 * (setting.high - setting.low))


@given(int_with_value())
def test_int_encode_decode_exact(case):
    setting, value = case
    x = setting.encode(value)
    assert -1.0 <= x <= 1.0
    back = setting.decode(x)
    assert back == value and type(back) is int


@given(categorical_with_value())
def test_categorical_encode_decode_exact(case):
    setting, value = case
    x = setting.encode(value)
    assert -1.0 < x < 1.0
    back = setting.decode(x)
    assert back == value and type(back) is type(value)


@given(bool_with_value())
def test_bool_encode_decode_exact(case):
    setting, value = case
    assert setting.decode(setting.encode(value)) is value


@given(any_setting_with_value, any_float)
def test_decode_of_any_number_is_valid(case, x):
    setting, _ = case
    value = setting.decode(x)
    assert setting.validate(value) == value
    if math.isfinite(x) and abs(x) > 1:  # outside the box: clipped to the nearest end
        assert value == setting.decode(math.copysign(1.0, x))


@given(any_setting_with_value)
def test_space_round_trip(case):
    setting, value = case
    element = setting.to_space(value)
    assert setting.space().contains(element)
    back = setting.from_space(element)
    assert back == value and type(back) is type(value)


@given(any_setting_with_value, st.integers(0, 2**32 - 1))
def test_space_samples_are_valid_values(case, seed):
    setting, _ = case
    space = setting.space()
    space.seed(seed)
    value = setting.from_space(space.sample())
    assert setting.validate(value) == value


@given(float_with_value(), st.floats(-1.0, 1.0))
def test_float_decode_is_monotonic(case, x):
    setting, _ = case
    y = min(1.0, x + 0.25)
    assert setting.decode(x) <= setting.decode(y)


def test_log_scale_spends_the_box_evenly_on_orders_of_magnitude():
    lr = Float("optim.lr", 1e-3, low=1e-5, high=1.0, log=True)
    assert lr.decode(-1.0) == pytest.approx(1e-5)
    assert lr.decode(0.0) == pytest.approx(math.sqrt(1e-5))
    assert lr.decode(1.0) == pytest.approx(1.0)
    width = Int("model.width", 128, low=16, high=1024, log=True)
    assert width.decode(0.0) == pytest.approx(math.sqrt(15.5 * 1024.5), abs=1)


def test_every_integer_owns_a_slice_of_the_box():
    setting = Int("train.epochs", 1, low=1, high=5)
    grid = np.linspace(-1, 1, 1001)
    decoded = [setting.decode(x) for x in grid]
    assert sorted(set(decoded)) == [1, 2, 3, 4, 5]
    counts = [decoded.count(v) for v in range(1, 6)]
    assert max(counts) - min(counts) <= 2


# --- validation: messages name the setting, the value, the range and the fix -------------
def test_out_of_range_float_message():
    lr = Float("optim.lr", 1e-3, low=1e-5, high=1.0, log=True)
    with pytest.raises(SettingError) as err:
        lr.validate(5.0)
    msg = str(err.value)
    assert "optim.lr" in msg and "5.0" in msg
    assert "[1e-05, 1]" in msg
    assert "omit it for the default 0.001" in msg


@pytest.mark.parametrize(
    "setting, value, words",
    [
        (Float("a.x", 0.5), "abc", "is not a number"),
        (Float("a.x", 0.5), float("nan"), "nan is not a finite number"),
        (Float("a.x", 0.5), float("inf"), "inf is not a finite number"),
        (Float("a.x", 0.5), 10**400, "is outside [0, 1]"),
        (Float("a.x", 0.5), [[0.5]], "is not a number"),
        (Float("a.x", 0.5), True, "is not a number"),
        (Int("a.n", 2, low=1, high=4), 2.5, "is not an integer"),
        (Int("a.n", 2, low=1, high=4), True, "is not an integer"),
        (Int("a.n", 2, low=1, high=4), 9, "is outside [1, 4]"),
        (Int("a.n", 2, low=1, high=4), float("inf"), "is not an integer"),
        (Int("a.n", 2, low=1, high=4), -(10**400), "is outside [1, 4]"),
        (Categorical("a.c", "relu", choices=("relu", "tanh")), "tanhh", "one of 'relu', 'tanh'"),
        (Categorical("a.k", 3, choices=(3, 5)), "3", "is not an allowed choice"),
        (Bool("a.b", False), 1, "true or false"),
        (Bool("a.b", False), "true", "is not a boolean"),
    ],
)
def test_bad_values_are_rejected_with_a_clear_message(setting, value, words):
    with pytest.raises(SettingError) as err:
        setting.validate(value)
    msg = str(err.value)
    assert setting.name in msg
    assert words in msg
    assert f"default {setting.default!r}" in msg


def test_values_are_made_canonical():
    assert Int("a.n", 2, low=1, high=4).validate(3.0) == 3
    assert type(Int("a.n", 2, low=1, high=4).validate(np.int64(3))) is int
    assert Float("a.x", 0.5).validate(np.array(0.25)) == 0.25
    kernel = Categorical("a.k", 3, choices=(3, 5))
    assert kernel.validate(np.int64(5)) == 5 and type(kernel.validate(np.int64(5))) is int
    assert kernel.validate(5.0) == 5
    assert Bool("a.b", False).validate(np.bool_(True)) is True


@pytest.mark.parametrize(
    "build",
    [
        lambda: Float("a.x", 0.5, low=1.0, high=0.0),
        lambda: Float("a.x", 0.5, low=0.0, high=1.0, log=True),
        lambda: Float("a.x", 2.0, low=0.0, high=1.0),
        lambda: Int("a.n", 1, low=1.5, high=4),
        lambda: Int("a.n", 1, low=0, high=4, log=True),
        lambda: Int("a.n", 7, low=1, high=4),
        lambda: Categorical("a.c", "x", choices=("x",)),
        lambda: Categorical("a.c", "x", choices=("x", "x")),
        lambda: Categorical("a.c", 1, choices=(1, 1.0)),
        lambda: Categorical("a.c", "z", choices=("x", "y")),
        lambda: Bool("a.b", 0),
        lambda: Float("bad name", 0.5),
        lambda: Float("", 0.5),
        lambda: Float("optim..lr", 0.5),
    ],
)
def test_bad_declarations_are_rejected(build):
    with pytest.raises(SettingError):
        build()


def test_to_json_describes_the_declaration():
    mom = Float(
        "optim.momentum", 0.9, low=0.0, high=0.99, when={"optim.name": ["sgd"]}, help="SGD momentum"
    )
    assert mom.to_json() == {
        "name": "optim.momentum",
        "type": "float",
        "default": 0.9,
        "low": 0.0,
        "high": 0.99,
        "log": False,
        "when": {"optim.name": ["sgd"]},
        "help": "SGD momentum",
    }
    assert mom.when == {"optim.name": ("sgd",)}
    assert Categorical("a.c", "x", choices=("x", "y")).to_json()["choices"] == ["x", "y"]
    assert Bool("a.b", True).to_json() == {"name": "a.b", "type": "bool", "default": True}


def test_categorical_from_space_reads_numpy_integers_as_indices_and_other_values_as_choices():
    setting = Categorical("model.family", "mlp", choices=("mlp", "cnn"))
    assert setting.from_space(np.int64(1)) == "cnn"
    assert setting.from_space(np.array(1)) == "cnn"
    assert setting.from_space("cnn") == "cnn"
    for bad in (np.int64(2), np.int64(-1), np.float64(0.5), 1, "rnn", 0.5):
        with pytest.raises(SettingError, match="model.family"):
            setting.from_space(bad)
    numbers = Categorical("model.kernel", 3, choices=(3, 5))
    assert numbers.from_space(5) == 5 and numbers.from_space(np.int64(1)) == 5


def test_numpy_scalars_of_choices_are_the_choices():
    family = Categorical("model.family", "mlp", choices=("mlp", "cnn"))
    assert family.validate(np.str_("cnn")) == "cnn" and family.from_space(np.str_("cnn")) == "cnn"
    assert type(family.validate(np.str_("cnn"))) is str
    switch = Bool("data.augment", False)
    assert switch.validate(np.bool_(True)) is True
