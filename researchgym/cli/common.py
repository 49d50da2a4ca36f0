"""Pieces the command groups share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import typer

from researchgym.store import ENV_VAR, Store, resolve_store_path
from researchgym.terminal import fail

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="store directory (default: $RESEARCHGYM_STORE or ./datasets_store); 'none' records nothing",
    ),
]

EnvArgsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--env-arg",
        help="env argument as key=value (repeatable), e.g. --env-arg missing=nearest",
    ),
]

ExecutorOption = Annotated[
    str,
    typer.Option(
        "--executor",
        help="what trains the steps: 'processes' (--workers processes of this machine) or 'ray' "
        "(each step a Ray task; --workers steps in flight at once)",
    ),
]

RayAddressOption = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="Ray cluster that trains the steps, e.g. auto or ray://HEAD:10001 (implies "
        "--executor ray; default: a local Ray with this machine's CPUs)",
        show_default=False,
    ),
]

GpusPerStepOption = Annotated[
    float,
    typer.Option(
        "--gpus-per-step", min=0, help="GPUs each Ray step declares (a fraction shares a GPU)"
    ),
]


PrecisionOption = Annotated[
    str,
    typer.Option(
        "--precision",
        help="fp32, or bf16: the forward pass under bfloat16 autocast (a CUDA GPU from Ampere "
        "on, or the CPU); weights and metrics stay float32",
    ),
]

CompileOption = Annotated[
    bool, typer.Option("--compile", help="torch.compile the model (compiling takes a while)")
]

DeterministicOption = Annotated[
    bool,
    typer.Option(
        "--deterministic", help="torch's deterministic algorithms, so CUDA runs repeat bitwise"
    ),
]


def runtime_option(precision: str, compiled: bool, deterministic: bool) -> Any:
    """The ``Runtime`` that ``--precision``, ``--compile`` and ``--deterministic`` ask for."""
    from researchgym.engine.runtime import Runtime
    from researchgym.errors import ConfigError

    try:
        return Runtime(precision=precision, compile=compiled, deterministic=deterministic)
    except ConfigError as exc:
        fail(str(exc))


def step_executor(executor: str, ray_address: str | None, gpus_per_step: float) -> Any:
    """What trains a command's steps: ``None`` for processes here, else a ``RayExecutor``."""
    if executor not in ("processes", "ray"):
        fail(f"--executor {executor!r} is not one of 'processes', 'ray'")
    if executor == "processes" and ray_address is None:
        if gpus_per_step:
            fail("--gpus-per-step sizes Ray steps; add --executor ray")
        return None
    from researchgym.engine import RayExecutor
    from researchgym.errors import ConfigError, DependencyNotInstalled

    try:
        return RayExecutor(address=ray_address, gpus_per_job=gpus_per_step)
    except (ConfigError, DependencyNotInstalled) as exc:
        fail(str(exc))


def parse_key_values(items: list[str] | None, flag: str) -> dict[str, Any]:
    """``key=value`` options given with ``flag``; values read as YAML (numbers, booleans, lists)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key.isidentifier():
            fail(f"{flag} {item!r} is not of the form key=value, e.g. {flag} name=4")
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            out[key] = raw
    return out


def env_options(env_id: str, items: list[str] | None, given: Mapping[str, str]) -> dict[str, Any]:
    """``--env-arg`` options checked against the arguments of ``env_id``'s constructor.

    Args:
        env_id: a registered env id.
        items: the ``key=value`` strings.
        given: env arguments the command sets itself, each with what to do instead.

    Returns:
        The options with their values converted to the arguments' types.
    """
    import gymnasium as gym
    from gymnasium.envs.registration import load_env_creator

    from researchgym.envs.research_env import ResearchEnv
    from researchgym.planning import PlannerError, check_options

    options = parse_key_values(items, "--env-arg")
    taken = [name for name in options if name in given]
    if taken:
        fail(f"--env-arg {taken[0]} is not an option here: {given[taken[0]]}")
    try:
        spec = gym.spec(env_id)
    except gym.error.Error as exc:
        raise unknown_env(exc) from None
    entry_point = spec.entry_point
    creator = load_env_creator(entry_point) if isinstance(entry_point, str) else entry_point
    if creator is None:
        fail(f"env {env_id!r} has no entry point to check --env-arg against")
    # Replay-v0 and Surrogate-v0 pass the arguments they do not declare on to ResearchEnv.
    targets = [creator] if creator is ResearchEnv else [creator, ResearchEnv]
    internal = {"env_id", "source_env_id", "recorded_kwargs", "executor", "render_mode"}
    try:
        return check_options(
            targets, options, owner=f"env {env_id!r}", exclude=internal | set(given)
        )
    except PlannerError as exc:
        fail(str(exc))


def make_env(env_id: str, **kwargs: Any):
    import gymnasium as gym

    try:
        return gym.make(env_id, disable_env_checker=True, **kwargs)
    except gym.error.Error as exc:
        raise unknown_env(exc) from None


def unknown_env(exc: Exception) -> typer.BadParameter:
    return typer.BadParameter(f"{exc}; run `researchgym envs` to list the envs")


def existing_store(store: str | None) -> Store:
    """Open the store at ``store`` (or the default location) for one command's reads."""
    path = resolve_store_path(store)
    if not path.is_dir():
        fail(f"no store at {path}; pass --store PATH or set ${ENV_VAR} to a store directory")
    return Store(path, auto_compact=None, cache_small_files=False)  # one-shot: read in place


def key_settings(metaprogram: dict[str, Any] | None) -> str:
    """A short summary of a metaprogram for tables: family, optimizer, lr, width, epochs."""
    if not metaprogram:
        return "-"
    parts = [str(metaprogram[k]) for k in ("model.family", "optim.name") if k in metaprogram]
    if "optim.lr" in metaprogram:
        parts.append(f"lr={metaprogram['optim.lr']:.2g}")
    for key, label in (("model.width", "w"), ("arch.width", "w"), ("train.epochs", "ep")):
        if key in metaprogram:
            parts.append(f"{label}={metaprogram[key]}")
    return " ".join(parts)
