"""Serialization of metaprograms and campaigns into tokens, and back."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from researchgym.envs.interfaces import TASK_FEATURES
from researchgym.envs.replay import REFERENCE_STORE
from researchgym.envs.suites import get_suite
from researchgym.serialize import (
    EOS,
    Campaign,
    SerializeError,
    Serializer,
    Step,
    build_tokenizer,
    load_campaigns,
)
from researchgym.spaces import Bool, Categorical, Float, Int, Schema
from researchgym.store import Store

SCHEMAS = {name: get_suite(name).make_schema() for name in ("tabular", "digits")}
SERIALIZERS = {
    name: Serializer(schema, [f"researchgym/{name}"], n_bins=16) for name, schema in SCHEMAS.items()
}


def _value(setting):
    if isinstance(setting, Categorical):
        return st.sampled_from(setting.choices)
    if isinstance(setting, Int):
        return st.integers(setting.low, setting.high)
    return st.floats(setting.low, setting.high, allow_nan=False)


@st.composite
def metaprograms(draw, schema: Schema):
    values = {}
    for s in schema:
        if all(values.get(p) in allowed for p, allowed in s.when.items()):
            values[s.name] = draw(_value(s))
    return schema.validate(values)


def _check_round_trip(serializer: Serializer, metaprogram: dict) -> None:
    tokens = serializer.metaprogram_tokens(metaprogram)
    back = serializer.parse_metaprogram(tokens)
    assert list(back) == list(metaprogram)
    width = 2.0 / serializer.n_bins
    for name, value in metaprogram.items():
        setting = serializer.schema[name]
        if isinstance(setting, Float):
            assert abs(setting.encode(back[name]) - setting.encode(value)) <= width + 1e-9
        else:
            assert back[name] == value and type(back[name]) is type(value)


@pytest.mark.parametrize("suite", sorted(SCHEMAS))
@settings(max_examples=60)
@given(data=st.data())
def test_metaprogram_round_trip(suite, data):
    serializer = SERIALIZERS[suite]
    _check_round_trip(serializer, data.draw(metaprograms(serializer.schema)))


CONDITIONAL = Schema(
    [
        Categorical("kind", "a", choices=("a", "b", "c d")),
        Int("big", 5, low=1, high=5000, log=True, when={"kind": ("a",)}),
        Int("small", 0, low=-3, high=3),
        Float("x", 0.5, low=0.0, high=1.0, when={"kind": ("b", "c d")}),
        Float("lr", 1e-3, low=1e-6, high=1.0, log=True),
        Bool("flag", False),
        Categorical("n", 2, choices=(1, 2, 4.5)),
    ]
)


@settings(max_examples=100)
@given(data=st.data(), n_bins=st.integers(2, 40))
def test_round_trip_any_bins_and_conditions(data, n_bins):
    serializer = Serializer(CONDITIONAL, ["env"], n_bins=n_bins, score_bins=8)
    _check_round_trip(serializer, data.draw(metaprograms(CONDITIONAL)))


@settings(max_examples=30)
@given(
    data=st.data(), scores=st.lists(st.one_of(st.none(), st.floats(-1, 1)), min_size=0, max_size=5)
)
def test_campaign_round_trip(data, scores):
    serializer = Serializer(CONDITIONAL, ["env/A-v0", "env/B-v0"], n_bins=8, score_bins=20)
    steps = [
        Step(data.draw(metaprograms(CONDITIONAL)), s, "ok" if s is not None else "diverged")
        for s in scores
    ]
    campaign = Campaign("env/B-v0", "t", {"n_train": 7.0, "n_classes": 2.5}, steps)
    tokens = serializer.campaign_tokens(campaign)
    assert tokens[-1] == EOS
    back = serializer.parse_campaign(tokens)
    assert back.env_id == "env/B-v0"
    assert back.features["n_train"] == 7.0 and back.features["n_classes"] == 2.5
    assert len(back.steps) == len(steps)
    for original, parsed in zip(steps, back.steps):
        assert (parsed.score is None) == (original.score is None)
        if original.score is not None:
            assert math.isclose(parsed.score, original.score, abs_tol=2.0 / 20)
        assert parsed.metaprogram.keys() == original.metaprogram.keys()


def test_tokenizer_matches_vocabulary(tmp_path):
    serializer = SERIALIZERS["tabular"]
    tokenizer = build_tokenizer(serializer)
    tokens = serializer.header_tokens("researchgym/tabular", None) + serializer.step_tokens(
        Step(SCHEMAS["tabular"].defaults(), 0.75)
    )
    ids = tokenizer(" ".join(tokens))["input_ids"]
    assert ids == serializer.encode(tokens)
    assert tokenizer.decode(ids).split() == tokens
    tokenizer.save_pretrained(tmp_path)
    from transformers import PreTrainedTokenizerFast

    assert PreTrainedTokenizerFast.from_pretrained(tmp_path)(" ".join(tokens))["input_ids"] == ids


def test_saved_config_checks_schema(tmp_path):
    serializer = SERIALIZERS["tabular"]
    serializer.save(tmp_path)
    again = Serializer.load(tmp_path, SCHEMAS["tabular"])
    assert again.vocab == serializer.vocab
    with pytest.raises(SerializeError, match="train a planner"):
        Serializer.load(tmp_path, SCHEMAS["digits"])


def test_bad_tokens_are_errors():
    serializer = SERIALIZERS["tabular"]
    with pytest.raises(SerializeError, match="not in the vocabulary"):
        serializer.encode(["nope"])
    with pytest.raises(SerializeError, match="not a value token"):
        serializer.parse_metaprogram(['model.family="mlp"'])


def test_load_campaigns_from_reference_store():
    schema = SCHEMAS["tabular"]
    campaigns = load_campaigns(REFERENCE_STORE, "researchgym/Tabular-v0", schema, tasks=["iris"])
    assert len(campaigns) == 300
    assert {c.task for c in campaigns} == {"iris"}
    assert campaigns[0].features["n_classes"] == pytest.approx(math.log1p(3), abs=1e-5)
    assert all(len(c.steps) == 1 and c.steps[0].score is not None for c in campaigns)


def test_load_campaigns_reads_task_features_of_rows_without_their_column(tmp_path):
    schema = SCHEMAS["tabular"]
    with Store(REFERENCE_STORE) as reference:
        rows = [
            row
            for task in ("iris", "wine")
            for row in reference.runs("researchgym/Tabular-v0", tasks=[task]).to_pylist()[:2]
        ]
    old_rows = [{**row, "task_features": None} for row in rows]  # as written before the column
    with Store(tmp_path / "new") as new, Store(tmp_path / "old") as old:
        new.append_many(rows)
        old.append_many(old_rows)
        want = {c.task: c.features for c in load_campaigns(new, "researchgym/Tabular-v0", schema)}
        got = {c.task: c.features for c in load_campaigns(old, "researchgym/Tabular-v0", schema)}
    assert want.keys() == got.keys() and len(want) == 2
    for task, features in want.items():
        assert list(got[task]) == list(TASK_FEATURES)
        assert got[task] == pytest.approx(features, abs=1e-6)
    assert got["iris"]["n_classes"] == pytest.approx(math.log1p(3), abs=1e-5)
