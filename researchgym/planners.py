"""Planners: what proposes the next experiment of a research campaign.

A planner works in *metaprogram* space (a dict of settings by dotted name). It
is told the schema when a campaign starts, proposes a metaprogram from the
env's observation, and may learn from each step's result::

    planner.reset(schema, seed=0, fixed={"train.epochs": 2})
    metaprogram = planner.propose(observation)
    ...  # the harness turns it into an action: env.unwrapped.to_action(metaprogram)
    planner.observe(metaprogram, reward, info)

Planners live in ``agents/`` (one file each) and are built by name, like
gymnasium envs, from lazy string entry points::

    from researchgym.planners import make_planner, run_campaign

    env = gym.make("researchgym/Tabular-v0", store=False)
    result = run_campaign(env, make_planner("tpe"), seed=0, fixed={"train.epochs": 5})
    result.best_score, result.best_metaprogram

:func:`optimize` runs a planner against any function of a metaprogram (no env,
no training): the seam for testing and comparing search strategies.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib
import itertools
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from researchgym.errors import ResearchGymError
from researchgym.spaces import Schema, SettingError

__all__ = [
    "PLANNERS",
    "CampaignArgs",
    "CampaignResult",
    "PinSettings",
    "Planner",
    "PlannerError",
    "PlannerSpec",
    "SearchPlanner",
    "StepRecord",
    "make_planner",
    "make_trainer",
    "optimize",
    "parse_args",
    "planner_names",
    "register_planner",
    "run_campaign",
    "run_campaigns",
    "run_from_args",
    "validate_pins",
]


class PlannerError(ResearchGymError, ValueError):
    """A planner that cannot be built or cannot run as asked."""


# --- the protocol ---------------------------------------------------------------------------
@runtime_checkable
class Planner(Protocol):
    """What every planner implements.

    Attributes:
        name: recorded as ``agent`` with every step the planner takes.
        interface: the observation form the planner reads (``"dict"``, ``"flat"``
            or ``"text"``), or ``None`` when it ignores observations (black-box search).

    A planner that needs the env itself (its budgets, executor or store, like the
    architecture designer) also defines ``bind(env)``; :func:`run_campaign` calls
    it before each campaign.
    """

    name: str
    interface: str | None

    def reset(
        self, schema: Schema, *, seed: int | None = None, fixed: Mapping[str, Any] | None = None
    ) -> None:
        """Start a campaign over ``schema``; ``fixed`` settings are pinned for every step."""

    def propose(self, observation: Any) -> dict[str, Any]:
        """The next metaprogram to train (settings by name; omitted ones take defaults)."""

    def observe(self, metaprogram: dict[str, Any] | None, reward: float, info: Mapping[str, Any]) -> None:
        """Learn from a step: what was trained, its reward and the env's ``info``."""


