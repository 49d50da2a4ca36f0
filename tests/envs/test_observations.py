"""Observations of the dict and flat interfaces: the flat one is the dict one flattened."""

from __future__ import annotations

import math

import numpy as np
import pytest
from gymnasium import spaces
from hypothesis import given, settings
from hypothesis import strategies as st

from researchgym.envs.interfaces import TASK_FEATURES, CampaignView, DictInterface, FlatInterface
from researchgym.envs.suites import get_suite

SCHEMA = get_suite("tabular").make_schema()


def reference_observe(history: int, view: CampaignView) -> dict[str, np.ndarray]:
    """The dict observation built part by part."""
    settings_ = np.zeros((history, len(SCHEMA)), dtype=np.float32)
    scores = np.zeros(history, dtype=np.float32)
    mask = np.zeros(history, dtype=np.float32)
    with np.errstate(over="ignore"):  # a huge score is inf as a float32, 1 once clipped
        for i, step in enumerate(view.history[-history:]):
            settings_[i] = step["encoded"]
            scores[i] = -1.0 if step["score"] is None else step["score"]
            mask[i] = 1.0
    features = np.log1p(np.array([view.task_features[k] for k in TASK_FEATURES], dtype=np.float32))
    best = -1.0 if view.best_score is None else view.best_score
    return {
        "task": np.clip(features, 0.0, 20.0),
        "history_settings": settings_,
        "history_scores": np.clip(scores, -1.0, 1.0),
        "history_mask": mask,
        "best_score": np.array([np.clip(best, -1.0, 1.0)], dtype=np.float32),
        "budget_left": np.array([view.budget_left / view.budget], dtype=np.float32),
    }


scores = st.one_of(
    st.none(),
    st.floats(0.0, 1.0),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([-1.0, 1.0, -0.0, 1.0000001, -1.0000001, math.nan]),
)


@st.composite
def views(draw) -> CampaignView:
    budget = draw(st.integers(1, 50))
    n_steps = draw(st.integers(0, budget))
    history = []
    for _ in range(n_steps):
        if draw(st.booleans()):
            vector = draw(
                st.lists(st.floats(-1.0, 1.0), min_size=len(SCHEMA), max_size=len(SCHEMA))
            )
            metaprogram = SCHEMA.decode(vector)
            encoded = SCHEMA.encode_valid(metaprogram)
        else:
            metaprogram, encoded = None, np.zeros(len(SCHEMA), np.float32)
        history.append(
            {"settings": metaprogram, "encoded": encoded, "score": draw(scores), "status": "ok"}
        )
    features = {
        k: draw(st.one_of(st.integers(0, 10**9), st.floats(0.0, 1e12))) for k in TASK_FEATURES
    }
    return CampaignView(
        task="wine",
        task_description="",
        task_features=features,
        budget=budget,
        steps_done=n_steps,
        best_score=draw(scores),
        history=history,
    )


def assert_same_bits(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes(), (got, want)


@settings(max_examples=200)
@given(view=views(), history=st.integers(1, 10))
def test_flat_observation_is_the_dict_observation_flattened(view, history):
    dict_interface, flat_interface = DictInterface(SCHEMA, history), FlatInterface(SCHEMA, history)
    want = reference_observe(history, view)
    got = dict_interface.observe(view)
    assert list(got) == list(want)
    for key in want:
        assert_same_bits(got[key], want[key])
    flat = flat_interface.observe(view)
    assert_same_bits(flat, spaces.flatten(dict_interface.observation_space, want))
    assert flat_interface.observation_space.shape == flat.shape


def test_observations_are_fresh_arrays():
    view = CampaignView(
        task="wine",
        task_description="",
        task_features={k: 3.0 for k in TASK_FEATURES},
        budget=4,
        steps_done=1,
        best_score=0.5,
        history=[
            {
                "settings": None,
                "encoded": np.zeros(len(SCHEMA), np.float32),
                "score": 0.5,
                "status": "ok",
            }
        ],
    )
    dict_interface, flat_interface = DictInterface(SCHEMA, 3), FlatInterface(SCHEMA, 3)
    first_dict, first_flat = dict_interface.observe(view), flat_interface.observe(view)
    for part in first_dict.values():
        part[...] = 9.0
    first_flat[:] = 9.0
    want = reference_observe(3, view)
    for key, part in dict_interface.observe(view).items():
        assert_same_bits(part, want[key])
    assert_same_bits(
        flat_interface.observe(view), spaces.flatten(dict_interface.observation_space, want)
    )


def test_task_features_changed_in_place_are_seen():
    view = CampaignView(
        task="wine", task_description="", task_features={k: 3.0 for k in TASK_FEATURES}, budget=4
    )
    interface = FlatInterface(SCHEMA, 2)
    interface.observe(view)
    view.task_features["n_train"] = 1000.0
    space = DictInterface(SCHEMA, 2).observation_space
    assert_same_bits(interface.observe(view), spaces.flatten(space, reference_observe(2, view)))


@pytest.mark.parametrize("history", [1, 8])
def test_an_episode_longer_than_the_window(history):
    steps = [
        {
            "settings": None,
            "encoded": np.full(len(SCHEMA), i / 10, np.float32),
            "score": i / 10,
            "status": "ok",
        }
        for i in range(12)
    ]
    view = CampaignView(
        task="wine",
        task_description="",
        task_features={k: 1.0 for k in TASK_FEATURES},
        budget=12,
        steps_done=12,
        best_score=1.1,
        history=steps,
    )
    want = reference_observe(history, view)
    got = DictInterface(SCHEMA, history).observe(view)
    for key in want:
        assert_same_bits(got[key], want[key])
