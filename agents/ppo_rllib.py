"""PPO (RLlib) that learns to propose settings across a suite's tasks.

The same problem as ``agents/ppo_sb3.py`` — flat interface, one campaign per
training episode on a task drawn from the suite, pinned settings overwritten
in every action — trained with RLlib's PPO (new API stack, torch) on a Ray
instance started locally with few CPUs. Sampling runs in the driver process
(``num_env_runners=0``), with ``n_envs`` envs stepped together as a gymnasium
vector env. The trained policy is saved as an RLlib checkpoint; the planner
loads only its ``RLModule`` and acts with the mean action.

    python -m agents.ppo_rllib --env researchgym/Tabular-v0 --timesteps 2048 \\
        --set train.epochs=5 --out runs/ppo_rllib

Needs ``pip install 'researchgym[rllib]'``. Steps taken while training are
recorded under the agent name ``ppo-rllib-train``, campaigns of the trained
planner under ``ppo-rllib``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import ray
import torch
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core import (
    COMPONENT_LEARNER,
    COMPONENT_LEARNER_GROUP,
    COMPONENT_RL_MODULE,
    DEFAULT_MODULE_ID,
)
from ray.rllib.core.rl_module.rl_module import RLModule
from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME
from ray.tune.registry import register_env

from researchgym.planning import (
    PlannerError,
    SearchPlanner,
    TrainArgs,
    arg,
    parse_args,
    run_from_args,
    training_kwargs,
)
from researchgym.spaces import Schema
from researchgym.wrappers import PinSettings

TRAIN_AGENT = "ppo-rllib-train"
ENV_NAME = "researchgym-rllib"


@dataclass
class Args(TrainArgs):
    """Train PPO (RLlib) on a ResearchGym env, save it, then run campaigns with it."""

    train_batch_size: int = arg(128, "env steps per policy update")
    minibatch_size: int = arg(64, "minibatch size")
    num_epochs: int = arg(4, "passes over each train batch")
    lr: float = arg(3e-4, "Adam learning rate")
    gamma: float = arg(0.9, "discount: how much later experiments of a campaign count")
    num_cpus: int = arg(2, "CPUs of the local Ray instance")


# --- training ---------------------------------------------------------------------------------
def make_training_env(config: Mapping[str, Any]) -> gym.Env:
    """RLlib's env creator: a flat-interface env with pinned settings."""
    import researchgym  # noqa: F401  (registers the env ids)

    kwargs = dict(config)
    env_id, fixed = kwargs.pop("env_id"), kwargs.pop("fixed", None)
    env = gym.make(env_id, interface="flat", disable_env_checker=True, **kwargs)
    return PinSettings(env, fixed)


def train(
    env_id: str,
    *,
    total_timesteps: int = 2048,
    seed: int = 0,
    fixed: Mapping[str, Any] | None = None,
    save_path: str | Path = "runs/ppo_rllib",
    store: Any = None,
    budget: int | None = None,
    n_envs: int = 1,
    progress: Callable[[int], None] | None = None,
    train_batch_size: int = 128,
    minibatch_size: int = 64,
    num_epochs: int = 4,
    lr: float = 3e-4,
    gamma: float = 0.9,
    num_cpus: int = 2,
    tasks: Sequence[str] | None = None,
) -> Path:
    """Train RLlib PPO on ``env_id`` (tasks drawn from its suite at each reset) and save it.

    Starts Ray locally (``num_cpus`` CPUs, no dashboard) unless it is already running.

    Args:
        env_id: a registered ResearchGym env.
        total_timesteps: env steps to train for (rounded up to whole train batches).
        seed: seeds the envs and the policy.
        fixed: settings pinned in every action, e.g. ``{"train.epochs": 2}``.
        save_path: checkpoint directory; a ``researchgym.json`` inside records
            the env and the settings the policy acts on.
        store: where training steps are recorded (``False`` for nowhere).
        budget: experiments per training campaign (default: the env's).
        n_envs: envs stepped together (a gymnasium vector env).
        progress: called with the number of env steps done so far.
        train_batch_size, minibatch_size, num_epochs, lr, gamma: PPO's own settings.
        num_cpus: CPUs of the local Ray instance.
        tasks: the only tasks training campaigns are drawn from (default: the env's).

    Returns:
        The checkpoint directory.
    """
    probe = gym.make(env_id, interface="flat", store=False, disable_env_checker=True)
    schema: Schema = probe.unwrapped.schema
    probe.close()
    pins = {name: schema[name].validate(value) for name, value in (fixed or {}).items()}
    env_config: dict[str, Any] = {
        "env_id": env_id,
        "fixed": pins,
        "store": store,
        "agent": TRAIN_AGENT,
    }
    if budget is not None:
        env_config["budget"] = budget
    if tasks is not None:
        env_config["tasks"] = list(tasks)

    if not ray.is_initialized():
        ray.init(
            num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False
        )
    register_env(ENV_NAME, make_training_env)
    config = (
        PPOConfig()
        .environment(ENV_NAME, env_config=env_config)
        .framework("torch")
        .env_runners(
            num_env_runners=0, num_envs_per_env_runner=n_envs, rollout_fragment_length="auto"
        )
        .learners(num_learners=0)
        .training(
            train_batch_size_per_learner=train_batch_size,
            minibatch_size=min(minibatch_size, train_batch_size),
            num_epochs=num_epochs,
            lr=lr,
            gamma=gamma,
        )
        .debugging(seed=seed)
    )
    algo = config.build_algo()
    try:
        done = 0
        while done < total_timesteps:
            result = algo.train()
            done = int(result[ENV_RUNNER_RESULTS][NUM_ENV_STEPS_SAMPLED_LIFETIME])
            if progress is not None:
                progress(done)
        path = Path(save_path).absolute()
        algo.save_to_path(str(path))
    finally:
        algo.stop()
    metadata = {
        "env_id": env_id,
        "settings": schema.names,
        "fixed": pins,
        "total_timesteps": done,
        "seed": seed,
    }
    (path / "researchgym.json").write_text(json.dumps(metadata, indent=2, default=str))
    return path


