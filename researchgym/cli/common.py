"""Pieces the command groups share."""

from __future__ import annotations

from typing import Annotated, Any

import typer

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
