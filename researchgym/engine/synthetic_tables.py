"""Seeded synthetic tables: an unbounded family of tabular tasks for training planners.

``synth_cls?seed=K`` and ``synth_reg?seed=K`` are tasks whose whole shape is drawn
from ``K``: number of rows (300 to 1,500) and columns (5 to 40), informative
columns, classes (2 to 5), class separation and label noise for classification
(scikit-learn's ``make_classification``); for regression, the non-linear
Friedman #1 function of five columns plus noise columns (``make_friedman1``)
with a drawn noise level. The same seed always gives the same table, so planners
can be trained on one set of seeds and tested on others they never saw.

``rows=N`` fixes the number of rows instead (``synth_cls?seed=K&rows=2500``: 500
validation rows), every other draw unchanged; tasks whose validation score should
not be dominated by the noise of a small split (leaderboards) use it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import datasets as skdatasets

from researchgym.engine.splits import int_params
from researchgym.engine.tasks import TaskError

__all__ = ["SYNTHETIC_KINDS", "generate", "validate_params"]

#: dataset name -> kind of problem
SYNTHETIC_KINDS = {"synth_cls": "classification", "synth_reg": "regression"}
DEFAULTS = {"seed": 0, "rows": 0}  # rows=0: drawn from the seed
LIMITS = {"seed": (0, 2**31 - 1), "rows": (0, 100_000)}
MIN_ROWS = 50  # enough for three stratified splits of up to 5 classes
_STREAM = {"synth_cls": 1, "synth_reg": 2}  # independent draws for the two families


def validate_params(name: str, **params: Any) -> dict[str, int]:
    """The task's parameters as integers (``seed``, ``rows``), with a clear error for bad ones."""
    out = int_params(name, params, DEFAULTS, LIMITS)
    if 0 < out["rows"] < MIN_ROWS:
        raise TaskError(f"{name}: rows={out['rows']} is below {MIN_ROWS}; give more rows or 0")
    return out


def generate(name: str, **params: Any) -> tuple[np.ndarray, np.ndarray]:
    """Draw the table ``name?seed=K`` stands for: ``(x, y)`` as float arrays (int labels)."""
    checked = validate_params(name, **params)
    rng = np.random.default_rng([checked["seed"], _STREAM[name]])
    n_samples = int(rng.integers(300, 1501))
    n_samples = checked["rows"] or n_samples
    n_features = int(rng.integers(5, 41))
    random_state = int(rng.integers(2**31 - 1))
    if SYNTHETIC_KINDS[name] == "regression":
        x, y = skdatasets.make_friedman1(
            n_samples, n_features, noise=float(rng.uniform(0.1, 3.0)), random_state=random_state
        )
        return x, y
    n_informative = int(rng.integers(2, min(n_features, 10) + 1))
    n_redundant = int(rng.integers(0, n_features - n_informative + 1))
    n_classes = int(rng.integers(2, min(5, 2**n_informative) + 1))
    clusters = max(1, min(int(rng.integers(1, 4)), 2**n_informative // n_classes))
    x, y = skdatasets.make_classification(
        n_samples,
        n_features,
        n_informative=n_informative,
        n_redundant=n_redundant,
        n_classes=n_classes,
        n_clusters_per_class=clusters,
        class_sep=float(rng.uniform(0.5, 1.5)),
        flip_y=float(rng.uniform(0.0, 0.1)),
        random_state=random_state,
    )
    return x, y
