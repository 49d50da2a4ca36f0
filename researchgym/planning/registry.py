"""Planners by name, like gymnasium envs: lazy ``"module:Class"`` entry points.

Planners live in ``agents/`` (one file each) and are imported on first use, so
listing them costs nothing and a missing optional dependency only matters for
the planner that needs it::

    from researchgym.planning import make_planner, register_planner

    planner = make_planner("tpe", n_startup_trials=3)
    register_planner("mine", "my_package.my_module:MyPlanner")

Options are checked against the planner's (or trainer's) signature before it is
called: an unknown name gets a suggestion and the list of options, a value of
the wrong type names the option and the type it needs (see :func:`check_options`).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from researchgym.errors import did_you_mean, shorten
from researchgym.planning.protocol import Planner, PlannerError

__all__ = [
    "PLANNERS",
    "PlannerSpec",
    "check_options",
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


def _type_name(annotation: Any) -> str:
    """``int``, ``str | Path | None``: a type as written, without module prefixes."""
    if isinstance(annotation, type):
        return annotation.__name__
    return re.sub(r"\b(?:\w+\.)+(\w+)", r"\1", str(annotation)).replace("NoneType", "None")


def _annotation(parameter: inspect.Parameter) -> Any:
    """The parameter's type, or ``Any`` where it has none (or one that could not be resolved)."""
    annotation = parameter.annotation
    return (
        Any if annotation is inspect.Parameter.empty or isinstance(annotation, str) else annotation
    )


def _adapter(annotation: Any) -> Any:
    """A pydantic ``TypeAdapter`` for ``annotation``, or ``None`` for a type it cannot check."""
    from pydantic import ConfigDict, PydanticSchemaGenerationError, TypeAdapter
    from pydantic_core import SchemaError

    if annotation is Any:
        return None
    try:
        return TypeAdapter(annotation, config=ConfigDict(arbitrary_types_allowed=True))
    except (PydanticSchemaGenerationError, SchemaError):  # e.g. a protocol isinstance cannot test
        return None


def _describe(parameter: inspect.Parameter) -> str:
    annotation = _annotation(parameter)
    text = parameter.name if annotation is Any else f"{parameter.name}: {_type_name(annotation)}"
    if parameter.default is inspect.Parameter.empty:
        return text
    return f"{text} = {shorten(parameter.default, 40)}"


def check_options(
    target: Callable[..., Any] | Sequence[Callable[..., Any]],
    options: Mapping[str, Any],
    *,
    owner: str,
    exclude: Collection[str] = (),
) -> dict[str, Any]:
    """``options`` checked against the keyword parameters of ``target`` and converted to their types.

    Each value is validated (and converted, e.g. ``"1e-3"`` to ``0.001`` for a
    ``float``) with a pydantic ``TypeAdapter`` of the parameter's type hint; a
    parameter without one (or with one pydantic cannot check) takes any value. A ``target`` that takes ``**kwargs``
    receives names it does not declare unchecked.

    Args:
        target: a class (its ``__init__`` is read) or a function; or a sequence of them,
            each passing the options it does not declare on to the next through ``**kwargs``
            (a factory and the class it builds), whose options are checked together.
        options: keyword arguments for ``target``.
        owner: what the options belong to, for messages (``"planner 'tpe'"``).
        exclude: parameters that are not options (given some other way).

    Returns:
        The options with their values converted.

    Raises:
        PlannerError: an unknown option (with a suggestion and the list of options),
            a value of the wrong type, or a required option that is missing.
    """
    from pydantic import ValidationError

    keywords = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    parameters: dict[str, inspect.Parameter] = {}
    for each in [target] if callable(target) else target:
        try:
            signature = inspect.signature(each, eval_str=True)
        except NameError:  # hints naming what only a type checker imports: taken as Any
            signature = inspect.signature(each)
        for name, p in signature.parameters.items():
            if p.kind in keywords and name not in exclude:
                parameters.setdefault(name, p)
        takes_any = any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()
        )
    described = ", ".join(map(_describe, parameters.values()))
    checked = dict(options)
    for name, value in options.items():
        if name not in parameters:
            if takes_any and name not in exclude:
                continue
            raise PlannerError(
                f"{owner} has no option {shorten(name)}; {did_you_mean(name, parameters)}"
                f"its options are: {described or 'none'}"
            )
        annotation = _annotation(parameters[name])
        adapter = _adapter(annotation)
        if adapter is None:
            continue
        try:
            checked[name] = adapter.validate_python(value)
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"]
            raise PlannerError(
                f"{owner} option {name}={shorten(value)} is not a valid {_type_name(annotation)} "
                f"({reason[:1].lower()}{reason[1:]}); its options are: {described}"
            ) from None
    missing = [
        name
        for name, p in parameters.items()
        if p.default is inspect.Parameter.empty and name not in checked
    ]
    if missing:
        raise PlannerError(
            f"{owner} needs the option{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
            f"its options are: {described}"
        )
    return checked


