"""Planners by name, like gymnasium envs: lazy ``"module:Class"`` entry points.

Planners live in ``agents/`` (one file each) and are imported on first use, so
listing them costs nothing and a missing optional dependency only matters for
the planner that needs it::

    from researchgym.planning import make_planner, register_planner

    planner = make_planner("tpe", n_startup_trials=3)
    register_planner("mine", "my_package.my_module:MyPlanner")
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from researchgym.errors import did_you_mean, shorten
from researchgym.planning.protocol import Planner, PlannerError

__all__ = [
    "PLANNERS",
    "PlannerSpec",
    "make_planner",
    "make_trainer",
    "planner_names",
    "register_planner",
]


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


#: The registered planners by name, in registration order.
PLANNERS: dict[str, PlannerSpec] = {}


def register_planner(
    name: str,
    entry_point: str,
    *,
    trainer: str | None = None,
    extra: str | None = None,
    description: str = "",
    install_note: str = "",
) -> None:
    """Register a planner under ``name`` (lazy ``"module:Class"`` entry point).

    Raises:
        PlannerError: an entry point that is not of the form ``"package.module:name"``.
    """
    for point in (entry_point, trainer):
        if point is not None and ":" not in point:
            raise PlannerError(f"entry point {shorten(point)} must look like 'package.module:name'")
    PLANNERS[name] = PlannerSpec(name, entry_point, trainer, extra, description, install_note)


def planner_names(*, trainable: bool = False) -> list[str]:
    """Names of the registered planners (with ``trainable=True``, those with a trainer)."""
    return [spec.name for spec in PLANNERS.values() if spec.trainer or not trainable]


def _spec(name: str) -> PlannerSpec:
    if not isinstance(name, str) or name not in PLANNERS:
        raise PlannerError(
            f"unknown planner {shorten(name)}; {did_you_mean(name, PLANNERS)}"
            f"registered planners: {', '.join(PLANNERS)}"
        )
    return PLANNERS[name]


def _load(spec: PlannerSpec, entry_point: str) -> Any:
    module_name, _, attr = entry_point.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == module_name or module_name.startswith(exc.name + ".")):
            raise
        extra = (
            f"pip install 'researchgym[{spec.extra}]'" if spec.extra else f"pip install {exc.name}"
        )
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
    """The training function of a learned planner (e.g. ``"ppo-sb3"``).

    Every trainer is called as ``train(env_id, *, total_timesteps, seed, fixed,
    save_path, store, budget, n_envs, progress, tasks)`` and returns the saved policy's
    path; ``tasks`` (default: the env's) are the only tasks it learns from.

    Raises:
        PlannerError: an unknown name or a planner with nothing to train.
    """
    spec = _spec(name)
    if spec.trainer is None:
        raise PlannerError(
            f"planner {name!r} has nothing to train; "
            f"trainable planners: {', '.join(planner_names(trainable=True))}"
        )
    return _load(spec, spec.trainer)


register_planner(
    "random",
    "agents.random_search:RandomPlanner",
    description="uniform in each setting's own scale (log, int, categorical)",
)
register_planner(
    "sobol",
    "agents.sobol:SobolPlanner",
    description="scrambled Sobol quasi-random sequence over the flat encoding",
)
register_planner(
    "grid",
    "agents.grid:GridPlanner",
    description="grid over the settings (levels per number), visited in a seeded order",
)
register_planner(
    "tpe",
    "agents.tpe:TPEPlanner",
    extra="hpo",
    description="Optuna TPE, define-by-run over the schema's conditional space",
)
register_planner(
    "default",
    "agents.default:DefaultPlanner",
    description="every setting at its default, each step",
)
register_planner(
    "transformer",
    "agents.transformer_planner:TransformerPlanner",
    trainer="agents.transformer_planner:train",
    extra="transformers",
    description="GPT-2 trained from scratch on serialized campaigns "
    "(`researchgym train-planner`), constrained decoding",
)
register_planner(
    "llm",
    "agents.llm_agent:LLMAgent",
    description="any language model (callable, local transformers pipeline or HTTP endpoint) "
    "replying JSON settings",
)
register_planner(
    "designer",
    "agents.designer:DesignerPlanner",
    description="designer-reviewer loop over unit-tree architectures: propose a change, check "
    "it builds within budget, review it with a short run; only accepted designs train in full",
)
register_planner(
    "ppo-sb3",
    "agents.ppo_sb3:PPOPlanner",
    trainer="agents.ppo_sb3:train",
    extra="rl",
    description="stable-baselines3 PPO policy on the flat interface",
)
register_planner(
    "ppo-rllib",
    "agents.ppo_rllib:RLlibPPOPlanner",
    trainer="agents.ppo_rllib:train",
    extra="rllib",
    description="RLlib PPO policy on the flat interface",
    install_note="note: ray[rllib] 2.60 requires gymnasium==1.2.2, so pip will replace the "
    "installed gymnasium",
)
