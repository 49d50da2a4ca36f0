"""UnitTree: one declaration, flat settings with conditions, and the tree form in a Schema."""

import json

import numpy as np
import pytest

from researchgym.errors import MAX_ERROR_CHARS
from researchgym.spaces import (
    Bool,
    Categorical,
    Float,
    Int,
    NestedForm,
    Schema,
    SettingError,
    Slot,
    Unit,
    UnitTree,
)

KIND = Slot(
    "kind",
    units=(
        Unit("a", (Int("size", 2, low=1, high=4), Bool("flag", True))),
        Unit("b", (Int("size", 2, low=1, high=4),)),
        Unit("c"),
    ),
    default="a",
)
TREE = UnitTree(
    "net",
    top=(
        Categorical("width", 8, choices=(8, 16)),
        Slot("act", (Unit("relu"), Unit("tanh")), "relu"),
    ),
    layer=(KIND, Float("drop", 0.0, low=0.0, high=0.5)),
    max_depth=3,
    default_depth=1,
)


def schema() -> Schema:
    return Schema(
        TREE.settings() + [Float("optim.lr", 0.01, low=1e-4, high=1.0, log=True)], forms=[TREE]
    )


def test_flat_names_are_mechanical_and_ordered():
    assert TREE.names == (
        "net.width",
        "net.act",
        "net.depth",
        "net.layer0.kind",
        "net.layer0.kind_size",
        "net.layer0.kind_flag",
        "net.layer0.drop",
        "net.layer1.kind",
        "net.layer1.kind_size",
        "net.layer1.kind_flag",
        "net.layer1.drop",
        "net.layer2.kind",
        "net.layer2.kind_size",
        "net.layer2.kind_flag",
        "net.layer2.drop",
    )
    assert isinstance(TREE, NestedForm)


def test_conditions_follow_depth_and_unit_choice():
    s = schema()
    assert s.defaults() == {
        "net.width": 8,
        "net.act": "relu",
        "net.depth": 1,
        "net.layer0.kind": "a",
        "net.layer0.kind_size": 2,
        "net.layer0.kind_flag": True,
        "net.layer0.drop": 0.0,
        "optim.lr": 0.01,
    }
    m = s.validate(
        {"net.depth": 2, "net.layer1.kind": "c", "net.layer1.kind_size": 3, "net.layer2.kind": "b"}
    )
    assert m["net.layer1.kind"] == "c"
    assert "net.layer1.kind_size" not in m  # unit c has no size
    assert "net.layer2.kind" not in m  # beyond depth
    shared = s["net.layer0.kind_size"]
    assert shared.when == {"net.layer0.kind": ("a", "b")}
    assert s["net.layer1.kind"].when == {"net.depth": (2, 3)}


def test_tree_form_expands_to_flat_settings():
    s = schema()
    tree = {
        "width": 16,
        "act": "tanh",
        "layers": [{"kind": {"type": "b", "size": 4}}, {"kind": "c", "drop": 0.25}],
    }
    m = s.validate({"net": tree, "optim.lr": 0.1})
    assert m == {
        "net.width": 16,
        "net.act": "tanh",
        "net.depth": 2,
        "net.layer0.kind": "b",
        "net.layer0.kind_size": 4,
        "net.layer0.drop": 0.0,
        "net.layer1.kind": "c",
        "net.layer1.drop": 0.25,
        "optim.lr": 0.1,
    }
    assert s.to_nested(m) == {
        "net": {
            "width": 16,
            "act": "tanh",
            "layers": [
                {"kind": {"type": "b", "size": 4}, "drop": 0.0},
                {"kind": "c", "drop": 0.25},
            ],
        },
        "optim.lr": 0.1,
    }
    assert s.validate(s.to_nested(m)) == m
    assert TREE.collapse(m, compact=False)["layers"][1]["kind"] == {"type": "c"}


def test_tree_is_accepted_by_json_and_yaml(tmp_path):
    s = schema()
    text = json.dumps({"net": {"layers": [{"kind": "b"}]}})
    assert s.parse_json(text)["net.layer0.kind"] == "b"
    path = tmp_path / "exp.yaml"
    path.write_text(
        "net:\n  width: 16\n  layers:\n    - kind: {type: a, flag: false}\noptim.lr: 0.05\n"
    )
    loaded = s.validate(s.load_yaml(path))
    assert loaded["net.layer0.kind_flag"] is False and loaded["net.width"] == 16


def test_nested_flat_settings_still_work_under_the_prefix():
    s = schema()
    m = s.validate({"net": {"depth": 2, "layer1": {"kind": "c"}}})
    assert m["net.depth"] == 2 and m["net.layer1.kind"] == "c"


