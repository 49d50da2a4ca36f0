"""Hostile actions on every interface: a bounded ``invalid_action``, never a crash.

Each generated action is malformed for sure (a bad entry is always in it), so a
step must reject it: status ``"invalid_action"``, an error of at most
``MAX_ERROR_CHARS`` characters that can be stored, and the episode goes on;
``strict=True`` raises a ``SettingError`` instead. Nothing is trained: the
executor answers at once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from researchgym.engine import Executor, Result
from researchgym.errors import MAX_ERROR_CHARS
from researchgym.spaces import MAX_JSON_CHARS, MAX_NESTING, Categorical, Schema, SettingError

ENV_IDS = ("researchgym/Digits-v0", "researchgym/SeqArch-v0")
INTERFACES = ("dict", "flat", "text")
MB = 1 << 20


class NeverTrains(Executor):
    """Answers every job at once with the same score."""

    def run(self, metaprogram: Mapping[str, Any], *, task: str, seed: int, **job: Any) -> Result:
        return Result(status="ok", val_metrics={"score": 0.5})


EnvFor = Callable[..., gym.Env]


@pytest.fixture(scope="module")
def env_for() -> Iterator[EnvFor]:
    """``env_for(env_id, interface, strict=False, forkable=False)``: a reset env that never
    trains, made once and kept for the whole module (its budget never runs out), closed
    after it. A forkable one keeps no checkpoints, so no continue or fork can start."""
    envs: dict[tuple[str, str, bool, bool], gym.Env] = {}

    def make(env_id: str, interface: str, strict: bool = False, forkable: bool = False) -> gym.Env:
        key = (env_id, interface, strict, forkable)
        if key not in envs:
            env = gym.make(
                env_id,
                interface=interface,
                strict=strict,
                store=False,
                executor=NeverTrains(),
                budget=10**9,
                forkable=forkable,
            )
            env.reset(seed=0)
            envs[key] = env
        return envs[key]

    yield make
    for env in envs.values():
        env.close()


def assert_rejected(
    env_for: EnvFor, env_id: str, interface: str, action: Any, forkable: bool = False
) -> str:
    """Step both envs with ``action``; return the error (checked) of the lenient one."""
    env = env_for(env_id, interface, forkable=forkable)
    steps_done = env.unwrapped._view.steps_done
    _, reward, terminated, truncated, info = env.unwrapped.step(action)
    error = info["error"]
    assert info["status"] == "invalid_action", (info["status"], error)
    assert info["metaprogram"] is None and reward == env.unwrapped.failure_reward
    assert (terminated, truncated) == (False, False)
    assert isinstance(error, str) and 0 < len(error) <= MAX_ERROR_CHARS, error
    assert "; " in error, error  # the problem, then what to do
    error.encode("utf-8")  # storable as it is
    # The episode goes on: a valid step after it trains.
    _, _, _, _, info = env.step(env.unwrapped.to_action({}))
    assert info["status"] == "ok"
    assert env.unwrapped._view.steps_done == steps_done + 2

    strict = env_for(env_id, interface, strict=True, forkable=forkable)
    with pytest.raises(SettingError) as raised:
        strict.unwrapped.step(action)
    assert len(str(raised.value)) <= MAX_ERROR_CHARS
    return error


# --- building blocks ------------------------------------------------------------------------
def nested_list(depth: int) -> list:
    """``[[[...]]]``, ``depth`` lists deep, built without recursion."""
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def nested_dict(depth: int) -> dict:
    value: dict = {"a": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def json_text(value: Any) -> str:
    return json.dumps(value, allow_nan=True)


any_chars = st.characters(categories=["L", "N", "P", "S", "Z", "Cc", "Cs"])  # with surrogates
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(any_chars)
unknown_names = st.text(any_chars, max_size=20).map(lambda text: "zz_" + text)
#: JSON values whose objects name no setting, layer item or unit setting.
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(unknown_names, inner, max_size=4),
    max_leaves=12,
)
huge_sizes = st.sampled_from([MAX_JSON_CHARS + 1, MB, 5 * MB])
deep_levels = st.sampled_from([MAX_NESTING + 1, 1_000, 30_000, 100_000])

#: Numbers no setting of these suites accepts (nor as a choice index).
bad_numbers = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 10**400, -(10**400)]),
    st.integers(min_value=10**20),
    st.integers(max_value=-(10**20)),
    st.floats(min_value=1e20, allow_infinity=True),
    st.floats(max_value=-1e20, allow_infinity=True),
)


def no_choice(text: str) -> str:
    return "\x00 not a choice " + text


#: Values no setting, list of layers or unit accepts in a JSON action (booleans are
#: choices of some settings; an empty object is a layer of defaults).
bad_json_values = st.one_of(
    bad_numbers,
    st.text(any_chars, max_size=30).map(no_choice),
    st.lists(json_values, max_size=4).filter(lambda v: not v or any(x != {} for x in v)),
    st.dictionaries(unknown_names, json_values, min_size=1, max_size=3),
)


def is_json_object(text: str | bytes) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


# --- text -----------------------------------------------------------------------------------
@st.composite
def settings_with_a_bad_entry(draw, schema: Schema) -> dict[str, Any]:
    """Valid settings (some of them, flat or nested) with one bad entry among them."""
    space = schema.space()
    space.seed(draw(st.integers(0, 2**32 - 1)))
    valid = schema.to_nested(schema.from_space(space.sample()))
    keep = draw(st.lists(st.sampled_from(sorted(valid)), unique=True, max_size=len(valid)))
    given = {name: valid[name] for name in keep}
    kinds = ["value", "unknown", "tree"] if schema.forms else ["value", "unknown"]
    kind = draw(st.sampled_from(kinds))
    if kind == "value":
        given[draw(st.sampled_from(schema.names))] = draw(bad_json_values | st.just({}))
    elif kind == "unknown":
        given[draw(unknown_names)] = draw(json_values)
    else:
        given[schema.forms[0].prefix] = draw(bad_trees(schema))
    return given


def bad_trees(schema: Schema):
    """Trees of units each with one mistake (SeqArch's tree: see ``UnitTree``)."""
    example = schema.forms_json()[0]["example"]
    layer = example["layers"][0]
    bad_units = st.one_of(
        bad_json_values,
        st.text(max_size=10).map(no_choice),
        st.just({"heads": 2}),  # no "type"
        st.builds(lambda name: {"type": no_choice(name)}, st.text(max_size=5)),
        st.builds(lambda key: {"type": "attention", key: 1}, unknown_names),
    )
    return st.one_of(
        json_values.filter(lambda tree: not isinstance(tree, dict)),
        st.builds(lambda layers: {**example, "layers": layers}, bad_json_values),
        st.just({**example, "layers": []}),
        st.just({**example, "layers": [layer] * 100}),
        st.builds(lambda junk: {**example, "layers": [layer, junk]}, bad_json_values),
        st.builds(lambda unit: {**example, "layers": [{**layer, "mixer": unit}]}, bad_units),
        st.builds(lambda unit: {**example, "norm": unit}, bad_units),
        st.builds(lambda name: {**example, "layers": [{name: "mlp"}]}, unknown_names),
        st.builds(lambda depth: {**example, "depth": depth}, st.sampled_from([0, 7, 1, 2.5])),
    )


@st.composite
def hostile_texts(draw, schema: Schema) -> str | bytes:
    kind = draw(
        st.sampled_from(
            ["settings", "garbage", "bytes", "non-object", "duplicate", "literal", "huge", "deep"]
        )
    )
    name = draw(st.sampled_from(schema.names))
    if kind == "settings":
        text = json.dumps(
            draw(settings_with_a_bad_entry(schema)),
            allow_nan=True,
            ensure_ascii=draw(st.booleans()),
        )
    elif kind == "garbage":
        text = draw(st.text(any_chars).filter(lambda t: not is_json_object(t)))
    elif kind == "bytes":
        text = draw(st.binary().filter(lambda b: not is_json_object(b)))
    elif kind == "non-object":
        text = json_text(draw(json_values.filter(lambda v: not isinstance(v, dict))))
    elif kind == "duplicate":
        value = json_text(schema[name].default)
        text = f'{{"{name}": {value}, "{name}": {value}}}'
    elif kind == "literal":
        literal = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "9" * 5000]))
        text = f'{{"{name}": {literal}}}'
    elif kind == "huge":
        n = draw(huge_sizes)
        text = draw(
            st.sampled_from(
                [
                    f'{{"{name}": "{"x" * n}"}}',
                    f'{{"{"k" * n}": 1}}',
                    f'{{"{name}": {"9" * n}}}',
                    " " * n + "{}",
                ]
            )
        )
    else:
        n = draw(deep_levels)
        text = draw(
            st.sampled_from(
                [
                    "[" * n + "]" * n,
                    '{"a":' * n + "1" + "}" * n,
                    f'{{"{name}": ' + "[" * n + "]" * n + "}",
                    "[" * n,
                ]
            )
        )
    if isinstance(text, str) and draw(st.booleans()):
        return text.encode("utf-8", "surrogatepass")
    return text


