"""The campaign loop: a planner proposes, the env trains, the planner learns.

::

    import gymnasium as gym
    from researchgym.planning import make_planner, run_campaign

    env = gym.make("researchgym/Tabular-v0", store=False)
    result = run_campaign(env, make_planner("tpe"), seed=0, fixed={"train.epochs": 5})
    result.best_score, result.best_metaprogram

:func:`rollout` makes the env for a planner and runs its campaigns (what
``researchgym rollout`` and every ``python -m agents.NAME`` do), and
:func:`optimize` runs a planner against any function of a metaprogram (no env,
no training): the seam for testing and comparing search strategies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker

from researchgym.errors import shorten
from researchgym.planning.context import campaign_context
from researchgym.planning.protocol import Planner, PlannerError, validate_pins
from researchgym.spaces import Schema

__all__ = [
    "CampaignResult",
    "StepRecord",
    "best_per_task",
    "optimize",
    "rollout",
    "run_campaign",
    "run_campaigns",
]


@dataclass
class StepRecord:
    """One step of a campaign, as the campaign loop saw it."""

    episode: int
    step: int
    budget: int
    task: str
    metaprogram: dict[str, Any] | None
    reward: float
    status: str
    score: float | None
    test_score: float | None
    seconds: float
    info: dict[str, Any] = field(repr=False, default_factory=dict)


@dataclass
class CampaignResult:
    """The steps of one campaign (episode) and what it found."""

    agent: str
    env_id: str
    task: str
    seed: int | None
    steps: list[StepRecord] = field(default_factory=list)

    @property
    def best(self) -> StepRecord | None:
        """The step with the best validation score (``None`` until one succeeds)."""
        scored = [(s.score, s) for s in self.steps if s.score is not None]
        return max(scored, key=lambda pair: pair[0])[1] if scored else None

    @property
    def best_score(self) -> float | None:
        return None if self.best is None else self.best.score

    @property
    def best_metaprogram(self) -> dict[str, Any] | None:
        return None if self.best is None else self.best.metaprogram

    def best_so_far(self) -> list[float | None]:
        """Best validation score after each step (``None`` until one succeeds)."""
        out: list[float | None] = []
        best: float | None = None
        for s in self.steps:
            if s.score is not None and (best is None or s.score > best):
                best = s.score
            out.append(best)
        return out


def best_per_task(results: Sequence[CampaignResult]) -> dict[str, StepRecord]:
    """The best step of each task over ``results``, by validation score.

    Scores of different tasks are never compared (an accuracy is not an R²), so
    campaigns on several tasks have one best each, in the order the tasks were
    first scored; a task with no finished step has none.
    """
    best: dict[str, tuple[float, StepRecord]] = {}
    for result in results:
        for step in result.steps:
            if step.score is None:
                continue
            if step.task not in best or step.score > best[step.task][0]:
                best[step.task] = (step.score, step)
    return {task: step for task, (_, step) in best.items()}


def run_campaign(
    env: gym.Env,
    planner: Planner,
    *,
    seed: int | None = None,
    fixed: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    episode: int = 0,
    callback: Callable[[StepRecord], None] | None = None,
    batch: int = 1,
) -> CampaignResult:
    """Run one campaign (episode) of ``planner`` on ``env`` until its budget is spent.

    The env is reset with ``options`` plus ``{"agent": planner.name}``, so every
    step is recorded under the planner's name. A planner that defines
    ``bind(context)`` is then given the campaign's
    :class:`~researchgym.planning.CampaignContext`. Each proposal, with ``fixed``
    settings pinned on top, is the one metaprogram turned into an action. In a
    forkable env a proposal may also say what to do with an earlier run, e.g.
    ``{"verb": "continue", "run": 3, "train.epochs": 27}`` (see
    ``ResearchEnv.to_action``); pins apply to new runs only.

    With ``batch=K`` above 1, each round asks the planner's ``propose_batch`` for
    ``min(K, experiments left)`` proposals, takes them with ``ResearchEnv.step_many``
    (their jobs trained as one batch: see there), then observes and records each step
    in order. The steps are those K calls to ``step`` would take; only what the planner
    knew when proposing differs.

    Args:
        env: a ResearchGym env (any interface; a planner that reads observations
            needs the interface it names in ``planner.interface``).
        planner: the planner.
        seed: seeds the env's reset and the planner.
        fixed: settings pinned for every step, e.g. ``{"train.epochs": 2}``.
        options: passed to ``env.reset`` (e.g. ``{"task": "wine"}``).
        episode: index stored in each :class:`StepRecord`.
        callback: called with each step's record as it finishes.
        batch: proposals trained together per round (1: one step at a time).

    Raises:
        PlannerError: the planner reads another interface than the env's, or ``batch``
            is above 1 and the planner has no ``propose_batch`` (or it returns another
            number of proposals), or the env has wrappers ``step_many`` would bypass.
        SettingError: a pinned setting that is unknown or out of range, or a proposal
            with a verb the env does not take (one made without ``forkable=True``).
    """
    base: Any = env.unwrapped  # a ResearchEnv
    schema: Schema = base.schema
    pins = validate_pins(schema, fixed)
    wanted = getattr(planner, "interface", None)
    if wanted is not None and base.interface.name != wanted:
        raise PlannerError(
            f"planner {planner.name!r} reads {wanted!r} observations but the env uses "
            f"interface={base.interface.name!r}; make the env with interface={wanted!r}"
        )
    _check_batch(env, planner, batch)
    observation, reset_info = env.reset(
        seed=seed, options={**(options or {}), "agent": planner.name}
    )
    task = reset_info["task"]
    if hasattr(planner, "bind"):
        planner.bind(campaign_context(env, task))
    planner.reset(schema, seed=seed, fixed=pins)
    result = CampaignResult(planner.name, base.env_id, task, seed)
    while True:
        if batch == 1:
            proposals = [planner.propose(observation)]
        else:
            n = min(batch, base.budget - len(result.steps))
            proposals = list(planner.propose_batch(observation, n))  # type: ignore[attr-defined]
            if len(proposals) != n:
                raise PlannerError(
                    f"planner {planner.name!r} returned {len(proposals)} proposals from "
                    f"propose_batch(observation, {n}); it must return {n}"
                )
        actions: list[Any] = []
        new_settings: list[dict[str, Any] | None] = []  # None: a verb on an earlier run
        for proposal in proposals:
            settings: dict[str, Any] = dict(proposal)
            command: dict[str, Any] = {k: settings.pop(k) for k in ("verb", "run") if k in settings}
            new = command.get("verb", "new") == "new"
            if new:
                settings = schema.validate({**settings, **pins})
            actions.append(base.to_action({**command, **settings}))
            new_settings.append(settings if new else None)
        steps = [env.step(actions[0])] if batch == 1 else base.step_many(actions)
        # step_many takes fewer steps when the campaign ends early: the rest are not observed
        for given, step in zip(new_settings, steps, strict=False):
            observation, reward, terminated, truncated, info = step
            trained = info.get("metaprogram") or given
            planner.observe(trained, float(reward), info)
            ok = info["status"] == "ok"
            record = StepRecord(
                episode=episode,
                step=len(result.steps),
                budget=base.budget,
                task=info["task"],
                metaprogram=trained,
                reward=float(reward),
                status=info["status"],
                score=info["metrics"].get("score") if ok else None,
                test_score=info["test_metrics"].get("score") if ok else None,
                seconds=info["cost"]["seconds"],
                info=info,
            )
            result.steps.append(record)
            if callback is not None:
                callback(record)
            if terminated or truncated:
                return result


#: Wrappers of ``gymnasium.make`` that ``ResearchEnv.step_many`` may bypass: they check
#: the order of calls and the first step, and change no step.
_TRANSPARENT_WRAPPERS = (OrderEnforcing, PassiveEnvChecker)


def _check_batch(env: gym.Env, planner: Planner, batch: Any) -> None:
    """Raise :class:`PlannerError` unless ``planner`` can run on ``env`` ``batch`` proposals
    at a time."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise PlannerError(f"batch={shorten(batch)} must be a positive integer (1: no batching)")
    if batch == 1:
        return
    if not callable(getattr(planner, "propose_batch", None)):
        raise PlannerError(
            f"planner {planner.name!r} has no propose_batch: it proposes one metaprogram at a "
            f"time, from the results before it; run it with batch=1"
        )
    wrapper = env
    while isinstance(wrapper, gym.Wrapper):
        if type(wrapper) not in _TRANSPARENT_WRAPPERS:
            raise PlannerError(
                f"batch={batch} takes steps with the ResearchEnv's step_many, which would "
                f"bypass the wrapper {type(wrapper).__name__}; run with batch=1, or without it"
            )
        wrapper = wrapper.env