@pytest.mark.parametrize(
    ("tree", "fragments"),
    [
        ({"layers": [{"kind": "z"}]}, ["net.layers[0].kind", "unknown kind unit 'z'", "a, b, c"]),
        (
            {"layers": [{"kind": {"type": "c", "size": 2}}]},
            ["net.layers[0].kind", "unit 'c' has no setting 'size'"],
        ),
        (
            {"layers": [{"kind": {"type": "b", "flag": True}}]},
            ["net.layers[0].kind", "has no setting 'flag'", "size"],
        ),
        (
            {"layers": [{"kind": {"type": "a", "size": 9}}]},
            ["net.layers[0].kind.size", "outside [1, 4]"],
        ),
        ({"layers": [{"kind": {"size": 2}}]}, ["net.layers[0].kind", "no 'type'"]),
        ({"layers": [{"kind": 3}]}, ["net.layers[0].kind=3", "is not a unit"]),
        (
            {"layers": [{"knd": "a"}]},
            ["net.layers[0]", "unknown layer item 'knd'", "did you mean 'kind'"],
        ),
        ({"layers": [{}] * 4}, ["net.layers has 4 layers", "1 to 3", "rule: depth range"]),
        ({"layers": []}, ["net.layers has 0 layers"]),
        ({"layers": "a"}, ["net.layers='a' is not a list"]),
        ({"layers": [{"kind": "z" * 10**6}]}, ["unknown kind unit 'zzz", "(1,000,002 characters)"]),
        ({"layers": [{"z" * 10**6: "a"}]}, ["unknown layer item 'zzz", "(1,000,002 characters)"]),
        ({"layers": [{"kind": {"type": "a", 7: 1}}]}, ["has no setting 7"]),
        ({"layers": [{"kind": [[[]]]}]}, ["net.layers[0].kind=[[[]]] is not a unit"]),
        ({"layers": [{}], "depth": 2}, ["disagrees with the 1 layers"]),
        ({"width": 12}, ["net.width", "not an allowed choice", "8, 16"]),
        ({"act": "gelu"}, ["net.act", "unknown act unit 'gelu'"]),
        ({"layers": ["a"]}, ["net.layers[0]='a' is not a layer"]),
    ],
)
def test_rejected_trees_name_the_unit_and_the_rule(tree, fragments):
    with pytest.raises(SettingError) as err:
        schema().validate({"net": tree})
    for fragment in fragments:
        assert fragment in str(err.value)
    assert len(str(err.value)) <= MAX_ERROR_CHARS


def test_a_setting_given_twice_is_rejected():
    with pytest.raises(SettingError, match="given both"):
        schema().validate({"net": {"width": 16}, "net.width": 8})
    with pytest.raises(SettingError, match="given twice"):
        schema().validate({"net": {"layers": [{"kind": "c"}], "layer0": {"kind": "a"}}})


def test_flat_vectors_round_trip_through_the_tree():
    s = schema()
    rng = np.random.default_rng(0)
    for _ in range(50):
        m = s.decode(rng.uniform(-1, 1, len(s)))
        assert s.validate(s.to_nested(m)) == m
        assert s.validate(json.loads(json.dumps(s.to_nested(m)))) == m


def test_forms_json_describes_units_and_an_example():
    (described,) = schema().forms_json()
    assert described["key"] == "net"
    assert set(described["layers"]["items"]["kind"]["units"]) == {"a", "b", "c"}
    assert described["layers"]["max"] == 3
    assert schema().validate({"net": described["example"]}) == schema().defaults()
    json.dumps(described)


def test_schemas_without_forms_behave_as_before():
    plain = Schema(
        [Int("model.width", 8, low=1, high=64), Float("optim.lr", 0.1, low=0.01, high=1.0)]
    )
    values = {"model": {"width": 16}, "optim.lr": 0.5}
    assert plain.forms == ()
    assert plain.forms_json() == []
    assert plain.to_nested(values) == plain.validate(values) == {"model.width": 16, "optim.lr": 0.5}


@pytest.mark.parametrize(
    "declare",
    [
        lambda: Slot("s", (Unit("a"),), "a"),
        lambda: Slot("s", (Unit("a"), Unit("b")), "c"),
        lambda: Slot(
            "s",
            (Unit("a", (Int("k", 1, low=0, high=2),)), Unit("b", (Int("k", 2, low=0, high=2),))),
            "a",
        ),
        lambda: Unit("a", (Int("k", 1, low=0, high=2, when={"x": (1,)}),)),
        lambda: Unit("a b"),
        lambda: UnitTree("net", top=(), layer=(KIND,), max_depth=1),
        lambda: UnitTree("net", top=(Int("layers", 1, low=0, high=2),), layer=(KIND,), max_depth=2),
        lambda: Schema(TREE.settings()[:3], forms=[TREE]),
    ],
)
def test_bad_declarations_fail_at_declaration(declare):
    with pytest.raises(SettingError):
        declare()
