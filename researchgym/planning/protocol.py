"""The planner protocol: what proposes the next experiment of a research campaign.

A planner works in *metaprogram* space (a dict of settings by dotted name). It
is told the schema when a campaign starts, proposes a metaprogram from the
env's observation, and may learn from each step's result::

    planner.reset(schema, seed=0, fixed={"train.epochs": 2})
    metaprogram = planner.propose(observation)
    ...  # the campaign loop trains it with env.step
    planner.observe(metaprogram, reward, info)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from researchgym.errors import ConfigError
from researchgym.spaces import Schema

__all__ = [
    "FailedAsWorst",
    "IndependentProposals",
    "Planner",
    "PlannerError",
    "SearchPlanner",
    "validate_pins",
]


class PlannerError(ConfigError):
    """A planner that cannot be built or cannot run as asked."""


@runtime_checkable
class Planner(Protocol):
    """What every planner implements.

    Attributes:
        name: recorded as ``agent`` with every step the planner takes.
        interface: the observation form the planner reads (``"dict"``, ``"flat"``
            or ``"text"``), or ``None`` when it ignores observations (black-box search).

    A planner that needs more than observations (the campaign's budgets, executor
    or store, like the architecture designer) also defines
    ``bind(context: CampaignContext)``; :func:`~researchgym.planning.run_campaign`
    calls it before each campaign. A planner that can propose several metaprograms
    before it is told their results also defines ``propose_batch(observation, n) ->
    list[dict]`` (``n`` proposals, to be observed in order; see
    :class:`IndependentProposals`), which ``run_campaign(..., batch=K)`` calls to train
    K proposals as one batched job. A planner that needs a kind of env (a forkable
    one, to continue and fork runs) says so in ``env_kwargs``, the arguments
    :func:`~researchgym.planning.rollout` makes its env with.
    """

    name: str
    interface: str | None

    def reset(
        self, schema: Schema, *, seed: int | None = None, fixed: Mapping[str, Any] | None = None
    ) -> None:
        """Start a campaign over ``schema``; ``fixed`` settings are pinned for every step."""

    def propose(self, observation: Any) -> dict[str, Any]:
        """The next metaprogram to train (settings by name; omitted ones take defaults)."""

    def observe(
        self, metaprogram: dict[str, Any] | None, reward: float, info: Mapping[str, Any]
    ) -> None:
        """Learn from a step: what was trained, its reward and the env's ``info``."""


class SearchPlanner:
    """Shared plumbing for planners: keeps the schema, the pins and a seeded RNG.

    Subclasses implement :meth:`propose` and, when they learn, :meth:`observe`.
    """

    name = "search"
    interface: str | None = None

    def reset(
        self, schema: Schema, *, seed: int | None = None, fixed: Mapping[str, Any] | None = None
    ) -> None:
        self.schema = schema
        self.fixed = validate_pins(schema, fixed)
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def propose(self, observation: Any) -> dict[str, Any]:
        raise NotImplementedError

    def observe(
        self, metaprogram: dict[str, Any] | None, reward: float, info: Mapping[str, Any]
    ) -> None:
        pass

    def free_settings(self) -> list[str]:
        """Names of the settings the planner chooses (every setting that is not pinned)."""
        return [name for name in self.schema.names if name not in self.fixed]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class IndependentProposals:
    """``propose_batch`` of a planner whose proposals never depend on results (random,
    quasi-random and grid search): the ``n`` proposals ``propose`` makes in a row."""

    propose: Callable[[Any], dict[str, Any]]

    def propose_batch(self, observation: Any, n: int) -> list[dict[str, Any]]:
        """The next ``n`` metaprograms to train, those of ``n`` calls to ``propose``."""
        return [self.propose(observation) for _ in range(n)]


class FailedAsWorst:
    """The values a model-based planner learns from: a failed step counts as the worst seen.

    A successful step's reward is its value. A failed step (any ``info["status"]``
    but ``"ok"``, or a reward that is not finite) gets the lowest value seen so far
    in the campaign, its own finite reward included, so the model learns to stay
    away from it; before any step succeeded it has no value (``None``).
    """

    def __init__(self) -> None:
        self.worst = math.inf

    def __call__(self, reward: float, info: Mapping[str, Any]) -> float | None:
        if info.get("status", "ok") == "ok" and math.isfinite(reward):
            self.worst = min(self.worst, reward)
            return reward
        if math.isinf(self.worst):
            return None
        if math.isfinite(reward):
            self.worst = min(self.worst, reward)
        return self.worst


def validate_pins(schema: Schema, fixed: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check pinned settings (names and values) and return them in canonical form.

    Raises:
        SettingError: an unknown setting or a value outside its range.
    """
    return {name: schema[name].validate(value) for name, value in (fixed or {}).items()}