# --- acting ----------------------------------------------------------------------------------
def load_module(checkpoint: str | Path) -> RLModule:
    """The policy (``RLModule``) inside an algorithm checkpoint saved by :func:`train`."""
    path = (
        Path(checkpoint).absolute()
        / COMPONENT_LEARNER_GROUP
        / COMPONENT_LEARNER
        / COMPONENT_RL_MODULE
        / DEFAULT_MODULE_ID
    )
    if not path.is_dir():
        raise PlannerError(
            f"policy={str(checkpoint)!r} is not an RLlib checkpoint saved by `researchgym train --agent ppo-rllib` "
            f"(no {path})"
        )
    return RLModule.from_checkpoint(str(path))


class RLlibPPOPlanner(SearchPlanner):
    """A trained RLlib PPO policy as a planner (reads flat observations).

    Args:
        policy: checkpoint directory saved by :func:`train`.
        deterministic: act with the mean action instead of sampling from the policy.
    """

    name = "ppo-rllib"
    interface = "flat"

    def __init__(self, policy: str | Path | None = None, deterministic: bool = True):
        if policy is None:
            raise PlannerError(
                "planner 'ppo-rllib' needs a trained policy: pass policy=CHECKPOINT_DIR (e.g. --policy runs/ppo_rllib); "
                "train one with `researchgym train --agent ppo-rllib --env ENV_ID`"
            )
        self.path = Path(policy)
        self.module = load_module(self.path)
        self.module.eval()
        self.deterministic = deterministic
        sidecar = self.path / "researchgym.json"
        self.metadata: dict[str, Any] = json.loads(sidecar.read_text()) if sidecar.exists() else {}

    def reset(
        self, schema: Schema, *, seed: int | None = None, fixed: Mapping[str, Any] | None = None
    ) -> None:
        super().reset(schema, seed=seed, fixed=fixed)
        trained_on = self.metadata.get("settings")
        if trained_on and trained_on != schema.names:
            raise PlannerError(
                f"policy {self.path} acts on {trained_on} but this env's settings are {schema.names}; "
                "train a policy for this env"
            )
        self.torch_rng = torch.Generator().manual_seed(0 if seed is None else seed)

    def propose(self, observation: Any) -> dict[str, Any]:
        obs = torch.as_tensor(np.asarray(observation, dtype=np.float32)).reshape(1, -1)
        with torch.no_grad():
            out = self.module.forward_inference({"obs": obs})
        mean, log_std = out["action_dist_inputs"][0].chunk(
            2
        )  # diagonal Gaussian over the flat action
        if len(mean) != len(self.schema):
            raise PlannerError(
                f"policy {self.path} proposes {len(mean)} settings but this env has {len(self.schema)}; "
                "train a policy for this env (and make it with interface='flat')"
            )
        action = (
            mean
            if self.deterministic
            else mean + log_std.exp() * torch.randn(mean.shape, generator=self.torch_rng)
        )
        return self.schema.decode(np.clip(action.numpy(), -1.0, 1.0)) | self.fixed


if __name__ == "__main__":
    args = parse_args(Args)
    path = args.policy
    if path is None:
        path = train(
            args.env,
            **training_kwargs(args),
            train_batch_size=args.train_batch_size,
            minibatch_size=args.minibatch_size,
            num_epochs=args.num_epochs,
            lr=args.lr,
            gamma=args.gamma,
            num_cpus=args.num_cpus,
        )
        ray.shutdown()
        print(f"\nsaved policy to {path}")
    run_from_args(RLlibPPOPlanner(path), args)