@pytest.mark.parametrize("env_id", ENV_IDS)
@settings(max_examples=60)
@given(data=st.data())
def test_hostile_text_actions(env_for, env_id, data):
    schema = env_for(env_id, "dict").unwrapped.schema
    assert_rejected(env_for, env_id, "text", data.draw(hostile_texts(schema)))


# --- flat -----------------------------------------------------------------------------------
@st.composite
def hostile_vectors(draw, schema: Schema) -> Any:
    n = len(schema)
    kind = draw(st.sampled_from(["non-finite", "shape", "dtype", "junk"]))
    if kind == "non-finite":
        vector = np.array(draw(st.lists(st.floats(-1, 1), min_size=n, max_size=n)))
        where = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n))
        vector[where] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
        return vector.astype(draw(st.sampled_from([np.float16, np.float32, np.float64])))
    if kind == "shape":
        size = draw(st.integers(0, 3 * n).filter(lambda k: k != n))
        return np.zeros(size, dtype=np.float32).reshape(draw(st.sampled_from([(-1,), (1, -1)])))
    if kind == "dtype":
        return draw(
            st.sampled_from(
                [
                    np.zeros(n, dtype=np.complex64),
                    np.zeros(n).astype(str),
                    np.zeros(n, dtype=object),
                    np.array(["0.5"] * n),
                    np.zeros(n, dtype="datetime64[s]"),
                ]
            )
        )
    return draw(
        st.one_of(
            st.none(),
            json_scalars,
            st.just(object()),
            st.dictionaries(st.sampled_from(schema.names), st.floats(-1, 1), max_size=3),
            st.lists(json_values, max_size=n + 2).filter(lambda v: len(v) != n),
            st.just([0.0] * (n - 1) + [None]),
            st.just([0.0] * (n - 1) + [10**400]),
            st.just([[0.0], [0.0, 0.0]] + [0.0] * (n - 2)),  # ragged
            deep_levels.map(nested_list),
            st.just("0.5," * n),
        )
    )


