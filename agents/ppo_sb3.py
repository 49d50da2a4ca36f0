"""PPO (stable-baselines3) that learns to propose settings across a suite's tasks.

The policy acts on the *flat* interface: its observation is the campaign so
far (task features, recent settings and scores, best score, budget left) and
its action is one number in ``[-1, 1]`` per setting, which the env decodes into
a metaprogram. Each training episode is a campaign on a task drawn from the
env's suite, so the policy learns what to try first, and what to try next
given the results, across tasks. Pinned settings (``--set train.epochs=2``)
are overwritten in every action while training and acting.

Train, save, then run campaigns with the trained policy as a planner::

    python -m agents.ppo_sb3 --env researchgym/Tabular-v0 --timesteps 2048 \\
        --n-envs 2 --set train.epochs=5 --out runs/ppo_sb3.zip

or from the command line: ``researchgym train --agent ppo-sb3 ...`` then
``researchgym rollout --agent ppo-sb3 --policy runs/ppo_sb3.zip ...``.
Steps taken while training are recorded under the agent name ``ppo-sb3-train``,
campaigns of the trained planner under ``ppo-sb3``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

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

TRAIN_AGENT = "ppo-sb3-train"


@dataclass
class Args(TrainArgs):
    """Train PPO (stable-baselines3) on a ResearchGym env, save it, then run campaigns with it."""

    vec_env: str = arg("dummy", "'dummy' (one process) or 'subproc' (one process per env)")
    n_steps: int = arg(64, "steps per env between policy updates")
    batch_size: int = arg(64, "minibatch size")
    n_epochs: int = arg(4, "passes over each rollout")
    learning_rate: float = arg(3e-4, "Adam learning rate")
    gamma: float = arg(0.9, "discount: how much later experiments of a campaign count")


# --- training ---------------------------------------------------------------------------------
def make_training_env(
    env_id: str, fixed: Mapping[str, Any] | None = None, **env_kwargs: Any
) -> gym.Env:
    """A flat-interface env with pinned settings (importable, so subprocess workers can build it)."""
    import researchgym  # noqa: F401  (registers the env ids in a fresh worker process)

    env = gym.make(env_id, interface="flat", **env_kwargs)
    return PinSettings(env, fixed)


class _Progress(BaseCallback):
    def __init__(self, report: Callable[[int], None]):
        super().__init__()
        self.report = report

    def _on_step(self) -> bool:
        self.report(self.num_timesteps)
        return True


def rollout_steps(total_timesteps: int, n_envs: int, n_steps: int) -> int:
    """PPO's ``n_steps`` (at most ``n_steps``) with which training takes exactly ``total_timesteps``.

    PPO collects ``n_steps * n_envs`` env steps between updates and SB3 finishes the
    rollout it is in, so the total must be a multiple of that: ``n_steps`` shrinks to
    fit a smaller total, and any other total is refused (it would run more experiments
    than asked).

    Raises:
        PlannerError: a total that is not a multiple of ``n_steps * n_envs``.
    """
    n_steps = max(1, min(n_steps, total_timesteps // n_envs))
    rollout = n_steps * n_envs
    if total_timesteps % rollout:
        below = total_timesteps // rollout * rollout
        valid = f"{below} or {below + rollout}" if below else str(rollout)
        raise PlannerError(
            f"PPO collects n_steps * n_envs = {n_steps} * {n_envs} = {rollout} env steps per "
            f"update, so total_timesteps={total_timesteps} (--timesteps) would run "
            f"{below + rollout}; ask for a multiple of {rollout} (e.g. {valid}) "
            "or choose n_steps and n_envs whose product divides it"
        )
    return n_steps


def train(
    env_id: str,
    *,
    total_timesteps: int = 2048,
    seed: int = 0,
    fixed: Mapping[str, Any] | None = None,
    save_path: str | Path = "runs/ppo_sb3.zip",
    store: Any = None,
    budget: int | None = None,
    n_envs: int = 1,
    vec_env: str = "dummy",
    progress: Callable[[int], None] | None = None,
    n_steps: int = 64,
    batch_size: int = 64,
    n_epochs: int = 4,
    learning_rate: float = 3e-4,
    gamma: float = 0.9,
    env_kwargs: Mapping[str, Any] | None = None,
    tasks: Sequence[str] | None = None,
) -> Path:
    """Train PPO on ``env_id`` (tasks drawn from its suite at each reset) and save it.

    Args:
        env_id: a registered ResearchGym env.
        total_timesteps: env steps to train for, exactly (see :func:`rollout_steps`).
        seed: seeds the envs and the policy.
        fixed: settings pinned in every action, e.g. ``{"train.epochs": 2}``.
        save_path: where the policy goes (``.zip`` added if missing); a JSON
            sidecar next to it records the env and the settings it acts on.
        store: where training steps are recorded (``False`` for nowhere).
        budget: experiments per training campaign (default: the env's).
        n_envs: envs stepped together, through SB3's ``make_vec_env``.
        vec_env: ``"dummy"`` (``DummyVecEnv``) or ``"subproc"`` (``SubprocVecEnv``).
        progress: called with the number of env steps done so far.
        n_steps, batch_size, n_epochs, learning_rate, gamma: PPO's own settings
            (``n_steps`` shrinks to fit a smaller ``total_timesteps``).
        env_kwargs: more keyword arguments for ``gym.make``.
        tasks: the only tasks training campaigns are drawn from (default: the env's).

    Returns:
        The saved policy's path.

    Raises:
        PlannerError: an unknown ``vec_env`` or a ``total_timesteps`` PPO cannot take exactly.
    """
    if vec_env not in ("dummy", "subproc"):
        raise PlannerError(f"vec_env={vec_env!r} must be 'dummy' or 'subproc'")
    n_steps = rollout_steps(total_timesteps, n_envs, n_steps)
    kwargs = {"store": store, "agent": TRAIN_AGENT, **(env_kwargs or {})}
    if budget is not None:
        kwargs["budget"] = budget
    if tasks is not None:
        kwargs["tasks"] = list(tasks)
    probe = gym.make(
        env_id, interface="flat", disable_env_checker=True, **{**kwargs, "store": False}
    )
    schema: Schema = probe.unwrapped.schema
    trained_on = list(probe.unwrapped.tasks)
    probe.close()
    pins = {name: schema[name].validate(value) for name, value in (fixed or {}).items()}

    envs = make_vec_env(
        partial(make_training_env, env_id, pins, **kwargs),
        n_envs=n_envs,
        seed=seed,
        vec_env_cls=SubprocVecEnv if vec_env == "subproc" else DummyVecEnv,
    )
    model = PPO(
        "MlpPolicy",
        envs,
        n_steps=n_steps,
        batch_size=min(batch_size, n_steps * n_envs),
        n_epochs=n_epochs,
        learning_rate=learning_rate,
        gamma=gamma,
        seed=seed,
        device="cpu",
        verbose=0,
    )
    model.learn(total_timesteps=total_timesteps, callback=_Progress(progress) if progress else None)
    envs.close()

    path = Path(save_path)
    if path.suffix != ".zip":
        path = path.with_name(path.name + ".zip")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    metadata = {
        "env_id": env_id,
        "settings": schema.names,
        "fixed": pins,
        "tasks": trained_on,
        "total_timesteps": model.num_timesteps,
        "seed": seed,
    }
    path.with_suffix(".json").write_text(json.dumps(metadata, indent=2, default=str))
    return path


# --- acting ----------------------------------------------------------------------------------
class PPOPlanner(SearchPlanner):
    """A trained SB3 PPO policy as a planner (reads flat observations).

    Args:
        policy: path of a policy saved by :func:`train` (or a loaded ``PPO`` model).
        deterministic: act with the policy's mean action instead of sampling.
    """

    name = "ppo-sb3"
    interface = "flat"

    def __init__(self, policy: str | Path | PPO | None = None, deterministic: bool = True):
        if policy is None:
            raise PlannerError(
                "planner 'ppo-sb3' needs a trained policy: pass policy=PATH (e.g. --policy runs/ppo_sb3.zip); "
                "train one with `researchgym train --agent ppo-sb3 --env ENV_ID`"
            )
        self.deterministic = deterministic
        self.metadata: dict[str, Any] = {}
        if isinstance(policy, PPO):
            self.model, self.path = policy, None
        else:
            self.path = Path(policy)
            if not self.path.exists() and self.path.with_name(self.path.name + ".zip").exists():
                self.path = self.path.with_name(self.path.name + ".zip")
            if not self.path.exists():
                raise PlannerError(
                    f"policy={str(policy)!r} does not exist; train one with `researchgym train --agent ppo-sb3`"
                )
            self.model = PPO.load(self.path, device="cpu")
            sidecar = self.path.with_suffix(".json")
            if sidecar.exists():
                self.metadata = json.loads(sidecar.read_text())

    def reset(
        self, schema: Schema, *, seed: int | None = None, fixed: Mapping[str, Any] | None = None
    ) -> None:
        super().reset(schema, seed=seed, fixed=fixed)
        trained_on = self.metadata.get("settings")
        if self.model.action_space.shape != (len(schema),) or (
            trained_on and trained_on != schema.names
        ):
            raise PlannerError(
                f"policy {self.path} acts on {trained_on or self.model.action_space.shape} "
                f"but this env's settings are {schema.names}; train a policy for this env"
            )
        self.model.set_random_seed(seed)

    def propose(self, observation: Any) -> dict[str, Any]:
        obs = np.asarray(observation, dtype=np.float32)
        if obs.shape != self.model.observation_space.shape:
            raise PlannerError(
                f"observation of shape {obs.shape} is not the flat observation {self.model.observation_space.shape} "
                "the policy reads; make the env with interface='flat'"
            )
        action, _ = self.model.predict(obs, deterministic=self.deterministic)
        return self.schema.decode(action) | self.fixed


if __name__ == "__main__":
    args = parse_args(Args)
    path = args.policy
    if path is None:
        path = train(
            args.env,
            **training_kwargs(args),
            vec_env=args.vec_env,
            n_steps=args.n_steps,
            batch_size=args.batch_size,
            n_epochs=args.n_epochs,
            learning_rate=args.learning_rate,
            gamma=args.gamma,
        )
        print(f"\nsaved policy to {path}")
    run_from_args(PPOPlanner(path), args)
