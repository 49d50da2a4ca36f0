"""``ResearchVectorEnv``: K campaigns whose training jobs of one vector step run as one batch.

Registered as the ``vector_entry_point`` of every env that trains, so
``gymnasium.make_vec(env_id, num_envs=K)`` (or ``vectorization_mode="vector_entry_point"``)
makes one. Its sub-envs share one executor, and each vector step hands the K jobs
to :meth:`~researchgym.engine.Executor.run_many`: the in-process executor trains
those that can share a batch as one population (see ``researchgym.engine.population``),
other executors run them one by one. Everything else (observations, rewards,
autoreset, recording) is :class:`gymnasium.vector.SyncVectorEnv`'s, over
:class:`~researchgym.envs.research_env.ResearchEnv` sub-envs, and each sub-env's
steps are those it would take alone.
"""

from __future__ import annotations

import functools
from copy import deepcopy
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.vector.utils import concatenate, iterate

from researchgym.envs.research_env import ResearchEnv
from researchgym.errors import ConfigError, shorten

__all__ = ["ResearchVectorEnv"]


class ResearchVectorEnv(SyncVectorEnv):
    """``num_envs`` ResearchEnv campaigns stepped together, their training batched.

    Args:
        num_envs: campaigns (sub-envs).
        executor: runs every sub-env's jobs; default: an in-process executor on ``device``
            with ``timeout``, which batches them.
        device: training device of the default executor.
        timeout: wall-clock seconds per batched job of the default executor.
        runtime: precision, compilation and determinism of the default executor (see
            ``researchgym.engine.Runtime``).
        autoreset_mode: gymnasium's autoreset mode (default ``"NextStep"``).
        **kwargs: the arguments of every :class:`ResearchEnv`.
    """

    def __init__(
        self,
        num_envs: int,
        *,
        executor: Any = None,
        device: str = "auto",
        timeout: float | None = None,
        runtime: Any = None,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        **kwargs: Any,
    ):
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ConfigError(f"num_envs={shorten(num_envs)} must be a positive integer")
        if executor is None:
            from researchgym.engine import InProcessExecutor

            executor = InProcessExecutor(device=device, timeout=timeout, runtime=runtime)
        self.executor = executor
        make = functools.partial(ResearchEnv, executor=executor, **kwargs)
        super().__init__([make] * num_envs, autoreset_mode=autoreset_mode)

    def step(self, actions: Any):
        envs: list[ResearchEnv] = self.envs  # type: ignore[assignment]  # made above
        next_step = self.autoreset_mode == AutoresetMode.NEXT_STEP
        pending = {
            i: env._begin_step(action)
            for i, (env, action) in enumerate(zip(envs, iterate(self.action_space, actions)))
            if not (next_step and self._autoreset_envs[i])
        }
        training = [i for i, p in pending.items() if p.result is None]
        results = self.executor.run_many([envs[i]._engine_job(pending[i]) for i in training])
        for i, result in zip(training, results, strict=True):
            pending[i].result = result
        infos: dict[str, Any] = {}
        for i, env in enumerate(envs):
            if i not in pending:  # the campaign ended last step: this step resets it
                self._env_obs[i], info = env.reset()
                self._rewards[i], self._terminations[i], self._truncations[i] = 0.0, False, False
            else:
                obs, reward, terminated, truncated, info = env._end_step(pending[i])
                self._env_obs[i], self._rewards[i] = obs, reward
                self._terminations[i], self._truncations[i] = terminated, truncated
                if self.autoreset_mode == AutoresetMode.SAME_STEP and (terminated or truncated):
                    infos = self._add_info(infos, {"final_obs": obs, "final_info": info}, i)
                    self._env_obs[i], info = env.reset()
            infos = self._add_info(infos, info, i)
        self._observations = concatenate(
            self.single_observation_space, self._env_obs, self._observations
        )
        self._autoreset_envs = np.logical_or(self._terminations, self._truncations)
        return (
            deepcopy(self._observations) if self.copy else self._observations,
            np.copy(self._rewards),
            np.copy(self._terminations),
            np.copy(self._truncations),
            infos,
        )