@pytest.mark.parametrize("env_id", ENV_IDS)
@settings(max_examples=60)
@given(data=st.data())
def test_hostile_flat_actions(env_for, env_id, data):
    schema = env_for(env_id, "dict").unwrapped.schema
    assert_rejected(env_for, env_id, "flat", data.draw(hostile_vectors(schema)))


# --- dict -----------------------------------------------------------------------------------
def bad_space_values(schema: Schema, name: str):
    """Values of the dict space no setting accepts (a choice index out of range included;
    a choice's own value, e.g. 4 of heads (1, 2, 4, 8), is accepted as that choice)."""
    setting = schema[name]
    out_of_range = (
        (st.integers(len(setting.choices), 10**30) | st.integers(max_value=-1)).filter(
            lambda i: i not in setting.choices
        )
        if isinstance(setting, Categorical)
        else bad_numbers
    )
    return st.one_of(
        out_of_range,
        bad_numbers,
        st.none(),
        st.text(any_chars, max_size=30),
        st.builds(complex, st.floats(-1, 1), st.floats(0.1, 1)),
        st.just(object()),
        st.just(np.zeros(2)),
        st.lists(json_values, max_size=4),
        st.dictionaries(st.text(max_size=5), json_values, max_size=3),
        huge_sizes.map(lambda n: "x" * n),
        deep_levels.map(nested_list),
        deep_levels.map(nested_dict),
    )


