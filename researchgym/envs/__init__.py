"""Environments, registered with gymnasium under the ``researchgym/`` namespace."""

from gymnasium.envs.registration import register, registry

from researchgym.envs.suites import SUITES, Suite, get_suite

__all__ = ["ENV_IDS", "FAST_ENV_IDS", "FILE_ENV_IDS", "SUITES", "Suite", "get_suite", "register_envs"]

_ENTRY_POINT = "researchgym.envs.research_env:ResearchEnv"

# Limits of the unit-tree envs keep every accepted experiment to seconds on a
# 2-core CPU (the default design uses a third to a half of them); pass None or
# larger values to gym.make for bigger designs.
_UNIT_TREE_LIMITS = {"max_params": 200_000, "max_train_flops": 1e11, "max_train_steps": 600}

# env id -> keyword arguments of ResearchEnv; these work out of the box.
_ENVS: dict[str, dict] = {
    "researchgym/Digits-v0": {"suite": "digits", "budget": 10},
    "researchgym/Tabular-v0": {"suite": "tabular", "budget": 10},
    "researchgym/Synthetic-v0": {"suite": "synthetic", "budget": 20},
    "researchgym/SeqArch-v0": {"suite": "seqarch", "budget": 10, **_UNIT_TREE_LIMITS},
    "researchgym/CharLM-v0": {"suite": "charlm", "budget": 10, **_UNIT_TREE_LIMITS},
}

# Envs that read dataset files from a user-given directory (data_dir=... or an
# environment variable); gym.make fails with the files expected when absent.
_FILE_ENVS: dict[str, dict] = {
    "researchgym/MNIST-v0": {"suite": "mnist", "budget": 10},
    "researchgym/CIFAR10-v0": {"suite": "cifar10", "budget": 10},
}

# Envs answered from recorded runs instead of training; `source=` names the env
# they imitate and `data=` the store of its runs (default: the shipped reference).
_FAST_ENVS: dict[str, str] = {
    "researchgym/Replay-v0": "researchgym.envs.replay:make_replay_env",
    "researchgym/Surrogate-v0": "researchgym.envs.surrogate:make_surrogate_env",
}

ENV_IDS = tuple(_ENVS)
FILE_ENV_IDS = tuple(_FILE_ENVS)
FAST_ENV_IDS = tuple(_FAST_ENVS)


def register_envs() -> None:
    """Register every ResearchGym env with gymnasium (idempotent)."""
    for env_id, kwargs in {**_ENVS, **_FILE_ENVS}.items():
        if env_id not in registry:
            register(id=env_id, entry_point=_ENTRY_POINT, kwargs={**kwargs, "env_id": env_id})
    for env_id, entry_point in _FAST_ENVS.items():
        if env_id not in registry:
            register(id=env_id, entry_point=entry_point)
