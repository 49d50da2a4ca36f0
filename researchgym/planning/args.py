"""Command lines for one-file agents: an ``Args`` dataclass in, parsed arguments out.

Every agent's ``python -m agents.NAME`` declares its arguments as a dataclass
extending :class:`CampaignArgs`, each field made with :func:`arg`::

    @dataclass
    class Args(CampaignArgs):
        levels: int = arg(3, "points per numeric setting")

    if __name__ == "__main__":
        args = parse_args(Args)
        run_from_args(GridPlanner(levels=args.levels), args)
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import gymnasium as gym

from researchgym.planning.campaign import CampaignResult, StepRecord, best_per_task, rollout
from researchgym.planning.protocol import Planner
from researchgym.store import store_option

__all__ = ["CampaignArgs", "arg", "parse_args", "run_from_args", "training_kwargs"]

T = TypeVar("T")


def arg(default: Any, help: str) -> Any:
    """A dataclass field with its command-line help (an immutable default; a tuple for lists)."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclass
class CampaignArgs:
    """Arguments shared by every agent's ``python -m agents.NAME``."""

    env_id: str = arg("researchgym/Tabular-v0", "env to run campaigns on")
    episodes: int = arg(1, "campaigns to run (campaign i is seeded with seed + i)")
    budget: int = arg(10, "experiments per campaign")
    seed: int = arg(0, "seed of the first campaign and of the planner")
    fixed: tuple[str, ...] = arg(
        (), "settings pinned for every step, as name=value (train.epochs=5)"
    )
    store: str | None = arg(
        None,
        "store directory (default: $RESEARCHGYM_STORE or ./datasets_store); 'none' records nothing",
    )


def parse_args(cls: type[T], argv: Sequence[str] | None = None) -> T:
    """Build a dataclass of arguments from the command line (``--env-id``, ``--fixed a=1 b=2``).

    Field types ``int``, ``float``, ``str``, ``bool`` (``--x/--no-x``), ``tuple[X, ...]``
    (any number of values) and ``X | None`` are understood; defaults come from the
    dataclass and help from each field's ``metadata["help"]`` (see :func:`arg`).
    """
    description = (cls.__doc__ or "").strip().partition("\n")[0] or None
    parser = argparse.ArgumentParser(description=description)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        kind = hints[f.name]
        default = f.default
        flag = "--" + f.name.replace("_", "-")
        helptext = f.metadata.get("help", "")
        if default not in (None, ()):
            helptext += f" (default: {default!r})"
        if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        if kind is bool:
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=default, help=helptext
            )
        elif typing.get_origin(kind) is tuple:
            item = typing.get_args(kind)[0]
            parser.add_argument(flag, nargs="*", type=item, default=default, help=helptext)
        else:
            parser.add_argument(flag, type=kind, default=default, help=helptext)
    values = vars(parser.parse_args(argv))
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def run_from_args(planner: Planner, args: CampaignArgs) -> list[CampaignResult]:
    """:func:`~researchgym.planning.rollout` as ``args`` say, printing each step and the
    best step of each task."""

    def show(record: StepRecord) -> None:
        score = "-" if record.score is None else f"{record.score:.4f}"
        print(
            f"campaign {record.episode} step {record.step} {record.task}: "
            f"{record.status} score={score}",
            flush=True,
        )

    results = rollout(
        planner,
        args.env_id,
        episodes=args.episodes,
        seed=args.seed,
        fixed=args.fixed,
        budget=args.budget,
        store=store_option(args.store),
        callback=show,
    )
    for task, best in best_per_task(results).items():
        print(
            f"best validation score on {task}: {best.score:.4f} "
            f"(campaign {best.episode} step {best.step}) with {best.metaprogram}"
        )
    return results


def training_kwargs(args: Any) -> dict[str, Any]:
    """The ``train`` keywords of a learned planner's ``python -m agents.NAME``.

    Taken from its ``Args``: the :class:`CampaignArgs` plus ``total_timesteps``,
    ``save_path`` and ``n_envs``, with a progress line on stdout.
    """
    env = gym.make(args.env_id, store=False, disable_env_checker=True)
    schema = env.unwrapped.schema  # type: ignore[attr-defined]
    env.close()
    return {
        "total_timesteps": args.total_timesteps,
        "seed": args.seed,
        "fixed": schema.parse_overrides(args.fixed),
        "save_path": args.save_path,
        "store": store_option(args.store),
        "budget": args.budget,
        "n_envs": args.n_envs,
        "progress": lambda n: print(
            f"\rtrained {n}/{args.total_timesteps} steps", end="", flush=True
        ),
    }