@st.composite
def hostile_dicts(draw, schema: Schema) -> Any:
    space = schema.space()
    space.seed(draw(st.integers(0, 2**32 - 1)))
    valid = space.sample()
    keep = draw(st.lists(st.sampled_from(schema.names), unique=True))
    action = {name: valid[name] for name in keep}
    kind = draw(st.sampled_from(["value", "key", "unknown", "not a dict"]))
    if kind == "value":
        name = draw(st.sampled_from(schema.names))
        action[name] = draw(bad_space_values(schema, name))
    elif kind == "key":
        key = draw(
            st.one_of(
                st.integers(),
                st.none(),
                st.floats(allow_nan=False),
                st.tuples(st.sampled_from(schema.names)),
                st.sampled_from(schema.names).map(str.encode),
            )
        )
        action[key] = 0
    elif kind == "unknown":
        action[draw(unknown_names | st.sampled_from([f.prefix for f in schema.forms] or ["a"]))] = 0
    else:
        return draw(st.one_of(json_scalars, st.just(list(valid.items())), st.just(object())))
    return action


@pytest.mark.parametrize("env_id", ENV_IDS)
@settings(max_examples=60)
@given(data=st.data())
def test_hostile_dict_actions(env_for, env_id, data):
    schema = env_for(env_id, "dict").unwrapped.schema
    assert_rejected(env_for, env_id, "dict", data.draw(hostile_dicts(schema)))


