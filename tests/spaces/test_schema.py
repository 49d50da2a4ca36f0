"""Schema: validation, conditions and every derived form (dict, flat, JSON, YAML, CLI)."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from researchgym.envs.suites import SUITES, get_suite
from researchgym.errors import MAX_ERROR_CHARS
from researchgym.spaces import (
    MAX_JSON_CHARS,
    MAX_NESTING,
    Bool,
    Categorical,
    Float,
    Int,
    Schema,
    SettingError,
    flatten_dotted,
)
from tests.conftest import assert_same_metaprogram

SUITE_NAMES = ("digits", "tabular")
SCHEMAS = {name: get_suite(name).make_schema() for name in SUITE_NAMES}
seeds = st.integers(0, 2**32 - 1)


def random_metaprogram(schema: Schema, seed: int) -> dict:
    space = schema.space()
    space.seed(seed)
    return schema.from_space(space.sample())


def nested(metaprogram: dict) -> dict:
    out: dict = {}
    for name, value in metaprogram.items():
        *parents, leaf = name.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


@pytest.fixture
def small() -> Schema:
    return Schema(
        [
            Categorical("optim.name", "adam", choices=("adam", "sgd")),
            Float("optim.lr", 1e-3, low=1e-5, high=1.0, log=True),
            Float("optim.momentum", 0.9, low=0.0, high=0.99, when={"optim.name": ("sgd",)}),
            Int("train.epochs", 10, low=1, high=100),
            Bool("data.augment", False),
        ]
    )


# --- round trips on the suites' schemas ----------------------------------------------------
@pytest.mark.parametrize("suite", SUITE_NAMES)
@given(seed=seeds)
def test_sampled_metaprograms_are_complete_and_valid(suite, seed):
    schema = SCHEMAS[suite]
    m = random_metaprogram(schema, seed)
    assert schema.validate(m) == m
    for setting in schema:
        active = all(m.get(p) in allowed for p, allowed in setting.when.items())
        assert (setting.name in m) == active


@pytest.mark.parametrize("suite", SUITE_NAMES)
@given(seed=seeds)
def test_flat_encode_decode_round_trip(suite, seed):
    schema = SCHEMAS[suite]
    m = random_metaprogram(schema, seed)
    vector = schema.encode(m)
    assert schema.flat_space().contains(vector)
    assert_same_metaprogram(schema, schema.decode(vector), m)


@pytest.mark.parametrize("suite", SUITE_NAMES)
@given(seed=seeds)
def test_dict_space_round_trip(suite, seed):
    schema = SCHEMAS[suite]
    m = random_metaprogram(schema, seed)
    element = schema.to_space(m)
    assert schema.space().contains(element)
    assert schema.from_space(element) == m


@pytest.mark.parametrize("suite", SUITE_NAMES)
@given(seed=seeds)
def test_json_round_trip(suite, seed):
    schema = SCHEMAS[suite]
    m = random_metaprogram(schema, seed)
    back = schema.parse_json(json.dumps(m))
    assert back == m
    assert all(type(back[k]) is type(v) for k, v in m.items())


@pytest.mark.parametrize("suite", SUITE_NAMES)
@settings(max_examples=50)
@given(seed=seeds)
def test_yaml_file_round_trip(suite, seed):
    schema = SCHEMAS[suite]
    m = random_metaprogram(schema, seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.yaml"
        path.write_text(yaml.safe_dump(nested(m)))
        back = schema.validate(schema.load_yaml(path))
    assert back == m


@pytest.mark.parametrize("suite", SUITE_NAMES)
@given(seed=seeds)
def test_cli_overrides_round_trip(suite, seed):
    schema = SCHEMAS[suite]
    m = random_metaprogram(schema, seed)
    overrides = [f"{name}={value}" for name, value in m.items()]
    back = schema.validate(schema.parse_overrides(overrides))
    assert back == m


@pytest.mark.parametrize("suite", SUITE_NAMES)
@given(data=st.data())
def test_decode_of_any_finite_vector_is_valid(suite, data):
    schema = SCHEMAS[suite]
    floats = st.floats(allow_nan=False, allow_infinity=False)
    vector = np.array(data.draw(st.lists(floats, min_size=len(schema), max_size=len(schema))))
    m = schema.decode(vector)
    assert schema.validate(m) == m
    assert schema.decode(np.clip(vector, -1, 1)) == m


# --- validation and conditions -------------------------------------------------------------
def test_defaults_fill_missing_settings(small):
    assert small.defaults() == {
        "optim.name": "adam",
        "optim.lr": 1e-3,
        "train.epochs": 10,
        "data.augment": False,
    }
    assert small.validate({"optim": {"lr": 0.01}})["optim.lr"] == 0.01
    assert list(small.validate({"train.epochs": 3, "optim.name": "sgd"})) == [
        "optim.name",
        "optim.lr",
        "optim.momentum",
        "train.epochs",
        "data.augment",
    ]


def test_conditional_setting_is_dropped_when_inactive(small):
    assert "optim.momentum" not in small.validate({"optim.name": "adam", "optim.momentum": 0.5})
    assert small.validate({"optim.name": "sgd", "optim.momentum": 0.5})["optim.momentum"] == 0.5
    assert small.validate({"optim.name": "sgd"})["optim.momentum"] == 0.9
    with pytest.raises(SettingError, match="optim.momentum"):
        small.validate({"optim.name": "sgd", "optim.momentum": 1.5})


def test_values_of_inactive_settings_are_checked_too(small):
    with pytest.raises(SettingError, match="optim.momentum=nan is not a finite number"):
        small.validate({"optim.name": "adam", "optim.momentum": float("nan")})
    with pytest.raises(SettingError, match="optim.momentum='fast' is not a number"):
        small.from_space({"optim.name": np.int64(0), "optim.momentum": "fast"})


def test_conditions_in_the_suite_schemas():
    schema = SCHEMAS["tabular"]
    assert "optim.momentum" not in schema.validate({"optim.name": "adam", "optim.momentum": 0.5})
    assert schema.validate({"optim.name": "sgd", "optim.momentum": 0.5})["optim.momentum"] == 0.5
    linear = schema.validate({"model.family": "linear", "model.width": 64})
    assert not any(name.startswith("model.") and name != "model.family" for name in linear)
    digits = SCHEMAS["digits"]
    assert "model.channels" in digits.validate({"model.family": "cnn"})
    assert "model.depth" not in digits.validate({"model.family": "cnn"})


def test_decode_respects_conditions(small):
    adam = small.decode(np.zeros(len(small)) - 0.9)
    assert adam["optim.name"] == "adam" and "optim.momentum" not in adam
    sgd = small.decode(np.full(len(small), 0.9))
    assert sgd["optim.name"] == "sgd" and "optim.momentum" in sgd


def test_unknown_setting_suggests_the_closest_name(small):
    with pytest.raises(SettingError) as err:
        small.validate({"optim.lrr": 0.1})
    assert "unknown setting 'optim.lrr'" in str(err.value)
    assert "did you mean 'optim.lr'?" in str(err.value)
    with pytest.raises(SettingError, match="did you mean 'train.epochs'"):
        small["train.epoch"]


def test_bad_value_names_setting_value_range_and_fix(small):
    with pytest.raises(SettingError) as err:
        small.validate({"train.epochs": 1000})
    msg = str(err.value)
    assert "train.epochs=1000" in msg
    assert "[1, 100]" in msg
    assert "omit it for the default 10" in msg


@pytest.mark.parametrize(
    "settings_list",
    [
        [Float("a.x", 0.5), Float("a.x", 0.5)],
        [
            Float("a.x", 0.5, when={"a.name": ("u",)}),
            Categorical("a.name", "u", choices=("u", "v")),
        ],
        [
            Categorical("a.name", "u", choices=("u", "v")),
            Float("a.x", 0.5, when={"a.name": ("w",)}),
        ],
    ],
)
def test_bad_schema_declarations(settings_list):
    with pytest.raises(SettingError):
        Schema(settings_list)


@pytest.mark.parametrize("shape", [(3,), (1, 5), (5, 1), (1, 1, 5), ()])
def test_flat_action_of_the_wrong_shape(small, shape):
    assert len(small) == 5  # every shape above holds the wrong number or layout of entries
    with pytest.raises(SettingError) as err:
        small.decode(np.zeros(shape))
    assert f"expected ({len(small)},)" in str(err.value)
    assert "optim.lr" in str(err.value)


def test_flat_actions_of_any_numeric_dtype_are_read(small):
    want = small.decode(np.zeros(len(small)))
    assert small.decode(np.zeros(len(small), dtype=np.int8)) == want
    assert small.decode([0] * len(small)) == want
    assert small.decode([False] * len(small)) == want


@pytest.mark.parametrize(
    "vector, words",
    [
        ([0.0, np.nan, 0.0, np.inf, 0.0], "non-finite entries: optim.lr=nan, train.epochs=inf;"),
        (np.full(5, -np.inf, dtype=np.float32), "optim.momentum=-inf and 2 more"),
        (["0.1"] * 5, "not an array of real numbers (dtype <U3)"),
        (np.zeros(5, dtype=complex), "(dtype complex128)"),
        ([0.0] * 4 + [None], "(dtype object)"),
        ([0.0] * 4 + [10**400], "(dtype object)"),
        ([[0.0], [0.0, 0.0], 0.0, 0.0, 0.0], "not an array of real numbers;"),
        (None, "flat action None is not an array"),
        ({"optim.lr": 0.1}, "flat action {'optim.lr': 0.1} is not an array"),
    ],
)
def test_flat_actions_that_are_not_finite_real_vectors(small, vector, words):
    with pytest.raises(SettingError) as err:
        small.decode(vector)
    assert words in str(err.value)
    assert "pass 5 finite numbers in [-1, 1], one per setting: optim.name, optim.lr" in str(
        err.value
    )


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_every_suite_rejects_huge_and_unknown_values_in_few_words(suite):
    schema = get_suite(suite).make_schema()
    huge = "x" * 1_000_000
    messages = []
    for values in [{"x" * 300: 1}, {"optim.lrr": 1}, {huge: 1}] + [{s.name: huge} for s in schema]:
        with pytest.raises(SettingError) as err:
            schema.validate(values)
        messages.append(str(err.value))
    for vector in (np.zeros(len(schema) + 1), np.full(len(schema), np.nan), [huge] * len(schema)):
        with pytest.raises(SettingError) as err:
            schema.decode(vector)
        messages.append(str(err.value))
    assert all(len(message) <= MAX_ERROR_CHARS for message in messages), max(messages, key=len)
    assert "(1,000,002 characters)" in messages[-4]


def test_nested_values_are_flattened_with_their_rules():
    assert flatten_dotted({"optim": {"lr": 0.1}, "train.epochs": 3}) == {
        "optim.lr": 0.1,
        "train.epochs": 3,
    }
    assert flatten_dotted({"model": {}}) == {"model": {}}  # checked as a value later
    with pytest.raises(SettingError, match="'optim.lr' is given twice"):
        flatten_dotted({"optim": {"lr": 0.1}, "optim.lr": 0.2})
    with pytest.raises(SettingError, match="setting name 3 under 'optim.' is not a string"):
        flatten_dotted({"optim": {3: 0.1}})
    deep: dict = {"a": 1}
    for _ in range(MAX_NESTING - 1):
        deep = {"a": deep}
    assert flatten_dotted(deep) == {".".join(["a"] * MAX_NESTING): 1}
    for _ in range(100_000):  # far deeper than the recursion limit
        deep = {"a": deep}
    with pytest.raises(SettingError, match=f"nested more than {MAX_NESTING} levels deep"):
        flatten_dotted(deep)


def test_describe_and_json_cover_every_setting(small):
    text = small.describe()
    for name in small.names:
        assert name in text
    assert "optim.momentum" in text and "only when optim.name in ['sgd']" in text
    assert [entry["name"] for entry in small.to_json()] == small.names
    json.dumps(small.to_json())


# --- text, YAML and command-line errors ------------------------------------------------------
@pytest.mark.parametrize(
    "text, words",
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "must be an object of settings, got [1, 2]"),
        ('{"optim.lr": 5.0}', "optim.lr=5.0"),
        ('{"optim.lrr": 0.1}', "did you mean 'optim.lr'"),
        ('{"optim.lr": 0.1, "optim.lr": 0.1}', "gives 'optim.lr' twice in one object"),
        ('{"optim.lr": Infinity}', "optim.lr=inf is not a finite number"),
        ('{"optim.lr": {}}', "optim.lr={} is not a number"),
        ('{"optim": {}}', "unknown setting 'optim'"),
        ('{"train.epochs": ' + "9" * 5000 + "}", "action JSON cannot be read ('Exceeds the limit"),
        (b'{"optim.lr": 0.1\xff}', "action bytes are not UTF-8 (invalid start byte at byte 16)"),
        (" " * MAX_JSON_CHARS + "{}", f"{MAX_JSON_CHARS + 2:,} characters long, over the limit"),
        ("[" * (MAX_NESTING + 1) + "]" * (MAX_NESTING + 1), "nested 33 levels deep"),
        # brackets in strings (escaped quotes included) don't nest
        ('{"a": "' + "[" * 100 + '"}', "unknown setting 'a'"),
        ('{"a": "\\"' + "[" * 100 + '\\\\"}', "unknown setting 'a'"),
    ],
)
def test_parse_json_errors(small, text, words):
    with pytest.raises(SettingError) as err:
        small.parse_json(text)
    assert words in str(err.value)
    assert len(str(err.value)) <= MAX_ERROR_CHARS


@pytest.mark.parametrize(
    "text",
    [
        '"' + '\\"' * 30_000,  # one string left open, full of escaped quotes
        '"\\' * 30_000,
        '"' * MAX_JSON_CHARS,
        "[" * MAX_JSON_CHARS,
        '{"a": ' + "1," * 30_000 + "1}",
    ],
)
def test_parse_json_takes_linear_time_on_the_longest_texts(small, text):
    started = time.perf_counter()
    with pytest.raises(SettingError):
        small.parse_json(text)
    assert time.perf_counter() - started < 2.0  # about 10 ms; a quadratic scan takes 10 s+


def test_parse_json_reads_utf8_bytes_and_text_up_to_the_limits(small):
    text = '{"optim": {"lr": 0.01}, "data.augment": true}'
    assert (
        small.parse_json(text.encode())
        == small.parse_json(text)
        == small.validate({"optim.lr": 0.01, "data.augment": True})
    )
    padded = text + " " * (MAX_JSON_CHARS - len(text))
    assert small.parse_json(padded) == small.parse_json(text)
    nested = '{"optim": ' * (MAX_NESTING - 1) + "{}" + "}" * (MAX_NESTING - 1)
    with pytest.raises(SettingError, match="unknown setting 'optim.optim"):  # deep, but read
        small.parse_json(nested)


def test_yaml_with_dotted_and_nested_keys(small, tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("optim:\n  name: sgd\n  lr: 1e-4\ntrain.epochs: 3\n")
    assert small.validate(small.load_yaml(path)) == {
        "optim.name": "sgd",
        "optim.lr": 1e-4,
        "optim.momentum": 0.9,
        "train.epochs": 3,
        "data.augment": False,
    }
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert small.load_yaml(empty) == {}


def test_yaml_syntax_error_reports_the_line(small, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("optim:\n  lr: 0.1\n  name: [sgd\n")
    with pytest.raises(SettingError) as err:
        small.load_yaml(path)
    assert "invalid YAML at line 4" in str(err.value) and str(path) in str(err.value)


def test_yaml_that_is_not_a_mapping(small, tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- optim.lr\n- 0.1\n")
    with pytest.raises(SettingError, match="expected a mapping of settings"):
        small.load_yaml(path)


def test_missing_yaml_file(small, tmp_path):
    with pytest.raises(SettingError, match="does not exist"):
        small.load_yaml(tmp_path / "nope.yaml")


def test_yaml_python_tags_are_rejected_not_executed(small, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(f'optim.lr: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(SettingError, match="invalid YAML"):
        small.load_yaml(path)
    top = tmp_path / "evil_top.yaml"
    top.write_text(f'!!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(SettingError, match="invalid YAML"):
        small.load_yaml(top)
    assert not marker.exists()


def test_overrides_read_yaml_scalars(small):
    parsed = small.parse_overrides(
        ["optim.name=sgd", "optim.lr=1e-4", "train.epochs=3", "data.augment=true"]
    )
    assert parsed == {
        "optim.name": "sgd",
        "optim.lr": 1e-4,
        "train.epochs": 3,
        "data.augment": True,
    }
    assert small.validate(parsed)["optim.momentum"] == 0.9


@pytest.mark.parametrize(
    "override, words",
    [
        ("optim.lr", "is not of the form name=value"),
        ("=0.1", "is not of the form name=value"),
        ("optim.lrr=0.1", "did you mean 'optim.lr'"),
        ("optim.lr=[0.1, 0.2]", "must be a single scalar"),
        ("optim.lr={a: 1}", "must be a single scalar"),
    ],
)
def test_bad_overrides(small, override, words):
    with pytest.raises(SettingError) as err:
        small.parse_overrides([override])
    assert words in str(err.value)


def test_override_with_a_bad_value_fails_at_validation(small):
    with pytest.raises(SettingError, match="train.epochs='many' is not an integer"):
        small.validate(small.parse_overrides(["train.epochs=many"]))
