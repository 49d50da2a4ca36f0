"""Schema: validation, conditions and every derived form (dict, flat, JSON, YAML, CLI)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from researchgym.envs.suites import get_suite
from researchgym.spaces import Bool, Categorical, Float, Int, Schema, SettingError
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
        "optim.name", "optim.lr", "optim.momentum", "train.epochs", "data.augment"
    ]


def test_conditional_setting_is_dropped_when_inactive(small):
    assert "optim.momentum" not in small.validate({"optim.name": "adam", "optim.momentum": 0.5})
    assert small.validate({"optim.name": "sgd", "optim.momentum": 0.5})["optim.momentum"] == 0.5
    assert small.validate({"optim.name": "sgd"})["optim.momentum"] == 0.9
    with pytest.raises(SettingError, match="optim.momentum"):
        small.validate({"optim.name": "sgd", "optim.momentum": 1.5})


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
        [Float("a.x", 0.5, when={"a.name": ("u",)}), Categorical("a.name", "u", choices=("u", "v"))],
        [Categorical("a.name", "u", choices=("u", "v")), Float("a.x", 0.5, when={"a.name": ("w",)})],
    ],
)
def test_bad_schema_declarations(settings_list):
    with pytest.raises(SettingError):
        Schema(settings_list)


def test_flat_action_of_the_wrong_shape(small):
    with pytest.raises(SettingError) as err:
        small.decode(np.zeros(3))
    assert f"expected ({len(small)},)" in str(err.value)
    assert "optim.lr" in str(err.value)


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
        ("[1, 2]", "must be an object"),
        ('{"optim.lr": 5.0}', "optim.lr=5.0"),
        ('{"optim.lrr": 0.1}', "did you mean 'optim.lr'"),
    ],
)
def test_parse_json_errors(small, text, words):
    with pytest.raises(SettingError) as err:
        small.parse_json(text)
    assert words in str(err.value)


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
    parsed = small.parse_overrides(["optim.name=sgd", "optim.lr=1e-4", "train.epochs=3", "data.augment=true"])
    assert parsed == {"optim.name": "sgd", "optim.lr": 1e-4, "train.epochs": 3, "data.augment": True}
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
