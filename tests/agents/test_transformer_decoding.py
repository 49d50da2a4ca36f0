"""Constrained decoding of the transformer planner with several candidates, on every suite.

The models are tiny and untrained: decoding must be valid whatever the weights say.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("transformers")

import torch
from planner_testing import assert_in_space

from agents.transformer_planner import TrainConfig, TransformerPlanner, build_model
from researchgym.envs.suites import SUITES
from researchgym.serialize import Serializer, Step
from researchgym.spaces import Categorical, Float, Int

SCHEMAS = {name: suite.make_schema() for name, suite in SUITES.items()}
FEATURES = [1.0, 2.0, 1.0, 0.0, 0.0]
N_CANDIDATES = 4


def _planner(suite: str, seed: int, temperature: float = 1.0) -> TransformerPlanner:
    serializer = Serializer(SCHEMAS[suite], [f"researchgym/{suite}"], n_bins=8, score_bins=8)
    # n_positions leaves room for a header, two steps and a proposal of the largest schema.
    config = TrainConfig(n_layer=1, n_head=2, n_embd=16, n_positions=1024)
    with torch.random.fork_rng():  # seeded weights without touching the global generator
        torch.manual_seed(seed)
        model = build_model(serializer, config)
    return TransformerPlanner(
        model=model, serializer=serializer, n_candidates=N_CANDIDATES, temperature=temperature
    )


def _pins(schema, data) -> dict:
    pins = {}
    for name in data.draw(st.lists(st.sampled_from(schema.names), max_size=4, unique=True)):
        setting = schema[name]
        if isinstance(setting, Categorical):
            pins[name] = data.draw(st.sampled_from(setting.choices))
        elif isinstance(setting, Int):
            pins[name] = data.draw(st.integers(setting.low, setting.high))
        else:
            assert isinstance(setting, Float)
            pins[name] = data.draw(st.floats(setting.low, setting.high))
    return pins


@pytest.mark.parametrize("suite", sorted(SUITES))
@settings(max_examples=3)
@given(data=st.data(), seed=st.integers(0, 2**16), temperature=st.sampled_from([0.5, 1.0, 5.0]))
def test_every_candidate_is_valid_on_every_suite(suite, data, seed, temperature) -> None:
    schema = SCHEMAS[suite]
    planner = _planner(suite, seed % 5, temperature)
    pins = _pins(schema, data)
    planner.reset(schema, seed=seed, fixed=pins)
    planner.features = FEATURES
    for step in range(2):
        candidates = planner.decode(planner._context(), N_CANDIDATES)
        assert len(candidates) == N_CANDIDATES
        for metaprogram, predicted in candidates:
            active_pins = {k: schema[k].validate(v) for k, v in pins.items() if k in metaprogram}
            assert_in_space(schema, metaprogram, active_pins)
            assert -1.0 <= predicted <= 1.0
        proposal = planner.propose({"task": FEATURES})
        assert_in_space(
            schema, proposal, {k: schema[k].validate(v) for k, v in pins.items() if k in proposal}
        )
        planner.observe(
            proposal, 0.5, {"status": "ok" if step else "diverged", "metrics": {"score": 0.5}}
        )


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_candidates_decoded_together_score_like_each_alone(suite) -> None:
    """Candidates on different conditional branches share one batch; each one's predicted
    score equals a forward pass over its own tokens (masks and positions are right)."""
    schema = SCHEMAS[suite]
    planner = _planner(suite, 0, temperature=5.0)
    planner.reset(schema, seed=1)
    planner.features = FEATURES
    planner.observe(schema.defaults(), 0.3, {"status": "ok", "metrics": {"score": 0.3}})
    context = planner._context()
    candidates = planner.decode(context, N_CANDIDATES)
    assert len({str(sorted(c.items())) for c, _ in candidates}) > 1  # they differ
    s = planner.serializer
    score_ids = [s.vocab[t] for t in s.score_tokens]
    for metaprogram, predicted in candidates:
        ids = context + s.encode(s.step_tokens(Step(metaprogram, 0.0, "ok"))[1:-1])
        with torch.no_grad():
            logits = planner.model(torch.tensor([ids])).logits[0, -1]
        expected = torch.softmax(logits[score_ids], -1).numpy() @ s.score_values()
        assert predicted == pytest.approx(float(expected), abs=1e-5)
