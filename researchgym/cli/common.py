"""Pieces the command groups share."""

from __future__ import annotations

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
