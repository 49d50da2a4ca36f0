"""Surrogate-v0: predict a step's metrics and cost instead of training.

Models fitted with scikit-learn on recorded runs predict each target: inputs are
the metaprogram's flat encoding and a one-hot task; targets are the validation
score averaged over a metaprogram's seeds, and the logs of seconds and samples.
The costs are always predicted by Gaussian processes (Matern 5/2 kernel with one
length scale per input; cost is smooth); the score by a Gaussian process too, or
by a forest of extremely randomized trees (``score_model="forest"``). A GP's mean
can rise above every recorded score far from the data, and an optimizer finds
where; a forest averages recorded scores, so it never promises more than was
measured, which suits a benchmark that planners optimize. Predictions are
computed with numpy from the saved arrays, so one step takes microseconds and
needs no pickles. Seed-to-seed noise is modelled
from runs recorded with several seeds and added to each prediction from the
step's seed. It depends on how good a metaprogram is (an unstable one may reach a
good score with one seed and chance with the next, while near the best scores
seeds agree closely), so it is measured per task in bands of the score: the
pooled standard deviation within a metaprogram, over the metaprograms whose mean
score lies in each band, and a prediction takes its band's. Only runs with
status ``"ok"`` are fitted; the surrogate always answers ``"ok"``.

A forkable surrogate env (``forkable=True``) answers ``new`` at any ``train.epochs``
(one of the inputs, though the shipped models were fitted on runs of one
``train.epochs`` per env, so they predict the same score for every fidelity) and
``stop``; ``continue`` and ``fork`` get status ``"invalid_action"``: the model predicts
a run's final metrics from its settings, not the curve of a run trained on, and a
predicted run has no weights. Replay-v0 made with ``forkable=True`` continues runs
from recorded curves.

Fidelity is measured on held-out (task, metaprogram) pairs, chosen by a hash of
both (so anyone can recompute it; every seed of a pair is held out together):
Spearman and Kendall rank correlations between predicted and recorded
validation scores of every held-out run. The saved model is the one fitted
without them.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from researchgym.engine import Executor, Result, Start, TaskRef
from researchgym.errors import ConfigError, shorten
from researchgym.spaces import Schema

__all__ = [
    "SCORE_MODELS",
    "Fidelity",
    "Forest",
    "GaussianProcess",
    "SurrogateExecutor",
    "SurrogateModel",
    "fit_surrogate",
    "is_held_out",
    "make_surrogate_env",
]

TARGETS = ("score", "log_seconds", "log_samples")
SCORE_MODELS = ("gp", "forest")
HELD_OUT_EVERY = 5  # one metaprogram in five is held out
NOISE_BANDS = tuple(
    q / 10 for q in range(1, 10)
)  # deciles of a task's scores bound its noise bands


def is_held_out(task: str, metaprogram_json: str) -> bool:
    """Whether a run belongs to the held-out split used to measure fidelity."""
    digest = hashlib.sha256(f"{task}|{metaprogram_json}".encode()).digest()
    return digest[0] % HELD_OUT_EVERY == 0


@dataclass
class Fidelity:
    """Rank agreement of predicted and recorded validation scores on held-out runs."""

    spearman: float
    kendall: float
    n_test: int
    n_train: int


@dataclass
class GaussianProcess:
    """Posterior mean of a fitted GP: ``y_mean + y_std * k(x, X) @ alpha``."""

    x_train: np.ndarray
    alpha: np.ndarray
    length_scale: np.ndarray
    amplitude: float
    y_mean: float
    y_std: float

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, seed: int = 0) -> GaussianProcess:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        kernel = ConstantKernel() * Matern(length_scale=np.ones(x.shape[1]), nu=2.5) + WhiteKernel()
        gp = GaussianProcessRegressor(kernel, normalize_y=True, random_state=seed)
        with warnings.catch_warnings():  # irrelevant inputs hit the length-scale bound
            warnings.simplefilter("ignore", ConvergenceWarning)
            gp.fit(x, y)
        product = gp.kernel_.k1
        return cls(
            x_train=gp.X_train_,
            alpha=gp.alpha_.reshape(-1),
            length_scale=np.asarray(product.k2.length_scale, dtype=np.float64),
            amplitude=float(product.k1.constant_value),
            y_mean=float(np.ravel(gp._y_train_mean)[0]),
            y_std=float(np.ravel(gp._y_train_std)[0]),
        )

    def __post_init__(self) -> None:
        self._scaled = self.x_train / self.length_scale
        self._norms = (self._scaled**2).sum(axis=1)

    def predict(self, x: np.ndarray) -> np.ndarray:
        scaled = x / self.length_scale
        d2 = (scaled**2).sum(axis=1)[:, None] + self._norms[None, :] - 2.0 * scaled @ self._scaled.T
        r = np.sqrt(5.0 * np.maximum(d2, 0.0))
        k = self.amplitude * (1.0 + r + r * r / 3.0) * np.exp(-r)
        return self.y_mean + self.y_std * (k @ self.alpha)

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {
            f"{prefix}_x": self.x_train,
            f"{prefix}_alpha": self.alpha,
            f"{prefix}_length_scale": self.length_scale,
            f"{prefix}_stats": np.array([self.amplitude, self.y_mean, self.y_std]),
        }

    @classmethod
    def from_arrays(cls, arrays: Any, prefix: str) -> GaussianProcess:
        amplitude, y_mean, y_std = arrays[f"{prefix}_stats"]
        return cls(
            arrays[f"{prefix}_x"],
            arrays[f"{prefix}_alpha"],
            arrays[f"{prefix}_length_scale"],
            float(amplitude),
            float(y_mean),
            float(y_std),
        )


@dataclass
class Forest:
    """Mean prediction of a fitted forest of regression trees, as flat node arrays.

    Node ``i``'s children are ``left[i]`` and ``right[i]`` (``-1`` at a leaf); it sends
    ``x`` left when ``x[feature[i]] <= threshold[i]``; a leaf predicts ``value[i]``.
    ``roots`` are the trees' first nodes.
    """

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray
    roots: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, seed: int = 0, trees: int = 200) -> Forest:
        from sklearn.ensemble import ExtraTreesRegressor

        fitted = ExtraTreesRegressor(
            trees, min_samples_leaf=2, max_features=0.5, random_state=seed
        ).fit(x, y)
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("left", "right", "feature")}
        parts |= {"threshold": [], "value": []}
        roots, offset = [], 0
        for estimator in fitted.estimators_:
            tree = estimator.tree_
            for name, children in (("left", tree.children_left), ("right", tree.children_right)):
                parts[name].append(np.where(children >= 0, children + offset, -1))
            parts["feature"].append(np.maximum(tree.feature, 0))  # leaves: any valid column
            parts["threshold"].append(tree.threshold)
            parts["value"].append(tree.value.reshape(-1))
            roots.append(offset)
            offset += tree.node_count
        flat = {name: np.concatenate(arrays) for name, arrays in parts.items()}
        for name in ("left", "right", "feature"):
            flat[name] = flat[name].astype(np.int32)
        return cls(**flat, roots=np.array(roots, dtype=np.int32))

    def predict(self, x: np.ndarray) -> np.ndarray:
        nodes = np.tile(self.roots, (len(x), 1))
        rows = np.arange(len(x))[:, None]
        while (inner := self.left[nodes] >= 0).any():
            goes_left = x[rows, self.feature[nodes]] <= self.threshold[nodes]
            child = np.where(goes_left, self.left[nodes], self.right[nodes])
            nodes = np.where(inner, child, nodes)
        return self.value[nodes].mean(axis=1)

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}_{k}": v for k, v in vars(self).items()}

    @classmethod
    def from_arrays(cls, arrays: Any, prefix: str) -> Forest:
        return cls(**{k: arrays[f"{prefix}_{k}"] for k in cls.__dataclass_fields__})


@dataclass
class SurrogateModel:
    """One GP per target plus everything needed to use them.

    Attributes:
        env_id: the source env.
        tasks: task names, in one-hot order.
        settings: setting names of the source schema, in encoding order.
        gps: a :class:`GaussianProcess` (or, for the score, a :class:`Forest`) per name
            in ``TARGETS``.
        noise_std: seed-to-seed standard deviation of the score, pooled over everything.
        noise: per task, the noise in bands of the score: ``{"edges": [...], "std": [...]}``
            (one more std than edges); tasks without one (and models saved before bands
            were measured) use ``noise_std``.
        fidelity: measured on held-out metaprograms.
    """

    env_id: str
    tasks: list[str]
    settings: list[str]
    gps: dict[str, GaussianProcess | Forest]
    noise_std: float
    fidelity: Fidelity
    noise: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def features(self, vectors: np.ndarray, tasks: list[str]) -> np.ndarray:
        """Model inputs from flat encodings (n, d) and task names (n)."""
        return _features(vectors, tasks, self.tasks)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted targets (n, 3), in ``TARGETS`` order."""
        return np.stack([self.gps[t].predict(x) for t in TARGETS], axis=1)

    def noise_at(self, task: str, score: float) -> float:
        """Seed-to-seed standard deviation of the score of a metaprogram scoring ``score``."""
        bands = self.noise.get(task)
        if bands is None:
            return self.noise_std
        return bands["std"][int(np.searchsorted(bands["edges"], score, side="right"))]

    def save(self, path: str | Path) -> Path:
        """Write the model as ``.npz`` arrays plus a JSON card with its fidelity."""
        path = Path(path).with_suffix(".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        for target, gp in self.gps.items():
            arrays |= gp.arrays(target)
        np.savez_compressed(path, **arrays)  # type: ignore[arg-type]  # numpy: **kwds vs allow_pickle
        card = {
            "env_id": self.env_id,
            "tasks": self.tasks,
            "settings": self.settings,
            "score_model": "forest" if isinstance(self.gps["score"], Forest) else "gp",
            "noise_std": self.noise_std,
            "noise": self.noise,
            "fidelity": asdict(self.fidelity),
            **self.extra,
        }
        path.with_suffix(".json").write_text(json.dumps(card, indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> SurrogateModel:
        """Read a model written by :meth:`save` (numeric arrays only, no pickles)."""
        path = Path(path).with_suffix(".npz")
        card = json.loads(path.with_suffix(".json").read_text())
        with np.load(path, allow_pickle=False) as arrays:
            gps: dict[str, GaussianProcess | Forest] = {
                t: GaussianProcess.from_arrays(arrays, t) for t in TARGETS[1:]
            }
            score_model = Forest if card.get("score_model") == "forest" else GaussianProcess
            gps["score"] = score_model.from_arrays(arrays, "score")
        known = {"env_id", "tasks", "settings", "score_model", "noise_std", "noise", "fidelity"}
        return cls(
            env_id=card["env_id"],
            tasks=card["tasks"],
            settings=card["settings"],
            gps=gps,
            noise_std=card["noise_std"],
            noise=card.get("noise", {}),
            fidelity=Fidelity(**card["fidelity"]),
            extra={k: v for k, v in card.items() if k not in known},
        )


def _features(vectors: np.ndarray, tasks: list[str], all_tasks: list[str]) -> np.ndarray:
    onehot = np.zeros((len(tasks), len(all_tasks)))
    for i, task in enumerate(tasks):
        onehot[i, all_tasks.index(task)] = 1.0
    return np.concatenate(
        [np.asarray(vectors, dtype=np.float64).reshape(len(tasks), -1), onehot], axis=1
    )


def _pooled_noise(groups: list[list[float]]) -> float:
    num = sum(float(np.var(v, ddof=1)) * (len(v) - 1) for v in groups if len(v) > 1)
    den = sum(len(v) - 1 for v in groups if len(v) > 1)
    return math.sqrt(num / den) if den else 0.0


def _noise_bands(groups: list[list[float]]) -> dict[str, list[float]] | None:
    """Pooled noise of the metaprograms in each band of their mean score (see module doc).

    ``None`` when some band would hold fewer than 5 metaprograms measured twice or more.
    """
    repeated = [g for g in groups if len(g) > 1]
    means = np.array([np.mean(g) for g in repeated])
    if len(repeated) < 5 * (len(NOISE_BANDS) + 1):
        return None
    edges = np.quantile(means, NOISE_BANDS)
    band = np.searchsorted(edges, means, side="right")
    members = [
        [g for g, b in zip(repeated, band, strict=True) if b == i] for i in range(len(edges) + 1)
    ]
    if min(len(m) for m in members) < 5:
        return None
    return {"edges": edges.tolist(), "std": [_pooled_noise(m) for m in members]}


def fit_surrogate(
    runs: list[dict[str, Any]],
    schema: Schema,
    env_id: str,
    *,
    cost_points: int = 400,
    score_model: str = "gp",
    seed: int = 0,
) -> SurrogateModel:
    """Fit the GPs on the training split and measure fidelity on the held-out split.

    Args:
        runs: recorded rows (see ``researchgym.envs.replay.load_runs``).
        schema: the source env's schema.
        env_id: the source env's id.
        cost_points: metaprograms the cost GPs are fitted on (cost is smooth, and
            GP fitting grows with the cube of the points).
        score_model: ``"gp"`` or ``"forest"`` (see the module docstring).
        seed: seed of the fits and of the cost subsample.
    """
    from scipy.stats import kendalltau, spearmanr

    if score_model not in SCORE_MODELS:
        raise ConfigError(f"score_model={shorten(score_model)} is not one of {SCORE_MODELS}")
    ok = [r for r in runs if r["status"] == "ok"]
    if len(ok) < 20:
        raise ConfigError(
            f"{len(ok)} successful runs of {env_id} are too few to fit a surrogate (need 20+)"
        )
    tasks = sorted({r["task"] for r in ok})
    train: dict[tuple[str, str], list[dict[str, Any]]] = {}
    test: list[dict[str, Any]] = []
    for r in ok:
        if is_held_out(r["task"], r["metaprogram"]):
            test.append(r)
        else:
            train.setdefault((r["task"], r["metaprogram"]), []).append(r)
    if not test or len(train) < 10:
        raise ConfigError(
            f"{len(ok)} successful runs of {env_id} give too small a split to fit and test"
        )

    def inputs(keys: list[tuple[str, str]]) -> np.ndarray:
        vectors = np.stack([schema.encode(json.loads(m)) for _, m in keys])
        return _features(vectors, [t for t, _ in keys], tasks)

    keys = sorted(train)
    x = inputs(keys)
    mean = lambda key, f: float(np.mean([f(r) for r in train[key]]))
    scores = {k: [json.loads(r["val_metrics"])["score"] for r in train[k]] for k in keys}
    score = np.array([np.mean(scores[k]) for k in keys])
    log_seconds = np.array(
        [mean(k, lambda r: math.log(max(float(r["cost_seconds"]), 1e-6))) for k in keys]
    )
    log_samples = np.array(
        [mean(k, lambda r: math.log(max(int(r["cost_samples"]), 1))) for k in keys]
    )
    subset = np.random.default_rng(seed).permutation(len(keys))[:cost_points]
    model = SurrogateModel(
        env_id=env_id,
        tasks=tasks,
        settings=schema.names,
        gps={
            "score": (Forest if score_model == "forest" else GaussianProcess).fit(x, score, seed),
            "log_seconds": GaussianProcess.fit(x[subset], log_seconds[subset], seed),
            "log_samples": GaussianProcess.fit(x[subset], log_samples[subset], seed),
        },
        noise_std=_pooled_noise(list(scores.values())),
        noise={
            task: bands
            for task in tasks
            if (bands := _noise_bands([v for (t, _), v in scores.items() if t == task]))
        },
        fidelity=Fidelity(0.0, 0.0, 0, 0),
    )
    predicted = model.predict(inputs([(r["task"], r["metaprogram"]) for r in test]))[:, 0]
    recorded = [json.loads(r["val_metrics"])["score"] for r in test]
    model.fidelity = Fidelity(
        spearman=float(spearmanr(predicted, recorded).statistic),
        kendall=float(kendalltau(predicted, recorded).statistic),
        n_test=len(test),
        n_train=sum(len(g) for g in train.values()),
    )
    return model


class SurrogateExecutor(Executor):
    """Answers steps with a :class:`SurrogateModel`'s predictions plus seeded noise.

    Predicted runs have no weights nor curves to go on from: a job that starts from a
    checkpoint is an invalid action, and ``save_to`` is ignored.
    """

    def __init__(self, model: SurrogateModel, schema: Schema):
        if model.settings != schema.names:
            raise ConfigError(
                f"the surrogate was fitted on settings {model.settings}, but the env has "
                f"{schema.names}; refit it with `researchgym surrogate fit`"
            )
        self.model = model
        self.schema = schema

    def refuses(self, mode: str) -> str:
        return (
            f"a surrogate env cannot {mode} a run: it predicts a run's final metrics from its "
            "settings, and a predicted run has no weights nor curve to go on from; ask for a "
            "new run with the train.epochs wanted, or replay recorded curves with Replay-v0 "
            "(forkable=True)"
        )

    def run(
        self,
        metaprogram: Mapping[str, Any],
        *,
        task: TaskRef,
        seed: int,
        start: Start | None = None,
        save_to: str | None = None,
        schedule_epochs: int | None = None,
    ) -> Result:
        if start is not None:
            return Result(status="invalid_action", error=self.refuses(start.mode))
        name = task.name
        if name not in self.model.tasks:
            return Result(status="error", error=f"the surrogate was not fitted on task {name!r}")
        x = self.model.features(self.schema.encode_valid(metaprogram)[None, :], [name])
        score, log_seconds, log_samples = self.model.predict(x)[0]
        noise = np.random.default_rng(seed).normal(0.0, self.model.noise_at(name, score))
        score = float(np.clip(score + noise, -1.0, 1.0))
        epochs = metaprogram.get("train.epochs", 1)
        return Result(
            status="ok",
            val_metrics={"score": score},
            test_metrics={},
            curve=[{"epoch": epochs, "val_score": score}],
            seconds=float(math.exp(log_seconds)),
            samples=int(math.exp(log_samples)),
        )


def make_surrogate_env(
    source: str = "researchgym/Digits-v0",
    model: str | Path | SurrogateModel | None = None,
    data: str | Path | None = None,
    store: Any = False,
    **kwargs: Any,
):
    """A :class:`ResearchEnv` of ``source`` whose steps are predicted by a surrogate.

    Args:
        source: the env whose runs the surrogate imitates.
        model: a fitted model or the path of one saved by ``researchgym surrogate fit``;
            by default one is fitted on the recorded runs in ``data``.
        data: store of recorded runs (default: the shipped reference runs).
        store: where predicted steps are recorded (default: nowhere).
        **kwargs: other :class:`ResearchEnv` arguments (interface, budget, reward, ...).
    """
    import gymnasium as gym

    from researchgym.envs.replay import REFERENCE_SURROGATES, load_runs
    from researchgym.envs.research_env import ResearchEnv
    from researchgym.envs.suites import suite_of

    spec = gym.spec(source)
    schema = suite_of(source).make_schema()
    shipped = REFERENCE_SURROGATES / f"{source.split('/')[-1]}.npz"
    if model is None and data is None and shipped.exists():
        model = shipped
    if model is None:
        model = fit_surrogate(load_runs(data, source), schema, source)
    elif not isinstance(model, SurrogateModel):
        model = SurrogateModel.load(model)
    env_kwargs = {
        **spec.kwargs,
        "env_id": "researchgym/Surrogate-v0",
        **kwargs,
        "store": store,
        "source_env_id": source,
        "recorded_kwargs": {"source": source},
    }
    return ResearchEnv(executor=SurrogateExecutor(model, schema), **env_kwargs)