def run_campaigns(
    env: gym.Env,
    planner: Planner,
    *,
    episodes: int = 1,
    seed: int = 0,
    fixed: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    callback: Callable[[StepRecord], None] | None = None,
    batch: int = 1,
) -> list[CampaignResult]:
    """Run ``episodes`` campaigns of ``planner``; campaign ``i`` is seeded ``seed + i``.

    The arguments are those of :func:`run_campaign`.
    """
    return [
        run_campaign(
            env,
            planner,
            seed=seed + i,
            fixed=fixed,
            options=options,
            episode=i,
            callback=callback,
            batch=batch,
        )
        for i in range(episodes)
    ]


def rollout(
    planner: Planner,
    env_id: str,
    *,
    episodes: int = 1,
    seed: int = 0,
    fixed: Mapping[str, Any] | Sequence[str] | None = None,
    budget: int | None = None,
    store: Any = None,
    options: Mapping[str, Any] | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    callback: Callable[[StepRecord], None] | None = None,
    batch: int = 1,
) -> list[CampaignResult]:
    """Make ``env_id`` for ``planner`` (the interface it reads), run its campaigns, close the env.

    Args:
        planner: the planner.
        env_id: a registered env id, e.g. ``"researchgym/Tabular-v0"``.
        episodes: campaigns to run; campaign ``i`` is seeded ``seed + i``.
        seed: seed of the first campaign and of the planner.
        fixed: settings pinned for every step, as a mapping or as ``name=value``
            strings (``["train.epochs=2"]``).
        budget: experiments per campaign (default: the env's).
        store: the env's ``store=`` (a directory, ``None`` for the default, ``False``
            for nothing recorded).
        options: passed to every ``env.reset`` (e.g. ``{"task": "wine"}``).
        env_kwargs: other arguments of the env (e.g. ``{"missing": "nearest"}`` for
            Replay-v0), on top of the planner's own ``env_kwargs`` (e.g. ``{"forkable": True}``
            for a planner that continues runs).
        callback: called with each step's record as it finishes.
        batch: proposals trained together as one batched job (see :func:`run_campaign`).

    Raises:
        gymnasium.error.Error: an unknown env id.
        SettingError: a pinned setting that is malformed, unknown or out of range.
        PlannerError: the planner cannot run on this env.
    """
    kwargs: dict[str, Any] = {
        **getattr(planner, "env_kwargs", {}),
        **(env_kwargs or {}),
        "store": store,
        "interface": getattr(planner, "interface", None) or "dict",
    }
    if budget is not None:
        kwargs["budget"] = budget
    env = gym.make(env_id, disable_env_checker=True, **kwargs)
    try:
        schema: Schema = env.unwrapped.schema  # type: ignore[attr-defined]
        if fixed is not None and not isinstance(fixed, Mapping):
            fixed = schema.parse_overrides(list(fixed))
        schema.validate(fixed or {})
        return run_campaigns(
            env,
            planner,
            episodes=episodes,
            seed=seed,
            fixed=fixed,
            options=options,
            callback=callback,
            batch=batch,
        )
    finally:
        env.close()


def optimize(
    planner: Planner,
    schema: Schema,
    objective: Callable[[dict[str, Any]], float],
    *,
    n_trials: int,
    seed: int | None = None,
    fixed: Mapping[str, Any] | None = None,
) -> list[tuple[dict[str, Any], float]]:
    """Run a black-box planner against ``objective(metaprogram) -> value`` (higher is better).

    No env and no training: each proposal (pins applied, defaults filled) is
    scored by ``objective`` and fed back with ``info={"status": "ok"}``. The
    planner's observation is ``None``.

    Returns:
        ``(metaprogram, value)`` per trial, in order.
    """
    pins = validate_pins(schema, fixed)
    planner.reset(schema, seed=seed, fixed=pins)
    history: list[tuple[dict[str, Any], float]] = []
    for _ in range(n_trials):
        metaprogram = schema.validate({**planner.propose(None), **pins})
        value = float(objective(metaprogram))
        planner.observe(metaprogram, value, {"status": "ok", "metaprogram": metaprogram})
        history.append((metaprogram, value))
    return history
