"""Gymnasium wrappers for ResearchGym envs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from researchgym.spaces import SettingError

__all__ = ["PinSettings"]


class PinSettings(gym.ActionWrapper):
    """Overwrite pinned settings in every action (any interface).

    Learned planners train through it, so a policy never pays for settings the
    user pinned (e.g. ``{"train.epochs": 2}`` for cheap training). Malformed
    actions pass through unchanged, so the env still reports them.

    Args:
        env: a ResearchGym env.
        fixed: the pinned settings by name.

    Raises:
        SettingError: a pinned setting that is unknown or out of range.
    """

    def __init__(self, env: gym.Env, fixed: Mapping[str, Any] | None = None):
        super().__init__(env)
        schema = env.unwrapped.schema  # type: ignore[attr-defined]
        self.fixed = {name: schema[name].validate(value) for name, value in (fixed or {}).items()}

    def action(self, action: Any) -> Any:
        if not self.fixed:
            return action
        base: Any = self.env.unwrapped  # a ResearchEnv
        try:
            metaprogram = base.interface.parse_action(action)
        except SettingError:
            return action
        return base.to_action({**metaprogram, **self.fixed})
