"""Command lines for one-file agents: an ``Args`` dataclass in, parsed arguments out.

Every agent's ``python -m agents.NAME`` declares its arguments as a dataclass
extending :class:`CampaignArgs` (or :class:`TrainArgs` for a learned planner),
each field made with :func:`arg`::

    @dataclass
    class Args(CampaignArgs):
        levels: int = arg(3, "points per numeric setting")

    if __name__ == "__main__":
        args = parse_args(Args)
        run_from_args(GridPlanner(levels=args.levels), args)

The shared options are named as in ``researchgym rollout`` and ``researchgym train``:
``--env``, ``--episodes``, ``--steps``, ``--seed``, ``--set``, ``--store``, ``--batch``, and
``--timesteps``, ``--n-envs``, ``--out``, ``--policy`` for training.
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

__all__ = ["CampaignArgs", "TrainArgs", "arg", "parse_args", "run_from_args", "training_kwargs"]

T = TypeVar("T")


def arg(default: Any, help: str, *, flag: str | None = None) -> Any:
    """A dataclass field with its command-line help (an immutable default; a tuple for lists).

    Args:
        default: the field's default.
        help: one line for ``--help``.
        flag: the option's name, if not the field's (``--set`` for the field ``fixed``).
    """
    metadata = {"help": help} if flag is None else {"help": help, "flag": flag}
    return dataclasses.field(default=default, metadata=metadata)


@dataclass
class CampaignArgs:
    """Arguments shared by every agent's ``python -m agents.NAME``."""

    env: str = arg("researchgym/Tabular-v0", "env id to run campaigns on")
    episodes: int = arg(1, "campaigns to run (campaign i is seeded with seed + i)")
    steps: int | None = arg(None, "experiments per campaign (default: the env's budget)")
    seed: int = arg(0, "seed of the first campaign and of the planner")
    fixed: tuple[str, ...] = arg(
        (), "pin a setting for every step, as name=value (--set train.epochs=5)", flag="--set"
    )
    store: str | None = arg(
        None,
        "store directory (default: $RESEARCHGYM_STORE or ./datasets_store); 'none' records nothing",
    )
    batch: int = arg(1, "proposals trained together per round, as one batched job")


@dataclass
class TrainArgs(CampaignArgs):
    """Arguments of a learned planner's ``python -m agents.NAME``: train, save, run campaigns."""

    timesteps: int | None = arg(
        None, "env steps (experiments) to train for (default: the trainer's)"
    )
    n_envs: int = arg(1, "envs stepped together while training")
    out: str | None = arg(None, "where to save the trained policy (default: the trainer's)")
    policy: str | None = arg(None, "run campaigns with this trained policy instead of training one")


def parse_args(cls: type[T], argv: Sequence[str] | None = None) -> T:
    """Build a dataclass of arguments from the command line (``--env``, ``--set a=1 --set b=2``).

    Field types ``int``, ``float``, ``str``, ``bool`` (``--x/--no-x``), ``tuple[X, ...]``
    (repeatable, one or more values each time) and ``X | None`` are understood;
    defaults come from the dataclass, the flag from the field's name (or
    ``metadata["flag"]``) and help from ``metadata["help"]`` (see :func:`arg`).
    """
    description = (cls.__doc__ or "").strip().partition("\n")[0] or None
    parser = argparse.ArgumentParser(description=description)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        kind = hints[f.name]
        default: Any = f.default
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        metavar = flag.removeprefix("--").replace("-", "_").upper()
        helptext = f.metadata.get("help", "")
        if default not in (None, ()):
            helptext += f" (default: {default!r})"
        if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        if kind is bool:
            parser.add_argument(
                flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default,
                help=helptext,
            )  # fmt: skip
        elif typing.get_origin(kind) is tuple:
            item = typing.get_args(kind)[0]
            parser.add_argument(
                flag, dest=f.name, metavar=metavar, action="extend", nargs="+", type=item,
                default=list(default), help=helptext,
            )  # fmt: skip
        else:
            parser.add_argument(
                flag, dest=f.name, metavar=metavar, type=kind, default=default, help=helptext
            )
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
        args.env,
        episodes=args.episodes,
        seed=args.seed,
        fixed=args.fixed,
        budget=args.steps,
        store=store_option(args.store),
        callback=show,
        batch=args.batch,
    )
    for task, best in best_per_task(results).items():
        print(
            f"best validation score on {task}: {best.score:.4f} "
            f"(campaign {best.episode} step {best.step}) with {best.metaprogram}"
        )
    return results


def training_kwargs(args: TrainArgs) -> dict[str, Any]:
    """The trainer-protocol keywords of a learned planner's ``python -m agents.NAME``.

    Taken from its :class:`TrainArgs` (options left out take the trainer's
    defaults), with a progress line on stdout.
    """
    env = gym.make(args.env, store=False, disable_env_checker=True)
    schema = env.unwrapped.schema  # type: ignore[attr-defined]
    env.close()
    given = {"total_timesteps": args.timesteps, "save_path": args.out}
    return {
        **{name: value for name, value in given.items() if value is not None},
        "seed": args.seed,
        "fixed": schema.parse_overrides(args.fixed),
        "store": store_option(args.store),
        "budget": args.steps,
        "n_envs": args.n_envs,
        "progress": lambda n: print(f"\rtrained {n} steps", end="", flush=True),
    }