# --- named cases: the message says what was wrong -------------------------------------------
DIGITS, SEQARCH = ENV_IDS
HUGE = "x" * (5 * MB)
NAMED_CASES = [
    (DIGITS, "text", "[" * 100_000 + "]" * 100_000, ["200,000 characters long", "65,536"]),
    (DIGITS, "text", "[" * 30_000 + "]" * 30_000, ["nested 30000 levels deep", "limit of 32"]),
    (DIGITS, "text", json.dumps({"optim.lr": HUGE}), ["characters long"]),
    (DIGITS, "text", b'{"optim.lr": "\xff"}', ["not UTF-8", "invalid start byte"]),
    (DIGITS, "text", '{"optim.lr": 0.1, "optim.lr": 0.2}', ["'optim.lr' twice"]),
    (DIGITS, "text", '{"optim.momentum": NaN}', ["optim.momentum=nan", "not a finite number"]),
    (DIGITS, "text", '{"optim.lr": ' + "9" * 400 + "}", ["optim.lr=999", "outside [1e-05, 1]"]),
    (DIGITS, "text", '{"optim.lr": ' + "9" * 5000 + "}", ["cannot be read", "digits"]),
    (DIGITS, "text", '{"optim": {"lr": 0.1}, "optim.lr": 0.1}', ["optim.lr' is given twice"]),
    (DIGITS, "text", '{"model": {}}', ["unknown setting 'model'"]),
    (DIGITS, "text", 7, ["must be a JSON string", "got 7"]),
    (DIGITS, "dict", {"optim.lr": HUGE}, ["optim.lr='xxx", "5,242,882 characters", "not a number"]),
    (DIGITS, "dict", {"optim.lr": nested_list(100_000)}, ["optim.lr=<list object>"]),
    (DIGITS, "dict", {"optim.lr": 10**400}, ["optim.lr=1000", "outside [1e-05, 1]"]),
    (DIGITS, "dict", {"optim.lr": math.inf}, ["optim.lr=inf is not a finite number"]),
    (DIGITS, "dict", {3: 0.1}, ["setting name 3 is not a string"]),
    (DIGITS, "dict", {HUGE: 0.1}, ["unknown setting 'xxx", "characters)", "known settings:"]),
    (DIGITS, "flat", np.full(23, np.nan), ["non-finite entries: data.scaling=nan", "and 20 more"]),
    (DIGITS, "flat", np.zeros(22), ["shape (22,), expected (23,)"]),
    (DIGITS, "flat", np.zeros(23).astype(str), ["dtype <U32", "23 finite numbers"]),
    (DIGITS, "flat", [0.5] * 22 + [None], ["not an array of real numbers (dtype object)"]),
    (DIGITS, "flat", nested_list(100_000), ["<list object> is not an array of real numbers"]),
    (SEQARCH, "text", '{"arch": {"layers": []}}', ["arch.layers has 0 layers", "1 to 6"]),
    (SEQARCH, "text", '{"arch": {"norm": {"type": "zz"}}}', ["unknown norm unit 'zz'"]),
    (SEQARCH, "text", '{"arch": {"layers": 3}}', ["arch.layers=3 is not a list"]),
    (SEQARCH, "text", json.dumps({"zz" * 400: 1}), ["known settings: arch.width", "(65 in all)"]),
    (SEQARCH, "flat", np.zeros(3), ["shape (3,), expected (65,)", "(65 in all)"]),
    (DIGITS, "text", '{"verb": "fork", "run": 0}', ["verb='fork', run=0", "forkable=True"]),
    (DIGITS, "dict", {"verb": [HUGE]}, ["verb=['xxx", "characters)", "forkable=True"]),
    (DIGITS, "dict", {"run": 10**400}, ["run=1000", "forkable=True"]),
]


@pytest.mark.parametrize("env_id, interface, action, words", NAMED_CASES)
def test_the_error_names_the_problem(env_for, env_id, interface, action, words):
    error = assert_rejected(env_for, env_id, interface, action)
    for word in words:
        assert word in error, (word, error)


# --- verbs of a forkable env ----------------------------------------------------------------
#: Verbs no forkable env takes here: unknown ones, and those that start from a run (none of
#: whose checkpoints is kept).
bad_verbs = st.one_of(
    st.sampled_from(["continue", "fork", 1, 2, "stop ", "New", 4, -1, None, 1.5, math.nan]),
    bad_json_values,
)
any_runs = st.one_of(st.integers(-5, 5), bad_json_values)


@pytest.mark.parametrize("interface", ["dict", "text"])
@settings(max_examples=60)
@given(data=st.data())
def test_hostile_verbs(env_for, interface, data):
    schema = env_for(DIGITS, "dict").unwrapped.schema
    action = {"verb": data.draw(bad_verbs), **data.draw(settings_with_a_bad_entry(schema))}
    if data.draw(st.booleans()):
        action["run"] = data.draw(any_runs)
    if interface == "text":
        action = json_text(action)
    assert_rejected(env_for, DIGITS, interface, action, forkable=True)


@settings(max_examples=60)
@given(data=st.data())
def test_hostile_flat_verbs(env_for, data):
    n = len(env_for(DIGITS, "dict").unwrapped.schema) + 2
    vector = np.array(data.draw(st.lists(st.floats(-1, 1), min_size=n, max_size=n)))
    # continue or fork (the middle of [-1, 1]), or a non-finite verb or run
    vector[0] = data.draw(st.floats(-0.49, 0.49) | st.sampled_from([math.nan, math.inf]))
    if data.draw(st.booleans()):
        vector[1] = data.draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    assert_rejected(env_for, DIGITS, "flat", vector, forkable=True)
