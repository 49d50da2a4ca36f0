"""``ResearchEnv``: a research campaign on one task as a Gymnasium environment.

An episode is a campaign with a budget of experiments; each step trains the
metaprogram the action describes and returns the validation score as reward.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from researchgym.envs.costs import CostMeter, objectives
from researchgym.envs.interfaces import (
    EPOCHS,
    CampaignView,
    Command,
    FlatInterface,
    Forking,
    make_interface,
)
from researchgym.envs.recording import StepRecorder, check_campaign_id
from researchgym.envs.suites import get_suite
from researchgym.errors import ConfigError, ResearchGymError, did_you_mean, shorten
from researchgym.spaces import SettingError

if TYPE_CHECKING:
    from researchgym.engine import Checkpoints, Result, Start, TaskRef
    from researchgym.engine import Job as EngineJob

__all__ = [
    "FAILURE_STATUSES",
    "MEASURED_INFO",
    "MIN_OK_REWARD",
    "REWARD_MODES",
    "NotAResearchEnvError",
    "ResearchEnv",
    "unwrap_research_env",
]

REWARD_MODES = (
    "metric",
    "improvement",
    "regret",
    "metric_minus_cost",
    "improvement_minus_cost",
    "regret_minus_cost",
)
FAILURE_STATUSES = ("invalid_action", "diverged", "error", "timeout", "oom")
#: Lowest reward of a finished (``"ok"``) step in every reward mode that subtracts no cost:
#: scores lie in [-1, 1] and ``"regret"`` counts a score below chance as chance. The default
#: ``failure_reward`` (-2) lies below it, so a finished but bad run is never mistaken for a
#: failure.
MIN_OK_REWARD = -1.0
#: Paths of ``info`` entries that are measurements (``info["cost"]["seconds"]``, wall-clock
#: time): the only values that differ between two runs of the same seed and actions (with a
#: reward that subtracts no seconds).
MEASURED_INFO = (
    ("cost", "seconds"),
    ("spent", "seconds"),
    ("cost_left", "seconds"),
    ("objectives", "seconds"),
)


class ResearchEnv(gym.Env):
    """A research campaign: each step trains one metaprogram on the episode's task.

    Args:
        suite: task suite name (see ``researchgym.envs.suites.SUITES``).
        budget: experiments per episode.
        tasks: task names episodes are drawn from, instead of the suite's (its
            held-out tasks are never drawn, but reset options may name them); each
            must be a task of the suite's datasets, possibly with other
            parameters (e.g. ``["mqar?n_pairs=16&vocab=128"]`` for harder recall).
        data_dir: directory of the dataset files, for suites that read files
            (MNIST, CIFAR-10); defaults to the dataset's environment variable
            (``RESEARCHGYM_MNIST_DIR``, ``RESEARCHGYM_CIFAR10_DIR``). Configuration
            only: no action can name a file.
        max_params: parameter budget; a design over it is rejected before
            training with status ``"invalid_action"`` and the reason.
        max_train_flops: compute budget of one experiment (about 3 x forward
            FLOPs x examples processed), checked the same way.
        max_train_steps: optimizer steps of one experiment, checked the same way
            (on a CPU, small models cost per step more than per FLOP).
        reward: ``"metric"`` (validation score, in [-1, 1]), ``"improvement"`` (gain of
            the best score so far, 0 or more) or ``"regret"`` (minus normalized regret: 0
            for a perfect score, -1 at chance level or below); or one of them minus the
            step's cost, ``"metric_minus_cost"``, ``"improvement_minus_cost"`` or
            ``"regret_minus_cost"``: the reward less ``cost_weight`` x the step's cost in
            ``cost_unit``, divided by the cost budget when there is one (spending the whole
            budget then costs ``cost_weight`` in all). A failed step's reward is
            ``failure_reward`` less its cost too. With ``cost_unit="seconds"`` the reward
            is a measurement and varies from run to run.
        cost_budget: compute budget of a campaign, ``{"seconds": x}``, ``{"samples": n}``
            or ``{"flops": f}`` (see ``researchgym.envs.costs`` for how each is counted):
            the step that reaches it ends the campaign with ``truncated=True``. ``None``:
            no cost budget.
        cost_weight: weight of the cost a ``*_minus_cost`` reward subtracts (0 or more).
        cost_unit: unit of the cost a ``*_minus_cost`` reward subtracts, one of
            ``"seconds"``, ``"samples"``, ``"flops"``; defaults to the cost budget's unit
            (and must be it when there is a budget).
        interface: ``"dict"``, ``"flat"`` or ``"text"`` (see ``researchgym.envs.interfaces``).
        strict: raise on malformed actions instead of returning status ``"invalid_action"``.
        store: where steps are recorded: a path, ``None`` for the default location
            (``RESEARCHGYM_STORE`` or ``datasets_store/``, named once per process and
            directory on the ``researchgym`` logger), or ``False`` for nowhere.
        executor: runs training jobs: an ``Executor``, or the name of one made with
            ``device`` and ``timeout`` (``"inprocess"``, the default; ``"subprocess"``;
            ``"ray"``, each job a Ray task on a local Ray: see
            ``researchgym.engine.RayExecutor``).
        device: training device for an executor given by name (``"auto"`` picks CUDA when
            present).
        timeout: wall-clock seconds per training job for an executor given by name.
        runtime: precision, compilation and determinism of an executor given by name: a
            ``researchgym.engine.Runtime`` or a mapping of its fields, e.g.
            ``{"precision": "bf16"}`` (default: float32, eager, torch's defaults).
        history: past steps shown in observations.
        failure_reward: reward of a failed step (any status but ``"ok"``); the default
            lies below :data:`MIN_OK_REWARD`, the lowest reward of a finished step.
        agent: name recorded with every step of a campaign, unless ``reset`` is given
            another with ``options={"agent": ...}``.
        env_id: recorded id; set by ``gymnasium.make``.
        source_env_id: recorded id of the env whose training produces the metrics;
            set by Replay-v0 and Surrogate-v0 (default: ``env_id``).
        recorded_kwargs: arguments of the function that made this env, recorded in
            :attr:`env_kwargs` beside the campaign's own; set by Replay-v0 and
            Surrogate-v0 (their ``source``, and Replay-v0's ``missing``).
        forkable: keep every run's checkpoint so that later steps can ``continue`` or
            ``fork`` it, and take the ``stop`` verb (see "Runs" below).
        max_epochs: the highest fidelity (``train.epochs``, counting a run's ancestors)
            of a forkable env, and the horizon of every run's learning-rate schedule, so
            that continuing a run does not change it; default: the highest
            ``train.epochs`` the settings allow.
        checkpoint_dir: where a forkable env keeps checkpoints, one directory per
            campaign (default: a fresh temporary directory). Configuration only: no
            action can name a path.
        checkpoint_bytes: bound on the checkpoints' total size; over it, the least
            recently used are evicted (never the best-scoring one).
        keep_checkpoints: keep the checkpoints when a campaign ends (at ``reset`` and
            ``close``) instead of deleting them.
        curve_length: validation scores of each recent run that a forkable env's
            observations show (the last ones).

    ``reset(options=...)`` takes ``"task"`` (one of :attr:`tasks` or
    :attr:`held_out_tasks`; default: one of :attr:`tasks` drawn at random), ``"agent"``
    and ``"campaign_id"`` (the id recorded with the campaign's steps, e.g. a
    deterministic one that lets a harness find them again; default: a fresh random id).
    A step's ``info`` holds ``status``, ``error``, ``metrics`` (the raw
    validation metrics and ``score``, the primary one clipped to [-1, 1]),
    ``test_metrics``, ``curve``, ``cost`` (the step's ``{"samples": int, "seconds": float,
    "flops": float | None}``, FLOPs ``None`` unless the env counts them), ``spent`` (the
    campaign's cost so far, in the same units), ``cost_left`` (``{unit: amount}`` left of the
    cost budget, or ``None``), ``objectives`` (``{"score", "seconds", "n_params"}``, the
    step's point for multi-objective comparison, all ``None`` for a failed step; the
    store's Pareto front is ``Store.pareto_front``), ``metaprogram`` (the settings the
    action stands for), ``estimate``, ``best_score``,
    ``seed`` (the step's training seed, drawn from the seed given to ``reset``) and
    ``answered_by`` (what produced the metrics when the executor did not train
    ``metaprogram``, e.g. Replay-v0's recorded run: see ``researchgym.envs.replay``;
    else ``None``), ``run`` (the step's index in the campaign), ``verb``, ``parent_run``
    and ``epochs`` (the fidelity reached); every value but those in
    :data:`MEASURED_INFO` is the same when the same seed and actions are replayed on a CPU.

    **Runs.** Each step of a forkable env is a run, named by its index in the
    campaign. An action may carry a verb (see ``researchgym.envs.interfaces``):
    ``new`` (the default) trains its settings from scratch; ``continue`` trains run
    ``run`` on to a higher ``train.epochs`` with its own settings and seed, as if it had
    never stopped; ``fork`` starts from run ``run``'s weights with other pipeline
    settings (those left out are the run's; architecture settings must stay), a fresh
    optimizer and a fresh seed; ``stop`` ends the campaign (reward 0, status
    ``"stopped"``). Every step spends one experiment of the budget. A verb naming an
    unknown, failed or evicted run, a fidelity not above the run's or over
    ``max_epochs``, or a verb other than ``new`` in an env that is not forkable gets
    status ``"invalid_action"`` and says why; the campaign goes on.
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"]}  # noqa: RUF012 - as gymnasium.Env

    def __init__(
        self,
        suite: str = "digits",
        *,
        budget: int = 10,
        tasks: Sequence[str] | None = None,
        data_dir: str | os.PathLike | None = None,
        max_params: int | None = None,
        max_train_flops: float | None = None,
        max_train_steps: int | None = None,
        reward: str = "metric",
        cost_budget: Mapping[str, float] | None = None,
        cost_weight: float = 1.0,
        cost_unit: str | None = None,
        interface: str = "dict",
        strict: bool = False,
        store: Any = None,
        executor: Any = None,
        device: str = "auto",
        timeout: float | None = None,
        runtime: Any = None,
        history: int = 8,
        failure_reward: float = -2.0,
        agent: str = "unknown",
        env_id: str | None = None,
        source_env_id: str | None = None,
        recorded_kwargs: dict[str, Any] | None = None,
        render_mode: str | None = None,
        forkable: bool = False,
        max_epochs: int | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_bytes: int = 256 * 2**20,
        keep_checkpoints: bool = False,
        curve_length: int = 16,
    ):
        if reward not in REWARD_MODES:
            raise ConfigError(f"reward={shorten(reward)} is not one of {REWARD_MODES}")
        if budget < 1:
            raise ConfigError(f"budget={budget!r} must be a positive number of experiments")
        if history < 0:
            raise ConfigError(
                f"history={history!r} must be the number of past steps to show (0 or more)"
            )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(
                f"render_mode={shorten(render_mode)} is not one of {self.metadata['render_modes']}"
            )
        limits = {
            "max_params": max_params,
            "max_train_flops": max_train_flops,
            "max_train_steps": max_train_steps,
        }
        for name, limit in limits.items():
            if limit is not None and not (isinstance(limit, (int, float)) and limit > 0):
                raise ConfigError(
                    f"{name}={shorten(limit)} must be a positive number or None (no budget)"
                )
        _check_agent(agent)
        #: The campaign's cost so far, against its cost budget.
        self.costs = CostMeter.for_env(
            subtracts_cost=reward.endswith("_minus_cost"),
            cost_budget=cost_budget,
            cost_weight=cost_weight,
            cost_unit=cost_unit,
        )
        self.suite = get_suite(suite)
        self._task_refs = self._task_references(tasks, data_dir)
        #: Tasks a reset without a ``"task"`` option draws from.
        self.tasks = tuple(self.suite.tasks if tasks is None else tasks)
        #: The suite's held-out tasks (not in :attr:`tasks`): never drawn, reached by name.
        self.held_out_tasks = tuple(t for t in self._task_refs if t not in self.tasks)
        self.limits = {name: limit for name, limit in limits.items() if limit is not None}
        self.schema = self.suite.make_schema()
        #: Whether runs can be continued and forked (see "Runs" above).
        self.forkable = bool(forkable)
        forking = None
        if self.forkable:
            forking = self._forking(budget, max_epochs, checkpoint_bytes, curve_length)
        elif max_epochs is not None or checkpoint_dir is not None or keep_checkpoints:
            raise ConfigError(
                "max_epochs=, checkpoint_dir= and keep_checkpoints= are settings of envs that "
                "keep their runs; make the env with forkable=True too"
            )
        #: The highest fidelity of a forkable env (``None`` otherwise).
        self.max_epochs = None if forking is None else forking.max_epochs
        self.interface = make_interface(interface, self.schema, history, forking)
        self.action_space = self.interface.action_space
        self.observation_space = self.interface.observation_space
        self.budget = budget
        self.reward_mode = reward
        self.strict = strict
        self.failure_reward = float(failure_reward)
        self.agent = agent
        self.env_id = env_id or f"researchgym/{suite}"
        self.render_mode = render_mode
        #: The arguments that define this env's campaigns, recorded with every step:
        #: ``gymnasium.make(env_id, **env_kwargs)`` makes the same env, up to the
        #: interface and the configuration (store, executor, device, data paths).
        self.env_kwargs: dict[str, Any] = {
            "budget": budget,
            "reward": reward,
            "cost_budget": None if self.costs.budget is None else self.costs.budget.to_dict(),
            "cost_weight": cost_weight,
            "cost_unit": cost_unit,
            "tasks": list(self.tasks),
            **limits,
            "history": history,
            "failure_reward": self.failure_reward,
            **(recorded_kwargs or {}),
        }
        if forking is not None:
            self.env_kwargs.update(
                forkable=True,
                max_epochs=forking.max_epochs,
                checkpoint_bytes=checkpoint_bytes,
                curve_length=curve_length,
            )

        if executor is None or isinstance(executor, str):
            from researchgym.engine import make_executor

            executor = make_executor(
                executor or "inprocess", device=device, timeout=timeout, runtime=runtime
            )
        self.executor = executor
        self.recorder = StepRecorder(
            store,
            env_id=self.env_id,
            source_env_id=source_env_id,
            observe=FlatInterface(self.schema, history, forking).observe,
            env_kwargs=self.env_kwargs,
        )
        self._view: CampaignView | None = None
        self._task_ref: TaskRef | None = None
        self._checkpoint_root = None if checkpoint_dir is None else Path(checkpoint_dir)
        self._owns_checkpoint_root = checkpoint_dir is None
        self._checkpoint_bytes = checkpoint_bytes
        self._keep_checkpoints = bool(keep_checkpoints)
        self._checkpoints: Checkpoints | None = None

    # --- gymnasium API ---------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        from researchgym.engine import TaskError, shipped_task_info

        super().reset(seed=seed)
        options = options or {}
        task = options.get("task")
        if task is None:
            task = self.tasks[int(self.np_random.integers(len(self.tasks)))]
        elif not isinstance(task, str) or task not in self._task_refs:
            held_out = f" or a held-out one of {self.held_out_tasks}" if self.held_out_tasks else ""
            raise TaskError(
                f"task={shorten(task)} is not one of this env's tasks; "
                f"{did_you_mean(task, self._task_refs)}choose one of {self.tasks}{held_out}"
            )
        agent = options.get("agent", self.agent)
        _check_agent(agent)
        campaign_id = options.get("campaign_id")
        campaign_id = uuid.uuid4().hex if campaign_id is None else check_campaign_id(campaign_id)
        self._task_ref = self._task_refs[task]
        described = shipped_task_info(self._task_ref)
        if described is None:
            from researchgym.engine import load_task_data

            described = load_task_data(self._task_ref).info
        self._view = CampaignView(
            task=task,
            task_description=described.description,
            task_features=described.features,
            budget=self.budget,
        )
        self._chance = described.chance
        self.costs.start()
        self.recorder.start_campaign(
            self._view,
            campaign_id=campaign_id,
            agent=agent,
            episode_seed=None if seed is None else int(seed),
        )
        if self.forkable:
            self._start_checkpoints()
        info = {"task": task, "campaign_id": self.campaign_id, "budget": self.budget}
        return self.interface.observe(self._view), info

    def step(self, action: Any):
        return self.step_many([action])[0]

    def step_many(self, actions: Sequence[Any]) -> list[tuple[Any, float, bool, bool, dict]]:
        """Take one step per action, training their jobs together as one batch.

        The steps are those :meth:`step` takes for each action in turn: the same seeds,
        store rows, rewards and infos, each step's observation the one after it. Only
        the training differs: the jobs of the steps that train go to the executor in
        one :meth:`~researchgym.engine.Executor.run_many` call, where the in-process
        executor trains those that share a model structure as one batched population
        (each member's metrics those of its job alone, up to float rounding) and Ray
        runs them in parallel. An action the env rejects is answered without training
        (``"invalid_action"``), and a diverging run fails alone, as in :meth:`step`.

        In a forkable env each step ends before the next begins, as a ``continue`` or
        ``fork`` may name a run of the same batch. When the campaign ends before the
        last action (a ``stop``, or the cost budget spent), the actions after it are not
        taken and the list is shorter; with a cost budget their jobs have trained, but
        they are neither charged nor recorded. With ``strict=True``, a malformed action
        raises after the steps before it are taken.

        Args:
            actions: a list or tuple of 1 to ``budget_left`` actions of the env's interface.

        Returns:
            ``(observation, reward, terminated, truncated, info)`` of each step taken, in order.

        Raises:
            gymnasium.error.ResetNeeded: the env was not reset, or its campaign is over.
            ConfigError: ``actions`` is not a non-empty list or tuple, or has more actions
                than the campaign has experiments left.
        """
        view = self._check_can_step()
        if not isinstance(actions, (list, tuple)) or not actions:
            raise ConfigError(
                f"actions={shorten(actions)} must be a non-empty list of actions; "
                "call step(action) for one"
            )
        if len(actions) > view.budget_left:
            raise ConfigError(
                f"{len(actions)} actions but the campaign has {view.budget_left} experiment(s) "
                f"left; pass at most {view.budget_left}"
            )
        steps: list[tuple[Any, float, bool, bool, dict]] = []
        size = 1 if self.forkable else len(actions)
        for first in range(0, len(actions), size):
            batch: list[_Pending] = []
            try:
                for action in actions[first : first + size]:
                    batch.append(self._begin_step(action, queued=len(batch)))
            finally:  # strict: the steps before a malformed action are taken, as step takes them
                steps += self._take(batch)
            if steps[-1][2] or steps[-1][3]:  # a stop, or the cost budget spent
                break
        return steps

    def _take(self, batch: list[_Pending]) -> list[tuple[Any, float, bool, bool, dict]]:
        """Train the steps' jobs together and end each step in turn, until the campaign ends."""
        training = [p for p in batch if p.result is None]
        jobs = [self._engine_job(p) for p in training]
        # a lone job (or none) runs as step has always run one
        ex = self.executor
        results = ex.run_many(jobs) if len(jobs) > 1 else [ex.run_job(job) for job in jobs]
        for pending, result in zip(training, results, strict=True):
            pending.result = result
        steps = []
        for pending in batch:
            steps.append(self._end_step(pending))
            if steps[-1][3]:  # the cost budget is spent: the later steps are not taken
                break
        return steps

    def _check_can_step(self) -> CampaignView:
        """The campaign's view, when it can take a step."""
        if self._view is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        if self._view.stopped:
            raise gym.error.ResetNeeded("the campaign was stopped; call reset()")
        if self._view.budget_left <= 0:
            raise gym.error.ResetNeeded("the campaign's budget is spent; call reset()")
        if self.costs.exhausted:
            raise gym.error.ResetNeeded("the campaign's cost budget is spent; call reset()")
        return self._view

    def _begin_step(self, action: Any, queued: int = 0) -> _Pending:
        """Parse and check a step's action, taken after ``queued`` steps begun but not yet
        ended: the step, with its result when it trains nothing."""
        from researchgym.engine import Result

        view = self._check_can_step()
        pending = _Pending(
            action=action,
            run=view.steps_done + queued,
            started_at=datetime.now(UTC),
            seed=int(self.np_random.integers(2**31 - 1)),
        )
        try:
            pending.command = self.interface.parse_command(action)
            pending.job = self._job(pending.command, pending.seed)
            if pending.job is not None:
                pending.cost = self._estimate(pending.job.metaprogram)  # raises over budget
        except SettingError as exc:
            if self.strict:
                raise
            pending.result = Result(status="invalid_action", error=str(exc))
        else:
            if pending.job is None:
                pending.result = Result(status="stopped")
        return pending

    def _engine_job(self, pending: _Pending) -> EngineJob:
        """The executor's job of a step that trains; a forkable env saves its checkpoint as
        the step's run's."""
        from researchgym.engine import Job as EngineJob

        job = pending.job
        assert job is not None and self._task_ref is not None
        if self._checkpoints is None:
            return EngineJob(job.metaprogram, self._task_ref, job.seed)
        return EngineJob(
            job.metaprogram,
            self._task_ref,
            job.seed,
            start=job.start,
            save_to=self._checkpoints.path_for(str(pending.run)),
            schedule_epochs=self.max_epochs,
        )

    def _end_step(self, pending: _Pending):
        """Account, record and observe a step whose result is in: ``step``'s return value."""
        view, result, job, command = self._view, pending.result, pending.job, pending.command
        assert view is not None and result is not None
        run, cost, seed, action = pending.run, pending.cost, pending.seed, pending.action
        started_at = pending.started_at
        if self._checkpoints is not None and job is not None and result.ok:
            from researchgym.engine import CheckpointMissing

            # An executor that answers without training (replay) saves nothing: such a
            # run cannot be continued, as CheckpointMissing then says.
            with contextlib.suppress(CheckpointMissing):
                self._checkpoints.added(str(run), result.score)
        metaprogram = None if job is None else job.metaprogram
        parent = None if job is None else job.parent
        if job is not None:
            seed = job.seed
        score = result.score
        step_cost = self.costs.charge(result, cost)
        stopped = result.status == "stopped"
        penalty = self.costs.penalty(step_cost)
        reward = 0.0 if stopped else self._reward(score, view.best_score) - penalty
        encoded = None if metaprogram is None else self.schema.encode_valid(metaprogram)
        view.steps_done += 1
        view.stopped = stopped
        if score is not None and (view.best_score is None or score > view.best_score):
            view.best_score = score
        verb = None if command is None else command.verb
        step: dict[str, Any] = {
            "settings": metaprogram,
            "encoded": np.zeros(len(self.schema), np.float32) if encoded is None else encoded,
            "score": score,
            "status": result.status,
        }
        if self.forkable:
            curve = [entry.get("val_score", math.nan) for entry in result.curve]
            step.update(verb=verb, parent=parent, epochs=result.epochs, curve=curve, seed=seed)
        view.history.append(step)
        terminated = view.budget_left <= 0 or stopped
        truncated = self.costs.exhausted
        info = {
            "task": view.task,
            "status": result.status,
            "error": result.error,
            "metrics": result.val_metrics,
            "test_metrics": result.test_metrics,
            "curve": result.curve,
            "cost": step_cost,
            "spent": self.costs.spent,
            "cost_left": self.costs.left,
            "objectives": objectives(result),
            "metaprogram": metaprogram,
            "estimate": None if cost is None else cost.to_dict(),
            "best_score": view.best_score,
            "seed": seed,
            "answered_by": result.answered_by,
            "run": run,
            "verb": verb,
            "parent_run": parent,
            "epochs": result.epochs,
        }
        self.recorder.record(
            action=self.interface.as_recorded(action),
            metaprogram=metaprogram,
            action_flat=encoded,
            result=result,
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            seed=seed,
            started_at=started_at,
            verb=verb,
            parent_run_id=None if parent is None else view.history[parent].get("run_id"),
        )
        step["run_id"] = self.recorder.last_run_id
        return self.interface.observe(view), reward, terminated, truncated, info

    def render(self) -> str | None:  # type: ignore[override]  # gymnasium: unbound TypeVar
        if self.render_mode != "ansi" or self._view is None:
            return None
        lines = [f"{self.env_id} task={self._view.task} budget_left={self._view.budget_left}"]
        for i, step in enumerate(self._view.history):
            score = "-" if step["score"] is None else f"{step['score']:.4f}"
            run = ""
            if self.forkable:
                parent = "" if step["parent"] is None else f" of run {step['parent']}"
                run = f" {step['verb'] or '-'}{parent} epochs={step['epochs']}"
            lines.append(f"  step {i}: {step['status']:<14} score={score}{run}")
        return "\n".join(lines)

    def close(self) -> None:
        self.executor.close()
        self.recorder.close()
        self._end_checkpoints()
        if self._owns_checkpoint_root and self._checkpoint_root is not None:
            if not self._keep_checkpoints:
                shutil.rmtree(self._checkpoint_root, ignore_errors=True)
            self._checkpoint_root = None
        super().close()

    # --- helpers ------------------------------------------------------------------
    def to_action(self, metaprogram: dict[str, Any]) -> Any:
        """The action of this env's interface for a (partial) metaprogram, or for what a
        planner proposes to do with a run: a dict with ``"verb"`` and ``"run"`` keys,
        e.g. ``{"verb": "continue", "run": 3, "train.epochs": 27}`` (see "Runs" above).

        Raises:
            SettingError: unknown or invalid settings, or a verb this env does not take.
        """
        run = metaprogram.get("run")
        parent = None
        if metaprogram.get("verb") == "fork" and self._view is not None:
            steps = self._view.history
            if isinstance(run, int) and 0 <= run < len(steps):
                parent = steps[run]["settings"]
        return self.interface.to_action(metaprogram, parent)

    @property
    def checkpoint_dir(self) -> Path | None:
        """The directory of the current campaign's checkpoints (``None`` unless forkable
        and reset)."""
        return None if self._checkpoints is None else self._checkpoints.root

    def _forking(
        self, budget: int, max_epochs: Any, checkpoint_bytes: Any, curve_length: Any
    ) -> Forking:
        """What a forkable env's interfaces show and read, its arguments checked."""
        if EPOCHS not in self.schema:
            raise ConfigError(
                f"suite {self.suite.name!r} has no {EPOCHS} setting, the fidelity a forkable "
                "env continues runs to; make the env with forkable=False"
            )
        if budget < 2:
            raise ConfigError(f"budget={budget!r} leaves no run to continue; forkable needs 2+")
        highest = self.schema[EPOCHS].high  # type: ignore[attr-defined]  # an Int setting
        if max_epochs is None:
            max_epochs = highest
        if (
            isinstance(max_epochs, bool)
            or not isinstance(max_epochs, int)
            or not 1 <= max_epochs <= highest
        ):
            raise ConfigError(
                f"max_epochs={shorten(max_epochs)} must be an integer in [1, {highest}] "
                f"(the range of {EPOCHS}), or None for {highest}"
            )
        for name, value in {
            "checkpoint_bytes": checkpoint_bytes,
            "curve_length": curve_length,
        }.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={shorten(value)} must be a positive integer")
        return Forking(budget=budget, max_epochs=max_epochs, curve_length=curve_length)

    def _job(self, command: Command, seed: int) -> _Job | None:
        """The training job a command asks for (``None`` for ``stop``).

        Raises:
            SettingError: the command names a run it cannot start from, or a fidelity
                it cannot reach.
        """
        if command.verb == "stop":
            return None
        if command.verb == "new":
            job = _Job(command.settings, seed)
        else:
            job = self._job_from_run(command, seed)
        epochs = job.metaprogram.get(EPOCHS, 0)
        if self.max_epochs is not None and epochs > self.max_epochs:
            raise SettingError(
                f"{EPOCHS}={epochs} is over this env's max_epochs={self.max_epochs}; train to "
                f"at most {self.max_epochs} epochs in all"
            )
        return job

    def _job_from_run(self, command: Command, seed: int) -> _Job:
        """The job of a ``continue`` or ``fork`` of ``command.run``, checked."""
        from researchgym.engine import CheckpointMissing, Start

        assert self._view is not None and self._checkpoints is not None and command.run is not None
        k, verb, given = command.run, command.verb, command.settings
        steps = self._view.history
        if k >= len(steps):
            have = f"runs 0 to {len(steps) - 1}" if steps else "no runs yet"
            raise SettingError(
                f"run={k} does not exist: this campaign has {have}; {verb} one of those"
            )
        parent = steps[k]
        if parent["status"] != "ok":
            raise SettingError(
                f"run {k} has no trained weights to {verb} (status {parent['status']!r}); "
                f"{verb} a run whose status is 'ok'"
            )
        refusal = self.executor.refuses(verb)
        if refusal is not None:
            raise SettingError(refusal)
        if verb == "continue":
            changed = [
                n for n, v in given.items() if n != EPOCHS and parent["settings"].get(n) != v
            ]
            if changed:
                raise SettingError(
                    f"continue trains run {k} on with its own settings, but the action changes "
                    f"{shorten(', '.join(changed))}; fork run {k} to change settings"
                )
            metaprogram = {**parent["settings"], **given}
            seed = parent["seed"]  # the run's data order goes on as if it had never stopped
        else:
            metaprogram = self.schema.validate({**parent["settings"], **given})
        if metaprogram[EPOCHS] <= parent["epochs"]:
            raise SettingError(
                f"{verb} to {EPOCHS}={metaprogram[EPOCHS]} trains no further than run {k}'s "
                f"{parent['epochs']} epochs; pass {EPOCHS} above {parent['epochs']} (epochs in "
                f"all, run {k}'s included)"
            )
        try:
            checkpoint = self._checkpoints.get(str(k))
        except CheckpointMissing as exc:
            raise SettingError(
                f"run {k} cannot be {'continued' if verb == 'continue' else 'forked'}: {exc}; "
                f"pick a run whose checkpoint is kept (checkpoint_bytes= bounds them)"
            ) from None
        return _Job(metaprogram, seed, parent=k, start=Start(checkpoint, verb))

    def _start_checkpoints(self) -> None:
        """A fresh checkpoint directory for the campaign just reset (the last one's cleaned)."""
        from researchgym.engine import Checkpoints

        self._end_checkpoints()
        if self._checkpoint_root is None:
            self._checkpoint_root = Path(tempfile.mkdtemp(prefix="researchgym-checkpoints-"))
        self._checkpoints = Checkpoints(
            self._checkpoint_root / self.campaign_id, max_bytes=self._checkpoint_bytes
        )

    def _end_checkpoints(self) -> None:
        """Delete the current campaign's checkpoints, unless ``keep_checkpoints``."""
        if self._checkpoints is not None and not self._keep_checkpoints:
            self._checkpoints.clear()
            with contextlib.suppress(OSError):  # not empty: files someone else put there
                self._checkpoints.root.rmdir()
        self._checkpoints = None

    def estimate(self, action: Any) -> dict[str, Any]:
        """Parameters and FLOPs of an action's design on the current task, before training.

        Spends no budget. Returns the dict a step reports as ``info["estimate"]``,
        plus ``"rejected"``: ``None``, or why a step would reject the design
        (over ``max_params``, ``max_train_flops`` or ``max_train_steps``).

        Raises:
            SettingError: the action is malformed, has a verb other than ``new``, or its
                cost cannot be estimated.
        """
        if self._view is None:
            raise gym.error.ResetNeeded(
                "call reset() before estimate(): the cost depends on the task"
            )
        from researchgym.engine import BudgetError, check_budget

        metaprogram = self.interface.parse_action(action)
        cost = self._cost(metaprogram)
        if cost is None:
            raise SettingError("this design's cost cannot be estimated before training")
        try:
            check_budget(cost, **self.limits)
            rejected = None
        except BudgetError as exc:
            rejected = str(exc)
        return {**cost.to_dict(), "rejected": rejected}

    def _cost(self, metaprogram: dict[str, Any]):
        """The design's estimated cost on the campaign's task, or ``None`` when it cannot be
        estimated."""
        from researchgym.engine import estimate

        if self._task_ref is None:
            raise gym.error.ResetNeeded("call reset() first: the cost depends on the task")
        try:
            return estimate(metaprogram, task=self._task_ref)
        except Exception:  # noqa: BLE001 - such a design fails in training, with its error
            return None

    def _estimate(self, metaprogram: dict[str, Any]):
        """The design's cost when the env has limits or counts FLOPs (``None`` otherwise:
        estimating builds the model, which would dominate fast executors); raises
        ``BudgetError`` (a ``SettingError``) when over a limit, or when the env counts FLOPs
        and the design's cannot be estimated."""
        if not self.limits and not self.costs.counts_flops:
            return None
        from researchgym.engine import check_budget

        cost = self._cost(metaprogram)
        if cost is not None:
            check_budget(cost, **self.limits)
        elif self.costs.counts_flops:
            raise SettingError(
                "this design's FLOPs cannot be estimated before training (its model does not "
                "build), and this env counts cost in FLOPs, so it would go uncounted; fix the "
                "design, or count cost in seconds or samples"
            )
        return cost

    def _task_references(self, tasks: Sequence[str] | None, data_dir: Any) -> dict[str, TaskRef]:
        """Map each task name, then each of the suite's held-out tasks, to its reference
        (with the data directory, if any).

        The data directory comes from configuration (``data_dir``, else the
        dataset's environment variable, read now) and is never recorded as part
        of the task; tasks and their files are checked now, so a missing dataset
        fails at ``gym.make`` with a message naming the files expected.
        """
        from researchgym.engine import TaskError, TaskRef, check_task, parse_task

        names = tuple(self.suite.tasks if tasks is None else tasks)
        if not names or any(not isinstance(t, str) for t in names):
            raise TaskError(f"tasks={shorten(tasks)} must be a non-empty list of task names")
        names += tuple(t for t in self.suite.held_out_tasks if t not in names)
        datasets = {parse_task(t)[0].name for t in self.suite.tasks}
        refs: dict[str, TaskRef] = {}
        reads_files = False
        for task in names:
            spec, _ = parse_task(task)
            if spec.name not in datasets:
                raise TaskError(
                    f"task {shorten(task)} is not a task of suite {self.suite.name!r}; its datasets are "
                    f"{sorted(datasets)}"
                )
            directory = None
            if spec.data_dir_var is not None:
                reads_files = True
                directory = data_dir if data_dir is not None else os.environ.get(spec.data_dir_var)
            ref = TaskRef(task, data_dir=Path(directory) if directory else None)
            check_task(ref)
            refs[task] = ref
        if data_dir is not None and not reads_files:
            raise ConfigError(
                f"data_dir={os.fspath(data_dir)!r} is for envs that read dataset files; suite "
                f"{self.suite.name!r} reads none"
            )
        return refs

    def _reward(self, score: float | None, best: float | None) -> float:
        """The reward of a step's score, given the campaign's best score before it, before
        any cost is subtracted."""
        if score is None:
            return self.failure_reward
        mode = self.reward_mode.removesuffix("_minus_cost")
        if mode == "metric":
            return float(score)
        if mode == "improvement":
            baseline = self._chance if best is None else best
            return float(max(0.0, score - baseline))
        return float(max(MIN_OK_REWARD, -(1.0 - score) / (1.0 - self._chance)))

    @property
    def campaign_id(self) -> str:
        """Id of the current campaign (episode); empty before the first reset."""
        return self.recorder.campaign_id

    @property
    def last_run_id(self) -> str | None:
        """``run_id`` of the latest recorded step (what ``researchgym rerun`` takes);
        ``None`` before the first step, or with ``store=False``."""
        return self.recorder.last_run_id

    @property
    def task_ref(self) -> TaskRef | None:
        """The current campaign's task reference; ``None`` before the first reset."""
        return self._task_ref

    @property
    def store(self) -> Any:
        """The store steps are recorded in (opened on first use), or ``None`` with ``store=False``."""
        return self.recorder.store


@dataclass(frozen=True)
class _Job:
    """A training job a step runs: from scratch, or from run ``parent``'s checkpoint."""

    metaprogram: dict[str, Any]
    seed: int
    parent: int | None = None
    start: Start | None = None


@dataclass
class _Pending:
    """A step between its action and its result (see ``ResearchEnv._begin_step``)."""

    action: Any
    run: int
    started_at: datetime
    seed: int
    command: Command | None = None
    job: _Job | None = None
    cost: Any = None
    result: Result | None = None


class NotAResearchEnvError(ResearchGymError, ValueError):
    """An env that a ResearchGym function needs to be a :class:`ResearchEnv` is another env."""


def unwrap_research_env(env: gym.Env) -> ResearchEnv:
    """The :class:`ResearchEnv` under ``env``'s wrappers (``env.unwrapped``, typed).

    Raises:
        NotAResearchEnvError: ``env`` does not wrap a ResearchEnv.
    """
    base = env.unwrapped
    if not isinstance(base, ResearchEnv):
        raise NotAResearchEnvError(
            f"{shorten(env)} is a {type(base).__name__}, not a ResearchGym env; make one of "
            "researchgym.ENV_IDS, e.g. gym.make('researchgym/Digits-v0')"
        )
    return base


def _check_agent(agent: Any) -> None:
    if not isinstance(agent, str) or not agent:
        raise ConfigError(
            f"agent={shorten(agent)} must be a non-empty name, e.g. "
            "reset(options={'agent': 'tpe'})"
        )


def _single_threaded_after_fork() -> None:
    """Train with one CPU thread in a forked child (e.g. a worker of gymnasium's ``AsyncVectorEnv``).

    A forked child inherits torch's OpenMP thread pool in a state it cannot use:
    its first parallel op hangs once the parent has trained anything. One thread
    per worker also keeps N workers from oversubscribing the CPU.
    """
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


os.register_at_fork(after_in_child=_single_threaded_after_fork)
