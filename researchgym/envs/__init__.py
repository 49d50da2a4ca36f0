"""Environments, registered with gymnasium under the ``researchgym/`` namespace."""

from gymnasium.envs.registration import register, registry

from researchgym.envs.suites import SUITES, Suite, get_suite

__all__ = [
    "ENV_IDS",
    "FAST_ENV_IDS",
    "FILE_ENV_IDS",
    "SUITES",
    "Suite",
    "get_suite",
    "register_envs",
]

_ENTRY_POINT = "researchgym.envs.research_env:ResearchEnv"

# Envs answered from recorded runs instead of training; `source=` names the env
# they imitate and `data=` the store of its runs (default: the shipped reference).
_FAST_ENVS: dict[str, str] = {
    "researchgym/Replay-v0": "researchgym.envs.replay:make_replay_env",
    "researchgym/Surrogate-v0": "researchgym.envs.surrogate:make_surrogate_env",
}

# Envs that train on a suite's tasks; those that read dataset files (data_dir=... or an
# environment variable) fail at gym.make with the files expected when absent.
_SUITE_ENVS = {suite.env_id: suite for suite in SUITES.values() if suite.env_id is not None}

ENV_IDS = tuple(env_id for env_id, suite in _SUITE_ENVS.items() if not suite.reads_files)
FILE_ENV_IDS = tuple(env_id for env_id, suite in _SUITE_ENVS.items() if suite.reads_files)
FAST_ENV_IDS = tuple(_FAST_ENVS)


def register_envs() -> None:
    """Register every ResearchGym env with gymnasium (idempotent)."""
    for env_id, suite in _SUITE_ENVS.items():
        if env_id not in registry:
            kwargs = {"suite": suite.name, **suite.env_kwargs, "env_id": env_id}
            register(id=env_id, entry_point=_ENTRY_POINT, kwargs=kwargs)
    for env_id, entry_point in _FAST_ENVS.items():
        if env_id not in registry:
            register(id=env_id, entry_point=entry_point)
