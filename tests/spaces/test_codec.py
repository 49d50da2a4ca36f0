"""FlatCodec: decoding and encoding identical to the settings' own methods, setting by setting."""

from __future__ import annotations

import copy
import math
import pickle
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import researchgym
from researchgym.envs.suites import get_suite
from researchgym.spaces import Bool, Categorical, Float, Int, Schema, Setting
from researchgym.spaces.codec import FlatCodec, SettingwiseCodec, flat_codec
from tests.conftest import slow_params

SUITE_SCHEMAS = {
    env_id: gym.make(env_id, store=False).unwrapped.schema for env_id in researchgym.ENV_IDS
}


# --- the reference: one setting at a time ---------------------------------------------------
def reference_decode(schema: Schema, vector) -> dict:
    vector = np.asarray(vector, dtype=np.float64).reshape(-1)
    decoded: dict = {}
    for setting, x in zip(schema, vector):
        if all(decoded.get(parent) in allowed for parent, allowed in setting.when.items()):
            decoded[setting.name] = setting.decode(x)
    return decoded


def reference_encode(schema: Schema, metaprogram: dict) -> np.ndarray:
    return np.array(
        [s.encode(metaprogram.get(s.name, s.default)) for s in schema], dtype=np.float32
    )


def same_value(a, b) -> bool:
    """Equal and of one type; floats bit for bit (NaN and the sign of zero included)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return np.float64(a).tobytes() == np.float64(b).tobytes()
    return a == b


def assert_identical(got: dict, want: dict) -> None:
    assert list(got) == list(want)
    for name, value in want.items():
        assert same_value(got[name], value), (name, got[name], value)


def assert_same_bits(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
    assert got.tobytes() == want.tobytes(), (got, want)


def boundaries(schema: Schema) -> list[float]:
    """Entries that land on (or next to) the edge between two values of a discrete setting."""
    points = set()
    for s in schema:
        if isinstance(s, Categorical):
            n = len(s.choices)
            points.update(2.0 * j / n - 1.0 for j in range(n + 1))
        elif isinstance(s, Int) and s.high - s.low <= 64:
            lo, hi = s._bounds()
            for v in range(s.low, s.high + 2):
                y = math.log(v - 0.5) if s.log else v - 0.5
                points.add(2.0 * (y - lo) / (hi - lo) - 1.0)
    near = {0.0}
    for p in points:
        near.update((p, float(np.nextafter(p, -2.0)), float(np.nextafter(p, 2.0))))
    return sorted(near)


def entries(schema: Schema):
    special = st.sampled_from([0.0, -0.0, 1.0, -1.0, math.nan, math.inf, -math.inf, 1e300, -1e-300])
    return st.one_of(
        st.floats(-1.0, 1.0),
        st.floats(allow_nan=True, allow_infinity=True),
        st.floats(-3.0, 3.0),
        special,
        st.sampled_from(boundaries(schema)),
    )


def as_vector(drawn: tuple[list[float], bool]) -> np.ndarray:
    """The entries as float64, or as float32 (as flat actions are; big ones become inf)."""
    entries_, single = drawn
    vector = np.array(entries_, dtype=np.float64)
    if single:
        with np.errstate(over="ignore"):
            vector = vector.astype(np.float32)
    return vector


def vectors(schema: Schema):
    n = len(schema)
    return st.tuples(st.lists(entries(schema), min_size=n, max_size=n), st.booleans()).map(
        as_vector
    )


def codec_of(schema: Schema) -> SettingwiseCodec:
    schema.decode(np.zeros(len(schema)))  # compiles the schema's codec
    return schema._codec


def check(schema: Schema, vector) -> None:
    """The codec decodes any vector as the settings do (NaN and infinities too, which
    ``Schema.decode`` rejects before decoding) and encodes the result as they do."""
    want = reference_decode(schema, vector)
    got = codec_of(schema).decode(np.asarray(vector, dtype=np.float64))
    assert_identical(got, want)
    assert_same_bits(schema.encode_valid(got), reference_encode(schema, want))
    assert_same_bits(
        schema.encode_valid(dict(got)), reference_encode(schema, want)
    )  # not remembered


# --- the suites' schemas -----------------------------------------------------------------------
def test_suite_schemas_compile():
    for schema in SUITE_SCHEMAS.values():
        schema.decode(np.zeros(len(schema)))
        assert isinstance(schema._codec, FlatCodec)


@pytest.mark.parametrize(
    "env_id", slow_params(researchgym.ENV_IDS, {"researchgym/SeqArch-v0", "researchgym/CharLM-v0"})
)
@settings(max_examples=300)
@given(data=st.data())
def test_decode_and_encoding_match_the_settings_own_methods(env_id, data):
    schema = SUITE_SCHEMAS[env_id]
    check(schema, data.draw(vectors(schema)))


@pytest.mark.parametrize("env_id", researchgym.ENV_IDS)
def test_many_uniform_vectors(env_id):
    schema = SUITE_SCHEMAS[env_id]
    rng = np.random.default_rng(0)
    for _ in range(500):
        vector = rng.uniform(-1.2, 1.2, size=len(schema))
        vector[rng.random(len(schema)) < 0.05] = np.nan
        check(schema, vector)
        check(schema, vector.astype(np.float32))


@pytest.mark.parametrize("env_id", researchgym.ENV_IDS)
def test_every_conditional_branch_is_reached(env_id):
    """Vectors that switch each categorical through all its choices (with the rest random)."""
    schema = SUITE_SCHEMAS[env_id]
    rng = np.random.default_rng(1)
    for i, s in enumerate(schema):
        if not isinstance(s, (Categorical, Int)):
            continue
        for x in np.linspace(-1.0, 1.0, 9):
            vector = rng.uniform(-1.0, 1.0, size=len(schema))
            vector[i] = x
            check(schema, vector)


@pytest.mark.parametrize("env_id", researchgym.ENV_IDS)
@settings(max_examples=100)
@given(seed=st.integers(0, 2**32 - 1))
def test_encode_valid_of_validated_metaprograms(env_id, seed):
    schema = SUITE_SCHEMAS[env_id]
    space = schema.space()
    space.seed(seed)
    metaprogram = schema.from_space(space.sample())
    assert_same_bits(schema.encode_valid(metaprogram), reference_encode(schema, metaprogram))
    assert_same_bits(schema.encode(metaprogram), reference_encode(schema, metaprogram))


# --- the remembered encoding -------------------------------------------------------------------
def test_encoding_of_a_changed_metaprogram_is_computed_again():
    schema = SUITE_SCHEMAS["researchgym/Tabular-v0"]
    metaprogram = schema.decode(np.full(len(schema), 0.3))
    first = schema.encode_valid(metaprogram)
    assert_same_bits(first, reference_encode(schema, metaprogram))
    first[:] = 7.0  # the caller's copy
    assert_same_bits(schema.encode_valid(metaprogram), reference_encode(schema, metaprogram))
    metaprogram["train.epochs"] = 3 if metaprogram["train.epochs"] != 3 else 4
    assert_same_bits(schema.encode_valid(metaprogram), reference_encode(schema, metaprogram))
    del metaprogram["train.epochs"]
    assert_same_bits(schema.encode_valid(metaprogram), reference_encode(schema, metaprogram))


def test_schemas_declared_alike_share_a_codec():
    suite = get_suite("tabular")
    a, b = suite.make_schema(), suite.make_schema()
    metaprogram = a.decode(np.full(len(a), -0.2))
    assert_same_bits(b.encode_valid(metaprogram), reference_encode(a, metaprogram))
    assert b._codec is a._codec
    other = Schema([Float("x", 0.5)])
    other.decode(np.zeros(1))
    assert other._codec is not a._codec


def test_a_schema_with_its_codec_pickles_and_copies():
    schema = SUITE_SCHEMAS["researchgym/Digits-v0"]
    vector = np.linspace(-1.0, 1.0, len(schema))
    want = schema.decode(vector)
    for clone in (pickle.loads(pickle.dumps(schema)), copy.deepcopy(schema)):
        assert_identical(clone.decode(vector), want)
        assert_same_bits(clone.encode_valid(want), reference_encode(schema, want))


# --- other schemas: every path of the codec --------------------------------------------------
@dataclass(frozen=True)
class Odd(Setting):
    """A setting type the codec does not know: decoded by its own methods."""

    kind = "odd"

    def validate(self, value):
        return int(value)

    def describe(self) -> str:
        return "an odd thing"

    def encode(self, value) -> float:
        return 0.25 if value else -0.25

    def decode(self, x: float):
        return int(float(x) > 0.1)


EDGE_SCHEMAS = {
    "int bounds on floats": Schema(
        [
            Float("a", 0, low=0, high=1),
            Float("b", 2.0, low=-3, high=5.0),
            Float("c", 1.0, low=np.float64(0.5), high=2.0, log=True),
            Float("d", 0.0, low=-0.0, high=1.0),
        ]
    ),
    "wide and log ints": Schema(
        [
            Int("wide", 5, low=-(10**6), high=10**6),
            Int("widelog", 5, low=1, high=10**7, log=True),
            Int("log", 4, low=1, high=9, log=True),
            Int("pair", 0, low=0, high=1),
            Float("under_wide", 0.5, when={"wide": (0, 1, 2, -5)}),
            Float("under_log", 0.5, when={"log": (1.0, 9)}),
        ]
    ),
    "conditions": Schema(
        [
            Categorical("kind", "a", choices=("a", "b", "c", None)),
            Int("depth", 2, low=1, high=4),
            Float("rate", 0.5, low=0.0, high=1.0),
            Float("f_on_none", 0.1, when={"kind": (None,)}),
            Categorical("g", 1, choices=(1, 2.5, "x"), when={"kind": ("b", "c"), "depth": (2, 3)}),
            Bool("h", False, when={"g": (2.5,)}),
            Float("i", 0.3, when={"h": (True,)}),
            Float("j", 0.3, when={"rate": (0.5, 0.0, 1)}),
            Categorical("p", None, choices=(None, "y"), when={"kind": ("a", "b")}),
            Float("q", 0.2, when={"p": (None,)}),  # also when p is inactive
            Int("l", 3, low=1, high=5, when={"p": ("y",), "kind": ("a", None)}),
        ]
    ),
    "one choice per bin edge": Schema(
        [Categorical(f"c{n}", 0, choices=tuple(range(n))) for n in (2, 3, 5, 7, 10, 33)]
        + [Bool("flag", True), Float("lr", 1e-3, low=1e-6, high=10.0, log=True)]
    ),
    "empty": Schema([]),
}


@pytest.mark.parametrize("name", sorted(EDGE_SCHEMAS))
@settings(max_examples=300)
@given(data=st.data())
def test_other_schemas_match_the_settings_own_methods(name, data):
    schema = EDGE_SCHEMAS[name]
    check(schema, data.draw(vectors(schema)))


@pytest.mark.parametrize("name", sorted(EDGE_SCHEMAS))
def test_other_schemas_on_a_grid(name):
    schema = EDGE_SCHEMAS[name]
    if not len(schema):
        check(schema, np.zeros(0))
        return
    rng = np.random.default_rng(2)
    grid = np.linspace(-1.0, 1.0, 41)
    for _ in range(300):
        check(schema, rng.choice(grid, size=len(schema)))


def test_conditions_on_a_none_choice_and_on_several_parents():
    schema = EDGE_SCHEMAS["conditions"]
    n = len(schema)
    # kind -> None (the last of 4 bins): f_on_none is active; g needs kind in (b, c);
    # p needs kind in (a, b), and q, allowed where p is None, is active with p inactive.
    none_kind = schema.decode([0.9] + [0.0] * (n - 1))
    assert none_kind["kind"] is None and "f_on_none" in none_kind and "g" not in none_kind
    assert "p" not in none_kind and "q" in none_kind and "l" not in none_kind
    # kind -> "b", depth -> 2, p -> "y": g and l (two parents each) are active.
    both = schema.decode([-0.3, -0.4] + [0.0] * 6 + [0.9, 0.0, 0.0])
    assert both["kind"] == "b" and both["depth"] == 2 and both["p"] == "y"
    assert "g" in both and "q" not in both and "l" not in both  # l needs kind in (a, None)
    for vector in ([0.9] + [0.0] * (n - 1), [-0.3, -0.4] + [0.0] * 6 + [0.9, 0.0, 0.0]):
        check(schema, vector)


def test_a_setting_type_the_codec_does_not_know():
    schema = Schema([Categorical("m", "a", choices=("a", "b")), Odd("odd", 0, when={"m": ("b",)})])
    schema.decode(np.zeros(2))
    assert type(schema._codec) is SettingwiseCodec
    for vector in ([-0.5, 0.0], [0.5, 0.5], [0.5, -0.5], [math.nan, math.nan]):
        check(schema, vector)


def test_flat_codec_of_settings_directly():
    schema = EDGE_SCHEMAS["wide and log ints"]
    codec = flat_codec(list(schema))
    assert isinstance(codec, FlatCodec)
    vector = np.array([0.1, 0.9, -0.3, 0.0, 0.2, 0.4])
    assert_identical(codec.decode(vector), reference_decode(schema, vector))
