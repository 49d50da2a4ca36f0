"""Unit-tree models: every tree the schema accepts builds, runs and is costed exactly;
every tree it rejects gets an error naming the unit and the rule."""

import copy

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from researchgym.engine import ARCH, BudgetError, Estimate, check_budget
from researchgym.engine.settings import FFN_SLOT, MAX_DEPTH, MIXER_SLOT, NORM_SLOT, WIDTHS
from researchgym.engine.unit_tree import build_unit_tree, estimate_unit_tree, linear_recurrence
from researchgym.spaces import Bool, Categorical, Int, Schema, Setting, SettingError

SCHEMA = Schema(ARCH.settings(), forms=[ARCH])
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def values(setting: Setting) -> st.SearchStrategy:
    if isinstance(setting, Bool):
        return st.booleans()
    if isinstance(setting, Categorical):
        return st.sampled_from(setting.choices)
    if isinstance(setting, Int):
        return st.integers(setting.low, setting.high)
    raise NotImplementedError(type(setting))


def units(slot) -> st.SearchStrategy:
    def one(unit):
        full = st.fixed_dictionaries(
            {"type": st.just(unit.name)}, optional={s.name: values(s) for s in unit.settings}
        )
        return st.one_of(st.just(unit.name), full)

    return st.sampled_from(slot.units).flatmap(one)


LAYER = st.fixed_dictionaries({}, optional={"mixer": units(MIXER_SLOT), "ffn": units(FFN_SLOT)})
TREE = st.fixed_dictionaries(
    {"layers": st.lists(LAYER, min_size=1, max_size=MAX_DEPTH)},
    optional={
        "width": st.sampled_from(WIDTHS),
        "position": st.sampled_from(("none", "learned")),
        "norm": units(NORM_SLOT),
        "residual": st.sampled_from(("none", "scaled", "layer_scale")),
    },
)


def softmax_attention_flops(metaprogram, seq_len):
    """FLOPs of softmax attention's scores and mixing (the CPU flop counter does not see them)."""
    tree = ARCH.collapse(metaprogram, compact=False)
    n = sum(layer["mixer"]["type"] == "attention" for layer in tree["layers"])
    return n * 4 * seq_len * seq_len * tree["width"]


@PROPERTY
@given(tree=TREE, vocab=st.integers(2, 40), seq_len=st.integers(1, 20))
def test_accepted_trees_build_run_and_are_costed_exactly(tree, vocab, seq_len):
    m = SCHEMA.validate({"arch": tree})
    torch.manual_seed(0)
    model = build_unit_tree(m, vocab, seq_len, vocab)
    est = estimate_unit_tree(m, vocab, seq_len, vocab)
    assert est.params == sum(p.numel() for p in model.parameters())
    assert est.params == sum(params for _, params, _ in est.units.values())

    tokens = torch.randint(0, vocab, (2, seq_len))
    logits = model(tokens)
    assert logits.shape == (2, seq_len, vocab)
    assert torch.isfinite(logits).all()
    logits.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(tokens[:1])
    assert est.flops == counter.get_total_flops() + softmax_attention_flops(m, seq_len)


@PROPERTY
@given(tree=TREE, seq_len=st.integers(2, 12))
def test_every_design_is_causal(tree, seq_len):
    m = SCHEMA.validate({"arch": tree})
    torch.manual_seed(0)
    model = build_unit_tree(m, 8, seq_len, 8).eval()
    tokens = torch.randint(0, 8, (1, seq_len))
    changed = tokens.clone()
    changed[0, -1] = (changed[0, -1] + 1) % 8
    with torch.no_grad():
        before, after = model(tokens), model(changed)
    torch.testing.assert_close(before[:, :-1], after[:, :-1], rtol=1e-5, atol=1e-5)


@PROPERTY
@given(tree=TREE)
def test_trees_round_trip_through_flat_settings(tree):
    m = SCHEMA.validate({"arch": tree})
    assert SCHEMA.validate(SCHEMA.to_nested(m)) == m
    assert SCHEMA.decode(SCHEMA.encode(m)) == m


