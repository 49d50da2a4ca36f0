"""``ResearchEnv``: a research campaign on one task as a Gymnasium environment.

An episode is a campaign with a budget of experiments; each step trains the
metaprogram the action describes and returns the validation score as reward.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import gymnasium as gym
import numpy as np

from researchgym.envs.interfaces import CampaignView, FlatInterface, make_interface
from researchgym.envs.suites import get_suite
from researchgym.spaces import SettingError

__all__ = ["FAILURE_STATUSES", "REWARD_MODES", "Cost", "ResearchEnv"]

REWARD_MODES = ("metric", "improvement", "regret")
FAILURE_STATUSES = ("invalid_action", "diverged", "error", "timeout", "oom")


@dataclass(frozen=True)
class Cost:
    """What a step cost: training examples processed and wall-clock seconds.

    ``seconds`` is a measurement, so it takes no part in equality: the same job
    run twice has the same cost, as gymnasium's determinism checks expect.
    """

    samples: int
    seconds: float = field(compare=False)


class ResearchEnv(gym.Env):
    """A research campaign: each step trains one metaprogram on the episode's task.

    Args:
        suite: task suite name (see ``researchgym.envs.suites.SUITES``).
        budget: experiments per episode.
        reward: ``"metric"`` (validation score), ``"improvement"`` (gain of the
            best score so far) or ``"regret"`` (minus normalized regret: 0 for a
            perfect score, -1 at chance level).
        interface: ``"dict"``, ``"flat"`` or ``"text"`` (see ``researchgym.envs.interfaces``).
        strict: raise on malformed actions instead of returning status ``"invalid_action"``.
        store: where steps are recorded: a path, ``None`` for the default location
            (``RESEARCHGYM_STORE`` or ``datasets_store/``), or ``False`` for nowhere.
        executor: runs training jobs; defaults to an in-process executor.
        device: training device for the default executor (``"auto"`` picks CUDA when present).
        timeout: wall-clock seconds per training job for the default executor.
        history: past steps shown in observations.
        failure_reward: reward of a failed step (any status but ``"ok"``).
        agent: name recorded with every step.
        env_id: recorded id; set by ``gymnasium.make``.
    """

    metadata = {"render_modes": ["ansi"]}

    def __init__(
        self,
        suite: str = "digits",
        *,
        budget: int = 10,
        reward: str = "metric",
        interface: str = "dict",
        strict: bool = False,
        store: Any = None,
        executor: Any = None,
        device: str = "auto",
        timeout: float | None = None,
        history: int = 8,
        failure_reward: float = -1.0,
        agent: str = "unknown",
        env_id: str | None = None,
        render_mode: str | None = None,
    ):
        if reward not in REWARD_MODES:
            raise ValueError(f"reward={reward!r} is not one of {REWARD_MODES}")
        if budget < 1:
            raise ValueError(f"budget={budget!r} must be a positive number of experiments")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode={render_mode!r} is not one of {self.metadata['render_modes']}")
        self.suite = get_suite(suite)
        self.schema = self.suite.make_schema()
        self.interface = make_interface(interface, self.schema, history)
        self.action_space = self.interface.action_space
        self.observation_space = self.interface.observation_space
        self.budget = budget
        self.reward_mode = reward
        self.strict = strict
        self.failure_reward = float(failure_reward)
        self.agent = agent
        self.env_id = env_id or f"researchgym/{suite}"
        self.render_mode = render_mode

        if executor is None:
            from researchgym.engine import InProcessExecutor

            executor = InProcessExecutor(device=device, timeout=timeout)
        self.executor = executor
        self._store_arg = store
        self._store = None
        self._view: CampaignView | None = None
        self._campaign_id = ""
        self._flat_view = FlatInterface(self.schema, history)
        self._obs_before: np.ndarray | None = None

    # --- gymnasium API ---------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        task = options.get("task")
        if task is None:
            task = self.suite.tasks[int(self.np_random.integers(len(self.suite.tasks)))]
        elif task not in self.suite.tasks:
            raise ValueError(f"task={task!r} is not in suite {self.suite.name!r}: {self.suite.tasks}")
        from researchgym.engine import DATASETS, load_task_data

        data = load_task_data(task)
        self._view = CampaignView(
            task=task,
            task_description=DATASETS[task].description,
            task_features=data.features(),
            budget=self.budget,
        )
        self._chance = 1.0 / data.n_classes if data.kind == "classification" else 0.0
        self._campaign_id = uuid.uuid4().hex
        self._obs_before = self._recorded_observation()
        return self.interface.observe(self._view), {"task": task, "campaign_id": self._campaign_id, "budget": self.budget}

    def step(self, action: Any):
        if self._view is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        if self._view.budget_left <= 0:
            raise gym.error.ResetNeeded("the campaign's budget is spent; call reset()")
        view = self._view
        started_at = datetime.now(timezone.utc)
        seed = int(self.np_random.integers(2**31 - 1))
        metaprogram: dict[str, Any] | None = None
        try:
            metaprogram = self.interface.parse_action(action)
        except SettingError as exc:
            if self.strict:
                raise
            from researchgym.engine import Result

            result = Result(status="invalid_action", error=str(exc))
        else:
            result = self.executor.run(metaprogram, task=view.task, seed=seed)

        score = result.score
        reward = self._reward(score)
        view.steps_done += 1
        if score is not None and (view.best_score is None or score > view.best_score):
            view.best_score = score
        view.history.append(
            {
                "settings": metaprogram,
                "encoded": self.schema.encode(metaprogram) if metaprogram else np.zeros(len(self.schema), np.float32),
                "score": score,
                "status": result.status,
            }
        )
        terminated = view.budget_left <= 0
        info = {
            "task": view.task,
            "status": result.status,
            "error": result.error,
            "metrics": result.val_metrics,
            "test_metrics": result.test_metrics,
            "curve": result.curve,
            "cost": Cost(samples=result.samples, seconds=result.seconds),
            "metaprogram": metaprogram,
            "best_score": view.best_score,
            "seed": seed,
        }
        self._record(action, metaprogram, result, reward, terminated, seed, started_at)
        return self.interface.observe(view), reward, terminated, False, info

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self._view is None:
            return None
        lines = [f"{self.env_id} task={self._view.task} budget_left={self._view.budget_left}"]
        for i, step in enumerate(self._view.history):
            score = "-" if step["score"] is None else f"{step['score']:.4f}"
            lines.append(f"  step {i}: {step['status']:<14} score={score}")
        return "\n".join(lines)

    def close(self) -> None:
        self.executor.close()
        super().close()

    # --- helpers ------------------------------------------------------------------
    def to_action(self, metaprogram: dict[str, Any]) -> Any:
        """The action of this env's interface for a (partial) metaprogram."""
        return self.interface.to_action(metaprogram)

    def _reward(self, score: float | None) -> float:
        if score is None:
            return self.failure_reward
        if self.reward_mode == "metric":
            return float(score)
        if self.reward_mode == "improvement":
            best = self._view.best_score
            baseline = self._chance if best is None else best
            return float(max(0.0, score - baseline))
        return float(-(1.0 - score) / (1.0 - self._chance))

    def _recorded_observation(self) -> np.ndarray | None:
        """The flat observation stored with the next step (same for every interface)."""
        return None if self._store_arg is False else self._flat_view.observe(self._view)

    def _record(self, action, metaprogram, result, reward, terminated, seed, started_at):
        if self._store_arg is False:
            return
        if self._store is None:
            from researchgym.store import open_store

            self._store = open_store(self._store_arg)
        view = self._view
        self._store.append(
            {
                "campaign_id": self._campaign_id,
                "step": view.steps_done - 1,
                "run_id": uuid.uuid4().hex,
                "env_id": self.env_id,
                "env_version": _version_of(self.env_id),
                "task": view.task,
                "agent": self.agent,
                "seed": seed,
                "metaprogram": json.dumps(metaprogram),
                "action": _action_json(action),
                "obs": self._obs_before.tolist(),
                "action_flat": self.schema.encode(metaprogram).tolist() if metaprogram else None,
                "val_score": result.score,
                "val_metrics": json.dumps(result.val_metrics),
                "test_metrics": json.dumps(result.test_metrics),
                "curve": json.dumps(result.curve),
                "reward": reward,
                "terminated": terminated,
                "truncated": False,
                "cost_seconds": result.seconds,
                "cost_samples": result.samples,
                "status": result.status,
                "error": result.error,
                "started_at": started_at,
                "finished_at": datetime.now(timezone.utc),
            }
        )
        self._obs_before = self._recorded_observation()


def _version_of(env_id: str) -> int:
    _, _, version = env_id.rpartition("-v")
    return int(version) if version.isdigit() else 0


def _action_json(action: Any) -> str:
    """The action as given, as JSON (numpy values made plain; anything else as repr)."""

    def plain(x: Any) -> Any:
        if isinstance(x, np.ndarray):
            return x.tolist()
        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, dict):
            return {str(k): plain(v) for k, v in x.items()}
        return x

    if isinstance(action, str):
        return json.dumps(action)
    try:
        return json.dumps(plain(action))
    except (TypeError, ValueError):
        return json.dumps(repr(action))
