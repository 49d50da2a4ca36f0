"""What a planner may know of its campaign beyond the observations."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import gymnasium as gym

from researchgym.envs.research_env import unwrap_research_env
from researchgym.errors import StateError
from researchgym.spaces import Schema

if TYPE_CHECKING:
    from researchgym.engine import TaskRef

__all__ = ["CampaignContext", "campaign_context"]


@dataclass(frozen=True)
class CampaignContext:
    """One campaign as a planner that defines ``bind(context)`` sees it.

    Attributes:
        env_id: the env the campaign runs on.
        schema: its settings.
        task: the task's name (as in observations and the store).
        task_ref: the task as the executor runs it (``executor.run(..., task=task_ref)``).
        campaign_id: the campaign's id (``campaign_id`` of its rows in the store).
        budget: experiments in the campaign.
        limits: the env's cost limits (``max_params``, ``max_train_flops``,
            ``max_train_steps``), as :func:`researchgym.engine.check_budget` takes them.
        executor: what trains the campaign's metaprograms.
        store: where the campaign is recorded, or ``None`` when nothing is.
        forkable: the env answers the verbs ``continue``, ``fork`` and ``stop``.
        max_epochs: the highest fidelity (``train.epochs``) a forkable env trains to, over
            which its learning-rate schedules run (``None``: not forkable).
    """

    env_id: str
    schema: Schema
    task: str
    task_ref: TaskRef
    campaign_id: str
    budget: int
    limits: Mapping[str, float] = field(default_factory=dict)
    executor: Any = None
    store: Any = None
    forkable: bool = False
    max_epochs: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "limits", MappingProxyType(dict(self.limits)))


def campaign_context(env: gym.Env, task: str) -> CampaignContext:
    """The context of the campaign ``env`` was just reset to, on ``task``."""
    base = unwrap_research_env(env)
    if base.task_ref is None:
        raise StateError("reset() the env before taking its campaign context")
    return CampaignContext(
        env_id=base.env_id,
        schema=base.schema,
        task=task,
        task_ref=base.task_ref,
        campaign_id=base.campaign_id,
        budget=base.budget,
        limits=base.limits,
        executor=base.executor,
        store=base.store,
        forkable=base.forkable,
        max_epochs=base.max_epochs,
    )