# --- rejection ---------------------------------------------------------------------------
def _mutations(tree: dict, draw) -> tuple[dict, str, str]:
    """A broken copy of a valid tree, the path of the broken unit, and the rule it breaks."""
    tree = copy.deepcopy(tree)
    i = draw(st.integers(0, len(tree["layers"]) - 1))
    layer = tree["layers"][i]
    path = f"arch.layers[{i}]"
    kind = draw(
        st.sampled_from(
            [
                "unknown_unit",
                "foreign_setting",
                "range",
                "choice",
                "no_type",
                "not_unit",
                "unknown_item",
                "depth",
                "width",
            ]
        )
    )
    if kind == "unknown_unit":
        layer["mixer"] = draw(st.sampled_from(["lstm", "Attention", "mamba", ""]))
        return tree, f"{path}.mixer", "unknown mixer unit"
    if kind == "foreign_setting":
        layer["mixer"] = {"type": "conv", "heads": 2}
        return tree, f"{path}.mixer", "has no setting 'heads'"
    if kind == "range":
        layer["mixer"] = {
            "type": "conv",
            "kernel": draw(st.one_of(st.integers(-5, 1), st.integers(9, 99))),
        }
        return tree, f"{path}.mixer.kernel", "is outside [2, 8]"
    if kind == "choice":
        layer["ffn"] = {"type": "swiglu", "mult": draw(st.sampled_from([0, 3, 8]))}
        return tree, f"{path}.ffn.mult", "is not an allowed choice"
    if kind == "no_type":
        layer["ffn"] = {"mult": 2}
        return tree, f"{path}.ffn", "no 'type'"
    if kind == "not_unit":
        layer["mixer"] = draw(st.sampled_from([3, None, 1.5, ["attention"]]))
        return tree, f"{path}.mixer", "is not a unit"
    if kind == "unknown_item":
        layer["mlp"] = "swiglu"
        return tree, path, "unknown layer item 'mlp'"
    if kind == "depth":
        tree["layers"] = tree["layers"] * (MAX_DEPTH + 1)
        return tree, "arch.layers", "rule: depth range"
    tree["width"] = draw(st.sampled_from([0, 8, 100, 1024]))
    return tree, "arch.width", "is not an allowed choice"


@PROPERTY
@given(data=st.data())
def test_rejected_trees_name_the_unit_and_the_rule(data):
    tree = data.draw(TREE)
    broken, path, rule = _mutations(tree, data.draw)
    with pytest.raises(SettingError) as err:
        SCHEMA.validate({"arch": broken})
    message = str(err.value)
    assert path in message and rule in message, message


@PROPERTY
@given(tree=TREE, budget=st.integers(1_000, 200_000))
def test_parameter_budget_rejects_with_the_largest_units(tree, budget):
    m = SCHEMA.validate({"arch": tree})
    est = estimate_unit_tree(m, 32, 16, 32)
    cost = Estimate(est.params, est.flops, 0, 0, 0, est.units)
    if est.params <= budget:
        check_budget(cost, max_params=budget)
        return
    with pytest.raises(BudgetError) as err:
        check_budget(cost, max_params=budget)
    message = str(err.value)
    assert "rule: parameter budget" in message and f"max_params={budget:,}" in message
    biggest = max(est.units, key=lambda path: est.units[path][1])
    assert biggest in message


def test_compute_and_step_budgets_name_their_rule():
    cost = Estimate(params=10, flops=100, train_flops=3_000, train_examples=10, train_steps=50)
    with pytest.raises(BudgetError, match="rule: compute budget"):
        check_budget(cost, max_train_flops=1_000)
    with pytest.raises(BudgetError, match="rule: step budget"):
        check_budget(cost, max_train_steps=49)
    check_budget(cost, max_params=10, max_train_flops=3_000, max_train_steps=50)


# --- units ------------------------------------------------------------------------------
def test_linear_recurrence_matches_a_loop():
    torch.manual_seed(0)
    decay, inputs = torch.rand(3, 37, 5), torch.randn(3, 37, 5)
    h, expected = torch.zeros(3, 5), []
    for t in range(37):
        h = decay[:, t] * h + inputs[:, t]
        expected.append(h)
    torch.testing.assert_close(linear_recurrence(decay, inputs), torch.stack(expected, dim=1))


def test_default_tree_is_a_small_two_layer_transformer():
    m = SCHEMA.defaults()
    tree = SCHEMA.to_nested(m)["arch"]
    assert [layer["mixer"]["type"] for layer in tree["layers"]] == ["attention", "attention"]
    assert tree["layers"][0]["mixer"]["rope"] is True
    assert estimate_unit_tree(m, 32, 18, 32).params < 30_000


def test_longer_inputs_than_the_model_was_built_for_are_refused():
    model = build_unit_tree(SCHEMA.defaults(), 8, 4, 8)
    with pytest.raises(ValueError, match="longer than the model's seq_len=4"):
        model(torch.zeros(1, 5, dtype=torch.long))
