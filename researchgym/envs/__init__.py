"""Environments, registered with gymnasium under the ``researchgym/`` namespace."""

from gymnasium.envs.registration import register, registry

from researchgym.envs.suites import SUITES, Suite, get_suite

__all__ = ["ENV_IDS", "SUITES", "Suite", "get_suite", "register_envs"]

_ENTRY_POINT = "researchgym.envs.research_env:ResearchEnv"

# env id -> keyword arguments of ResearchEnv
_ENVS: dict[str, dict] = {
    "researchgym/Digits-v0": {"suite": "digits", "budget": 10},
    "researchgym/Tabular-v0": {"suite": "tabular", "budget": 10},
}

ENV_IDS = tuple(_ENVS)


def register_envs() -> None:
    """Register every ResearchGym env with gymnasium (idempotent)."""
    for env_id, kwargs in _ENVS.items():
        if env_id not in registry:
            register(id=env_id, entry_point=_ENTRY_POINT, kwargs={**kwargs, "env_id": env_id})
