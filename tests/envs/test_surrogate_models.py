"""Surrogate models: the forest's numpy predictions, noise by score band, the suite's model."""

from __future__ import annotations

import json
import math

import gymnasium as gym
import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.ensemble import ExtraTreesRegressor

from researchgym.envs.replay import load_runs
from researchgym.envs.surrogate import (
    Forest,
    SurrogateModel,
    _noise_bands,
    fit_surrogate,
    is_held_out,
)
from researchgym.errors import ConfigError
from researchgym.evaluation import SUITE_MODELS, SUITE_RUNS
from researchgym.spaces.sampling import random_points

SYNTHETIC = "researchgym/Synthetic-v0"


def test_forest_predicts_what_scikit_learn_predicts() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(300, 6))
    y = np.sin(3 * x[:, 0]) + x[:, 1] ** 2 + 0.1 * rng.normal(size=300)
    forest = Forest.fit(x, y, seed=4, trees=30)
    fitted = ExtraTreesRegressor(30, min_samples_leaf=2, max_features=0.5, random_state=4).fit(x, y)
    queries = rng.uniform(-1.5, 1.5, size=(500, 6))  # inside and outside the data
    np.testing.assert_allclose(forest.predict(queries), fitted.predict(queries), rtol=1e-12)
    # An average of recorded targets never leaves their range.
    assert y.min() <= forest.predict(queries).min() and forest.predict(queries).max() <= y.max()


def _runs(schema, n: int = 120) -> list[dict]:
    """Recorded-looking runs of ``n`` metaprograms x 2 seeds: good ones agree across seeds."""
    rows = []
    points = random_points(schema, seed=0)
    rng = np.random.default_rng(1)
    for _ in range(n):
        metaprogram = schema.validate(next(points))
        quality = 1.0 - abs(math.log10(metaprogram["optim.lr"]) + 2.5) / 3.0
        for _seed in range(2):
            score = quality + rng.normal(0.0, 0.2 * (1.0 - quality) + 0.001)
            rows.append(
                {
                    "task": "wine",
                    "metaprogram": json.dumps(metaprogram),
                    "status": "ok",
                    "val_metrics": json.dumps({"score": float(np.clip(score, -1, 1))}),
                    "cost_seconds": 1.0 + metaprogram["train.epochs"],
                    "cost_samples": 100 * metaprogram["train.epochs"],
                }
            )
    return rows


def test_a_forest_surrogate_saves_loads_and_models_noise_by_score(tmp_path) -> None:
    schema = gym.make("researchgym/Tabular-v0", store=False).unwrapped.schema
    model = fit_surrogate(_runs(schema), schema, "researchgym/Tabular-v0", score_model="forest")
    assert isinstance(model.gps["score"], Forest)
    bands = model.noise["wine"]
    assert len(bands["std"]) == len(bands["edges"]) + 1
    # Bad metaprograms were made noisier than good ones, and the bands see it.
    assert bands["std"][0] > 5 * bands["std"][-1]
    assert model.noise_at("wine", -1.0) == bands["std"][0]
    assert model.noise_at("wine", 1.0) == bands["std"][-1]
    assert model.noise_at("another task", 0.5) == model.noise_std

    loaded = SurrogateModel.load(model.save(tmp_path / "model.npz"))
    assert isinstance(loaded.gps["score"], Forest) and loaded.noise == model.noise
    x = model.features(np.stack([schema.encode(schema.validate({}))] * 3), ["wine"] * 3)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_noise_bands_need_enough_repeated_metaprograms() -> None:
    assert _noise_bands([[0.5, 0.6]] * 20) is None  # 5 per band needs 50 repeated
    assert _noise_bands([[0.5]] * 100) is None  # seen once: no seed-to-seed spread


def test_unknown_score_model_is_refused() -> None:
    schema = gym.make("researchgym/Tabular-v0", store=False).unwrapped.schema
    with pytest.raises(ConfigError, match="score_model='tree' is not one of"):
        fit_surrogate(_runs(schema, 20), schema, "researchgym/Tabular-v0", score_model="tree")


def test_the_fast_suites_surrogate_fidelity_on_held_out_runs() -> None:
    """Recompute the shipped suite model's held-out Spearman from the suite's runs."""
    model = SurrogateModel.load(SUITE_MODELS / "Synthetic-v0.npz")
    schema = gym.make(SYNTHETIC, store=False).unwrapped.schema
    held_out = [
        r
        for r in load_runs(SUITE_RUNS, SYNTHETIC)
        if r["status"] == "ok" and is_held_out(r["task"], r["metaprogram"])
    ]
    vectors = np.stack([schema.encode(json.loads(r["metaprogram"])) for r in held_out])
    predicted = model.predict(model.features(vectors, [r["task"] for r in held_out]))[:, 0]
    recorded = [json.loads(r["val_metrics"])["score"] for r in held_out]
    # Trees compare inputs with thresholds exactly, so only an encoding that differs in the
    # last digits on another machine could move a prediction: 1e-4 still catches another
    # model or other runs.
    assert spearmanr(predicted, recorded).statistic == pytest.approx(
        model.fidelity.spearman, abs=1e-4
    )
    assert model.fidelity.spearman >= 0.8
    assert set(model.noise) == set(model.tasks)
