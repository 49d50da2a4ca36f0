"""Task suites: which tasks an env draws from and which metaprogram schema it offers.

Adding an env on existing data is one :class:`Suite` entry in :data:`SUITES`, with
the ``env_id`` it is registered under and that env's keyword arguments.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from researchgym.errors import ConfigError, did_you_mean, shorten
from researchgym.spaces import Schema, Setting

__all__ = ["SUITES", "Suite", "get_suite", "suite_of"]


@dataclass(frozen=True)
class Suite:
    """A named set of tasks sharing one settings schema.

    Attributes:
        name: suite name used by ``ResearchEnv(suite=...)``.
        tasks: task names an episode may be drawn from by default; an env may
            be given other tasks of the same datasets (e.g. with different
            parameters, ``"mqar?n_pairs=16"``).
        make_schema: builds the settings schema (called lazily, once per env).
        description: one line for docs and the CLI.
        held_out_tasks: tasks of the same datasets that are never drawn at
            random, only named (``reset(options={"task": ...})``): planners trained
            on runs of ``tasks`` are tested on these.
        env_id: the gymnasium id registered for this suite (``None``: none).
        env_kwargs: keyword arguments of that env's ``ResearchEnv`` (budget, limits, ...).
        reads_files: the tasks read dataset files from a user-given directory.
    """

    name: str
    tasks: tuple[str, ...]
    make_schema: Callable[[], Schema]
    description: str = ""
    held_out_tasks: tuple[str, ...] = ()
    env_id: str | None = None
    env_kwargs: Mapping[str, Any] = field(default_factory=dict, hash=False)
    reads_files: bool = False

    @property
    def all_tasks(self) -> tuple[str, ...]:
        """The default tasks, then the held-out ones."""
        return self.tasks + self.held_out_tasks


def _digits_schema() -> Schema:
    from researchgym.engine import data_settings, model_settings, pipeline_settings

    return Schema(data_settings(images=True) + model_settings(("mlp", "cnn")) + pipeline_settings())


def _with_defaults(settings: Iterable[Setting], defaults: Mapping[str, Any]) -> list[Setting]:
    return [replace(s, default=defaults[s.name]) if s.name in defaults else s for s in settings]


# Limits of the unit-tree envs keep every accepted experiment to seconds on a
# 2-core CPU (the default design uses a third to a half of them); pass None or
# larger values to gym.make for bigger designs.
_UNIT_TREE_LIMITS = {"max_params": 200_000, "max_train_flops": 1e11, "max_train_steps": 600}

# Unit-tree suites train for few, larger steps: seconds per experiment on two CPU cores.
_SEQUENCE_TRAINING = {"optim.lr": 3e-3, "train.batch_size": 32, "train.epochs": 4}
_CHARLM_TRAINING = {"optim.lr": 3e-3, "train.batch_size": 16, "train.epochs": 2}


def _unit_tree_schema(training: Mapping[str, Any]) -> Schema:
    from researchgym.engine import ARCH, pipeline_settings

    return Schema(ARCH.settings() + _with_defaults(pipeline_settings(), training), forms=[ARCH])


def _tabular_schema() -> Schema:
    from researchgym.engine import data_settings, model_settings, pipeline_settings

    return Schema(
        data_settings(images=False) + model_settings(("mlp", "linear")) + pipeline_settings()
    )


def _synthetic_tasks(seeds: Iterable[int]) -> tuple[str, ...]:
    seeds = list(seeds)
    return tuple(f"{name}?seed={seed}" for name in ("synth_cls", "synth_reg") for seed in seeds)


SUITES: dict[str, Suite] = {
    suite.name: suite
    for suite in [
        Suite(
            "digits",
            ("digits",),
            _digits_schema,
            "8x8 digit classification; the model family (MLP or CNN) is a setting",
            env_id="researchgym/Digits-v0",
            env_kwargs={"budget": 10},
        ),
        Suite(
            "tabular",
            ("wine", "breast_cancer", "iris", "diabetes"),
            _tabular_schema,
            "scikit-learn's bundled tables (classification and regression)",
            env_id="researchgym/Tabular-v0",
            env_kwargs={"budget": 10},
        ),
        Suite(
            "synthetic",
            _synthetic_tasks(range(12)),
            _tabular_schema,
            "seeded synthetic tables (classification and regression) whose shape and noise "
            "are drawn from the task's seed; a held-out split of other seeds tests planners",
            held_out_tasks=_synthetic_tasks(range(1000, 1004)),
            env_id="researchgym/Synthetic-v0",
            env_kwargs={"budget": 20},
        ),
        Suite(
            "seqarch",
            ("mqar", "copy", "reverse", "modsum", "parity", "brackets"),
            functools.partial(_unit_tree_schema, _SEQUENCE_TRAINING),
            "architecture search on generated sequence tasks (recall, copying, arithmetic, "
            "parity, brackets); the model is a tree of units",
            env_id="researchgym/SeqArch-v0",
            env_kwargs={"budget": 10, **_UNIT_TREE_LIMITS},
        ),
        Suite(
            "charlm",
            ("pydocs", "pysource"),
            functools.partial(_unit_tree_schema, _CHARLM_TRAINING),
            "character-level language modelling of text that ships with Python; "
            "score = 1 - bits per character / 8",
            env_id="researchgym/CharLM-v0",
            env_kwargs={"budget": 10, **_UNIT_TREE_LIMITS},
        ),
        Suite(
            "mnist",
            ("mnist",),
            _digits_schema,
            "MNIST digits from IDX files in a user-given directory; MLP or CNN",
            env_id="researchgym/MNIST-v0",
            env_kwargs={"budget": 10},
            reads_files=True,
        ),
        Suite(
            "cifar10",
            ("cifar10",),
            _digits_schema,
            "CIFAR-10 images from the python batch files in a user-given directory; MLP or CNN",
            env_id="researchgym/CIFAR10-v0",
            env_kwargs={"budget": 10},
            reads_files=True,
        ),
    ]
}


def get_suite(name: str) -> Suite:
    """The suite called ``name``, with a clear error listing the others."""
    if not isinstance(name, str) or name not in SUITES:
        raise ConfigError(
            f"unknown suite {shorten(name)}; {did_you_mean(name, SUITES)}"
            f"choose one of {sorted(SUITES)}"
        )
    return SUITES[name]


def suite_of(env_id: str) -> Suite:
    """The suite of a registered env that trains on its own tasks (not Replay-v0 or Surrogate-v0).

    Raises:
        ValueError: an unknown env id, or an env that answers from another env's runs.
    """
    import gymnasium as gym

    try:
        spec = gym.spec(env_id)
    except gym.error.Error as exc:
        raise ConfigError(f"{shorten(env_id)} is not a registered env: {exc}") from None
    if spec.namespace != "researchgym":
        raise ConfigError(
            f"{env_id!r} is not a ResearchGym env; run `researchgym envs` to list them"
        )
    if "suite" not in spec.kwargs:
        raise ConfigError(
            f"{env_id!r} has no tasks of its own (it answers from another env's runs); name the env "
            "whose tasks and runs to use, e.g. researchgym/Synthetic-v0"
        )
    return get_suite(spec.kwargs["suite"])