def make_planner(name: str, **kwargs: Any) -> Planner:
    """Build the planner registered as ``name`` with its keyword arguments.

    Raises:
        PlannerError: an unknown name (with a suggestion), a missing optional dependency,
            or options that do not fit the planner (see :func:`check_options`).
    """
    spec = _spec(name)
    planner = _load(spec, spec.entry_point)
    return planner(**check_options(planner, kwargs, owner=f"planner {name!r}"))


def make_trainer(name: str) -> Callable[..., Any]:
    """The training function of a learned planner (e.g. ``"ppo-sb3"``).

    Every trainer is called as ``train(env_id, *, total_timesteps, seed, fixed,
    save_path, store, budget, n_envs, progress, tasks)`` plus its own options, and
    returns the saved policy's path; ``tasks`` (default: the env's) are the only tasks it
    learns from. The function returned checks the keywords it is given (see
    :func:`check_options`) before training starts.

    Raises:
        PlannerError: an unknown name or a planner with nothing to train.
    """
    spec = _spec(name)
    if spec.trainer is None:
        raise PlannerError(
            f"planner {name!r} has nothing to train; "
            f"trainable planners: {', '.join(planner_names(trainable=True))}"
        )
    trainer = _load(spec, spec.trainer)

    @functools.wraps(trainer)
    def train(env_id: str, **kwargs: Any) -> Any:
        options = check_options(trainer, kwargs, owner=f"trainer of {name!r}", exclude={"env_id"})
        return trainer(env_id, **options)

    return train


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
    "gp",
    "agents.gp:GPPlanner",
    extra="hpo",
    description="Optuna GPSampler: Gaussian-process Bayesian optimization (log EI) over numbers "
    "and choices; conditional settings drawn at random",
)
register_planner(
    "cmaes",
    "agents.cmaes:CmaEsPlanner",
    extra="hpo",
    description="Optuna CmaEsSampler: CMA-ES over the numeric settings; choices and conditional "
    "settings drawn at random",
)
register_planner(
    "ngopt",
    "agents.ngopt:NGOptPlanner",
    extra="nevergrad",
    description="nevergrad NGOpt: picks its optimizer (CMA-ES, DE, (1+1), ...) for the space "
    "and the campaign's budget",
)
register_planner(
    "successive-halving",
    "agents.successive_halving:SuccessiveHalvingPlanner",
    description="successive halving on a forkable env: random configurations at a low "
    "fidelity, the best 1/eta continued to the next, bracket after bracket",
)
register_planner(
    "hyperband",
    "agents.hyperband:HyperbandPlanner",
    description="Hyperband on a forkable env: brackets of successive halving from aggressive "
    "to full fidelity, promotions by continue",
)
register_planner(
    "asha",
    "agents.asha:ASHAPlanner",
    description="asynchronous successive halving on a forkable env: continue a run as soon as "
    "it is in the top 1/eta of its rung, else start a new one",
)
register_planner(
    "bohb",
    "agents.bohb:BOHBPlanner",
    extra="hpo",
    description="BOHB on a forkable env: Hyperband whose new configurations come from TPE "
    "fitted on the highest fidelity with enough results",
)
register_planner(
    "pbt",
    "agents.pbt:PBTPlanner",
    description="population-based training on a forkable env: the worst runs fork the best "
    "with perturbed learning rate and weight decay, the rest continue",
)
register_planner(
    "template",
    "agents.template:TemplatePlanner",
    description="(1+1) local search from the defaults in the flat encoding; the file to copy "
    "for a new planner",
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
