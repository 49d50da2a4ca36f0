"""Environments, registered with gymnasium under the ``researchgym/`` namespace."""

from gymnasium.envs.registration import register, registry

from researchgym.envs.suites import SUITES, Suite, get_suite

__all__ = [
    "ENV_IDS",
    "FAST_ENV_IDS",
    "FILE_ENV_IDS",
    "SUITES",
    "Suite",
    "env_description",
    "get_suite",
    "register_envs",
]

_ENTRY_POINT = "researchgym.envs.research_env:ResearchEnv"
# make_vec's default for envs that train: one batched training job per vector step
_VECTOR_ENTRY_POINT = "researchgym.envs.vector:ResearchVectorEnv"

# Envs answered from recorded runs instead of training; `source=` names the env
# they imitate and `data=` the store of its runs (default: the shipped reference).
# Each maps to its entry point and a one-line description.
_FAST_ENVS: dict[str, tuple[str, str]] = {
    "researchgym/Replay-v0": (
        "researchgym.envs.replay:make_replay_env",
        (
            "answers each step from the recorded runs of the env named by source= "
            "(Digits-v0 by default), without training"
        ),
    ),
    "researchgym/Surrogate-v0": (
        "researchgym.envs.surrogate:make_surrogate_env",
        (
            "predicts each step's metrics with a model fitted on the recorded runs of the env "
            "named by source= (Digits-v0 by default), without training"
        ),
    ),
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
            register(
                id=env_id,
                entry_point=_ENTRY_POINT,
                vector_entry_point=_VECTOR_ENTRY_POINT,
                kwargs=kwargs,
            )
    for env_id, (entry_point, _) in _FAST_ENVS.items():
        if env_id not in registry:
            register(id=env_id, entry_point=entry_point)


def env_description(env_id: str) -> str:
    """One line about a ResearchGym env (one of the ``*ENV_IDS``), for docs and the CLI."""
    if env_id in _FAST_ENVS:
        return _FAST_ENVS[env_id][1]
    return _SUITE_ENVS[env_id].description