class SearchPlanner:
    """Shared plumbing for planners: keeps the schema, the pins and a seeded RNG.

    Subclasses implement :meth:`propose` and, when they learn, :meth:`observe`.
    """

    name = "search"
    interface: str | None = None

    def reset(
        self, schema: Schema, *, seed: int | None = None, fixed: Mapping[str, Any] | None = None
    ) -> None:
        self.schema = schema
        self.fixed = validate_pins(schema, fixed)
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def propose(self, observation: Any) -> dict[str, Any]:
        raise NotImplementedError

    def observe(self, metaprogram: dict[str, Any] | None, reward: float, info: Mapping[str, Any]) -> None:
        pass

    def free_settings(self) -> list[str]:
        """Names of the settings the planner chooses (every setting that is not pinned)."""
        return [name for name in self.schema.names if name not in self.fixed]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def validate_pins(schema: Schema, fixed: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check pinned settings (names and values) and return them in canonical form."""
    return {name: schema[name].validate(value) for name, value in (fixed or {}).items()}


# --- the registry -----------------------------------------------------------------------------
@dataclass(frozen=True)
class PlannerSpec:
    """How to build a planner by name.

    Attributes:
        name: the name used on the command line and recorded as ``agent``.
        entry_point: ``"module:Class"`` of the planner, imported on first use.
        trainer: ``"module:function"`` that trains its policy, for learned planners.
        extra: the optional dependency group it needs (``pip install 'researchgym[EXTRA]'``).
        description: one line for docs and the command line.
        install_note: added to the error raised when its dependency is missing.
    """

    name: str
    entry_point: str
    trainer: str | None = None
    extra: str | None = None
    description: str = ""
    install_note: str = ""


PLANNERS: dict[str, PlannerSpec] = {
    spec.name: spec
    for spec in (
        PlannerSpec("random", "agents.random_search:RandomPlanner", description="uniform in each setting's own scale (log, int, categorical)"),
        PlannerSpec("sobol", "agents.sobol:SobolPlanner", description="scrambled Sobol quasi-random sequence over the flat encoding"),
        PlannerSpec("grid", "agents.grid:GridPlanner", description="grid over the settings (levels per number), visited in a seeded order"),
        PlannerSpec("tpe", "agents.tpe:TPEPlanner", extra="hpo", description="Optuna TPE, define-by-run over the schema's conditional space"),
        PlannerSpec("default", "agents.default:DefaultPlanner", description="every setting at its default, each step"),
        PlannerSpec(
            "transformer", "agents.transformer_planner:TransformerPlanner", "agents.transformer_planner:train", "transformers",
            description="GPT-2 trained from scratch on serialized campaigns (`researchgym train-planner`), constrained decoding",
        ),
        PlannerSpec("llm", "agents.llm_agent:LLMAgent", description="any language model (callable, local transformers pipeline or HTTP endpoint) replying JSON settings"),
        PlannerSpec("designer", "agents.designer:DesignerPlanner", description="designer-reviewer loop over unit-tree architectures: propose a change, check it builds within budget, review it with a short run; only accepted designs train in full"),
        PlannerSpec("ppo-sb3", "agents.ppo_sb3:PPOPlanner", "agents.ppo_sb3:train", "rl", "stable-baselines3 PPO policy on the flat interface"),
        PlannerSpec(
            "ppo-rllib", "agents.ppo_rllib:RLlibPPOPlanner", "agents.ppo_rllib:train", "rllib",
            "RLlib PPO policy on the flat interface",
            "note: ray[rllib] 2.60 requires gymnasium==1.2.2, so pip will replace the installed gymnasium",
        ),
    )
}


def register_planner(
    name: str,
    entry_point: str,
    *,
    trainer: str | None = None,
    extra: str | None = None,
    description: str = "",
    install_note: str = "",
) -> None:
    """Register a planner under ``name`` (lazy ``"module:Class"`` entry point)."""
    for point in (entry_point, trainer):
        if point is not None and ":" not in point:
            raise PlannerError(f"entry point {point!r} must look like 'package.module:name'")
    PLANNERS[name] = PlannerSpec(name, entry_point, trainer, extra, description, install_note)


def planner_names() -> list[str]:
    """Names of the registered planners."""
    return list(PLANNERS)


def _spec(name: str) -> PlannerSpec:
    if name not in PLANNERS:
        close = difflib.get_close_matches(name, PLANNERS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise PlannerError(f"unknown planner {name!r}; {hint}registered planners: {', '.join(PLANNERS)}")
    return PLANNERS[name]


def _load(spec: PlannerSpec, entry_point: str) -> Any:
    module_name, _, attr = entry_point.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == module_name or module_name.startswith(exc.name + ".")):
            raise
        extra = f"pip install 'researchgym[{spec.extra}]'" if spec.extra else f"pip install {exc.name}"
        note = f" ({spec.install_note})" if spec.install_note else ""
        raise PlannerError(
            f"planner {spec.name!r} needs the package {exc.name!r}, which is not installed; "
            f"install it with `{extra}`{note}"
        ) from exc
    return getattr(module, attr)


def make_planner(name: str, **kwargs: Any) -> Planner:
    """Build the planner registered as ``name`` with its keyword arguments.

    Raises:
        PlannerError: an unknown name (with a suggestion) or a missing optional dependency.
    """
    spec = _spec(name)
    return _load(spec, spec.entry_point)(**kwargs)


def make_trainer(name: str) -> Callable[..., Any]:
    """The training function of a learned planner (``"ppo-sb3"``, ``"ppo-rllib"``).

    Every trainer is called as ``train(env_id, *, total_timesteps, seed, fixed,
    save_path, store, budget, n_envs, progress)`` and returns the saved policy's path.
    """
    spec = _spec(name)
    if spec.trainer is None:
        trainable = [s.name for s in PLANNERS.values() if s.trainer]
        raise PlannerError(f"planner {name!r} has nothing to train; trainable planners: {', '.join(trainable)}")
    return _load(spec, spec.trainer)


# --- pins as an env wrapper -----------------------------------------------------------------
class PinSettings(gym.ActionWrapper):
    """Overwrite pinned settings in every action (any interface).

    Learned planners train through it, so a policy never pays for settings the
    user pinned (e.g. ``{"train.epochs": 2}`` for cheap training). Malformed
    actions pass through unchanged, so the env still reports them.
    """

    def __init__(self, env: gym.Env, fixed: Mapping[str, Any] | None = None):
        super().__init__(env)
        self.fixed = validate_pins(env.unwrapped.schema, fixed)

    def action(self, action: Any) -> Any:
        if not self.fixed:
            return action
        base = self.env.unwrapped
        try:
            metaprogram = base.interface.parse_action(action)
        except SettingError:
            return action
        return base.to_action({**metaprogram, **self.fixed})


# --- the harness --------------------------------------------------------------------------------
@dataclass
class StepRecord:
    """One step of a campaign, as the harness saw it."""

    episode: int
    step: int
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
        scored = [s for s in self.steps if s.score is not None]
        return max(scored, key=lambda s: s.score) if scored else None

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


def run_campaign(
    env: gym.Env,
    planner: Planner,
    *,
    seed: int | None = None,
    fixed: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    episode: int = 0,
    callback: Callable[[StepRecord], None] | None = None,
) -> CampaignResult:
    """Run one campaign (episode) of ``planner`` on ``env`` until its budget is spent.

    The planner's proposal, with ``fixed`` settings pinned on top, is the one
    metaprogram turned into an action (``env.unwrapped.to_action``); every step is
    recorded by the env under ``planner.name``.

    Args:
        env: a ResearchGym env (any interface; a planner that reads observations
            needs the interface it names in ``planner.interface``).
        planner: the planner.
        seed: seeds the env's reset and the planner.
        fixed: settings pinned for every step, e.g. ``{"train.epochs": 2}``.
        options: passed to ``env.reset`` (e.g. ``{"task": "wine"}``).
        episode: index stored in each :class:`StepRecord`.
        callback: called with each step's record as it finishes.
    """
    base = env.unwrapped
    schema: Schema = base.schema
    pins = validate_pins(schema, fixed)
    wanted = getattr(planner, "interface", None)
    if wanted is not None and base.interface.name != wanted:
        raise PlannerError(
            f"planner {planner.name!r} reads {wanted!r} observations but the env uses "
            f"interface={base.interface.name!r}; make the env with interface={wanted!r}"
        )
    base.agent = planner.name
    if hasattr(planner, "bind"):
        planner.bind(env)
    observation, reset_info = env.reset(seed=seed, options=dict(options) if options else None)
    planner.reset(schema, seed=seed, fixed=pins)
    result = CampaignResult(planner.name, base.env_id, reset_info["task"], seed)
    while True:
        metaprogram = schema.validate({**planner.propose(observation), **pins})
        observation, reward, terminated, truncated, info = env.step(base.to_action(metaprogram))
        trained = info.get("metaprogram") or metaprogram
        planner.observe(trained, float(reward), info)
        record = StepRecord(
            episode=episode,
            step=len(result.steps),
            task=info["task"],
            metaprogram=trained,
            reward=float(reward),
            status=info["status"],
            score=info["metrics"].get("score") if info["status"] == "ok" else None,
            test_score=info["test_metrics"].get("score") if info["status"] == "ok" else None,
            seconds=info["cost"].seconds,
            info=info,
        )
        result.steps.append(record)
        if callback is not None:
            callback(record)
        if terminated or truncated:
            return result


def run_campaigns(
    env: gym.Env,
    planner: Planner,
    *,
    episodes: int = 1,
    seed: int = 0,
    fixed: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    callback: Callable[[StepRecord], None] | None = None,
) -> list[CampaignResult]:
    """Run ``episodes`` campaigns; campaign ``i`` is seeded with ``seed + i``."""
    return [
        run_campaign(env, planner, seed=seed + i, fixed=fixed, options=options, episode=i, callback=callback)
        for i in range(episodes)
    ]


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


# --- one-file agents: arguments and a main ---------------------------------------------------
@dataclass
class CampaignArgs:
    """Arguments shared by every agent's ``python -m agents.NAME``."""

    env_id: str = "researchgym/Tabular-v0"
    """env to run campaigns on"""
    episodes: int = 1
    """campaigns to run (campaign i is seeded with seed + i)"""
    budget: int = 10
    """experiments per campaign"""
    seed: int = 0
    """seed of the first campaign and of the planner"""
    fixed: list[str] = field(default_factory=list)
    """settings pinned for every step, as name=value (e.g. train.epochs=5)"""
    store: str | None = None
    """store directory (default: $RESEARCHGYM_STORE or ./datasets_store); 'none' records nothing"""


def _field_docs(cls: type) -> dict[str, str]:
    """Docstrings written under dataclass fields (``x: int = 1`` then ``\"\"\"help\"\"\"``)."""
    import ast
    import inspect

    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        try:
            tree = ast.parse(inspect.getsource(klass).strip())
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, nxt in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = nxt.value.value.strip()
    return docs


def parse_args(cls: type, argv: Sequence[str] | None = None) -> Any:
    """Build a dataclass of arguments from the command line (``--env-id``, ``--fixed a=1 b=2``).

    Field types ``int``, ``float``, ``str``, ``bool`` (``--x/--no-x``), ``list[str]``
    and ``X | None`` are understood; defaults and help come from the dataclass.
    """
    parser = argparse.ArgumentParser(description=(cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else None)
    hints = typing.get_type_hints(cls)
    docs = _field_docs(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        flag = "--" + f.name.replace("_", "-")
        helptext = docs.get(f.name, "") + ("" if default in (None, []) else f" (default: {default!r})")
        args = typing.get_args(kind)
        if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
            kind = next(a for a in args if a is not type(None))
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=helptext)
        elif typing.get_origin(kind) is list:
            parser.add_argument(flag, nargs="*", type=typing.get_args(kind)[0], default=default, help=helptext)
        else:
            parser.add_argument(flag, type=kind, default=default, help=helptext)
    return cls(**vars(parser.parse_args(argv)))


def training_kwargs(args: Any) -> dict[str, Any]:
    """The ``train`` keywords a learned planner's ``python -m agents.NAME`` takes from its
    ``Args``: the :class:`CampaignArgs` plus ``total_timesteps``, ``save_path`` and ``n_envs``,
    and a progress line on stdout."""
    from researchgym.store import store_option

    schema = gym.make(args.env_id, store=False, disable_env_checker=True).unwrapped.schema
    return {
        "total_timesteps": args.total_timesteps,
        "seed": args.seed,
        "fixed": schema.parse_overrides(args.fixed),
        "save_path": args.save_path,
        "store": store_option(args.store),
        "budget": args.budget,
        "n_envs": args.n_envs,
        "progress": lambda n: print(f"\rtrained {n}/{args.total_timesteps} steps", end="", flush=True),
    }


def run_from_args(planner: Planner, args: CampaignArgs) -> list[CampaignResult]:
    """Make the env named by ``args``, run the planner's campaigns and print what they found."""
    from researchgym.store import store_option

    env = gym.make(
        args.env_id,
        budget=args.budget,
        store=store_option(args.store),
        agent=planner.name,
        interface=getattr(planner, "interface", None) or "dict",
        disable_env_checker=True,
    )
    try:
        fixed = env.unwrapped.schema.parse_overrides(args.fixed)

        def show(record: StepRecord) -> None:
            score = "-" if record.score is None else f"{record.score:.4f}"
            print(f"campaign {record.episode} step {record.step} {record.task}: {record.status} score={score}", flush=True)

        results = run_campaigns(env, planner, episodes=args.episodes, seed=args.seed, fixed=fixed, callback=show)
    finally:
        env.close()
    for r in results:
        print(f"campaign seed={r.seed} task={r.task}: best validation score {r.best_score} with {r.best_metaprogram}")
    return results
