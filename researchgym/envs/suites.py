"""Task suites: which tasks an env draws from and which metaprogram schema it offers.

Adding an env is two lines: a :class:`Suite` here and a ``register`` call in
``researchgym/envs/__init__.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from researchgym.spaces import Schema

__all__ = ["SUITES", "Suite", "get_suite"]


@dataclass(frozen=True)
class Suite:
    """A named set of tasks sharing one settings schema.

    Attributes:
        name: suite name used by ``ResearchEnv(suite=...)``.
        tasks: dataset names an episode may be drawn from.
        make_schema: builds the settings schema (called lazily, once per env).
        description: one line for docs and the CLI.
    """

    name: str
    tasks: tuple[str, ...]
    make_schema: Callable[[], Schema]
    description: str = ""


def _digits_schema() -> Schema:
    from researchgym.engine import data_settings, model_settings, pipeline_settings

    return Schema(data_settings(images=True) + model_settings(("mlp", "cnn")) + pipeline_settings())


def _tabular_schema() -> Schema:
    from researchgym.engine import data_settings, model_settings, pipeline_settings

    return Schema(
        data_settings(images=False) + model_settings(("mlp", "linear")) + pipeline_settings()
    )


SUITES: dict[str, Suite] = {
    suite.name: suite
    for suite in [
        Suite(
            "digits",
            ("digits",),
            _digits_schema,
            "8x8 digit classification; the model family (MLP or CNN) is a setting",
        ),
        Suite(
            "tabular",
            ("wine", "breast_cancer", "iris", "diabetes"),
            _tabular_schema,
            "scikit-learn's bundled tables (classification and regression)",
        ),
    ]
}


def get_suite(name: str) -> Suite:
    """The suite called ``name``, with a clear error listing the others."""
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; choose one of {sorted(SUITES)}")
    return SUITES[name]
