"""Multi-fidelity search: train many configurations briefly, continue only the best.

A run's *fidelity* is its total epochs (``train.epochs``). The planners
``successive-halving`` (``agents/successive_halving.py``), ``hyperband``
(``agents/hyperband.py``), ``asha`` (``agents/asha.py``) and ``bohb``
(``agents/bohb.py``) are one :class:`FidelityPlanner` each with its own
*schedule*, which says what to train next and is told each result in turn:

- :class:`Brackets` runs brackets of successive halving in turn, endlessly. A
  bracket starts ``n`` new configurations at its lowest fidelity and continues
  the best ``n // eta**i`` to its ``i``-th fidelity. Successive halving repeats
  one bracket; Hyperband cycles through :func:`hyperband_brackets`, from the
  most aggressive (many configurations, lowest fidelity) to plain search at the
  highest fidelity.
- :class:`ASHA` (asynchronous successive halving) continues a run as soon as it
  is in the top ``1/eta`` of its rung, and starts a new configuration otherwise.

On a forkable env (``forkable=True``, which :func:`~researchgym.planning.rollout`
makes for these planners) a promotion is the verb ``continue``, which pays only
the new epochs; a continue answered ``invalid_action`` (its checkpoint evicted)
and every promotion on an env that cannot continue retrain the configuration
from scratch instead.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from researchgym.errors import shorten
from researchgym.planning import CampaignArgs, PlannerError, SearchPlanner, arg
from researchgym.spaces import Schema
from researchgym.spaces.sampling import random_points

__all__ = [
    "ASHA",
    "Brackets",
    "FidelityArgs",
    "FidelityPlanner",
    "Job",
    "Schedule",
    "check_fidelity_free",
    "fidelities",
    "forkable_env_kwargs",
    "hyperband_brackets",
    "max_fidelity",
    "top",
]

FIDELITY = "train.epochs"


@dataclass
class FidelityArgs(CampaignArgs):
    """Arguments of the multi-fidelity planners' ``python -m agents.NAME``."""

    min_epochs: int = arg(1, "lowest fidelity (epochs) a configuration is trained to")
    max_epochs: int | None = arg(None, "highest fidelity (default: the env's max_epochs)")
    eta: int = arg(3, "ratio of fidelities between rungs; the best 1/eta of a rung go on")


@dataclass(frozen=True)
class Job:
    """Train configuration ``config`` (``None``: a new one) to ``epochs`` epochs in all."""

    config: int | None
    epochs: int


class Schedule(Protocol):
    """What a :class:`FidelityPlanner` trains next; told each job's result before the next."""

    def next(self) -> Job: ...

    def report(self, config: int, epochs: int, score: float | None) -> None:
        """Configuration ``config`` reached ``epochs`` with validation ``score`` (``None``: failed)."""


def fidelities(min_epochs: int, max_epochs: int, eta: int) -> tuple[int, ...]:
    """The rungs: ``max_epochs`` divided by ``eta`` as often as it stays at least ``min_epochs``,
    rounded to whole epochs, lowest first (``(1, 3, 9, 27)`` for 1, 27 and 3)."""
    s = 0
    while min_epochs * eta ** (s + 1) <= max_epochs:
        s += 1
    return tuple(sorted({max(min_epochs, round(max_epochs / eta**k)) for k in range(s + 1)}))


def hyperband_brackets(rungs: Sequence[int], eta: int) -> list[tuple[int, tuple[int, ...]]]:
    """Hyperband's brackets over ``rungs``, most aggressive first: ``(n, fidelities)`` each.

    Bracket ``s`` (``s = len(rungs) - 1`` down to 0) starts
    ``ceil(len(rungs) / (s + 1) * eta**s)`` configurations at ``rungs[-s - 1]``, so
    each bracket spends about the same epochs (Li et al., 2018).
    """
    s_max = len(rungs) - 1
    return [
        (-(-(s_max + 1) * eta**s // (s + 1)), tuple(rungs[s_max - s :]))
        for s in range(s_max, -1, -1)
    ]


def top(scores: Mapping[int, float | None], k: int) -> list[int]:
    """The ``k`` configurations with the highest scores (failed ones, ``None``, never)."""
    scored = sorted((-score, config) for config, score in scores.items() if score is not None)
    return [config for _, config in scored[:k]]


class Brackets:
    """Brackets of successive halving, run one after the other and then again from the first.

    Args:
        brackets: ``(n, fidelities)`` of each bracket: ``n`` new configurations trained to
            ``fidelities[0]``, then the best ``n // eta**i`` of them continued to ``fidelities[i]``.
        eta: the ratio of configurations kept from one rung to the next.
        max_steps: the campaign's steps: a bracket that would take more starts fewer
            configurations, so that one reaches the highest fidelity within the budget.
    """

    def __init__(
        self, brackets: Iterable[tuple[int, Sequence[int]]], eta: int, max_steps: int | None = None
    ):
        self.brackets = [(n, tuple(rungs)) for n, rungs in brackets]
        self.eta, self.max_steps = eta, max_steps
        self.index = -1
        self._start_next()

    def _sizes(self, n: int) -> list[int]:
        return [max(1, n // self.eta**i) for i in range(len(self.rungs))]

    def _start_next(self) -> None:
        self.index = (self.index + 1) % len(self.brackets)
        n, self.rungs = self.brackets[self.index]
        while n > 1 and self.max_steps is not None and sum(self._sizes(n)) > self.max_steps:
            n -= 1
        self.sizes = self._sizes(n)
        self.rung = 0
        self.queue = deque(Job(None, self.rungs[0]) for _ in range(n))
        self.scores: dict[int, float | None] = {}

    def next(self) -> Job:
        while not self.queue:
            if self.rung + 1 < len(self.rungs) and self.scores:
                self.rung += 1
                best = top(self.scores, self.sizes[self.rung])
                self.queue.extend(Job(config, self.rungs[self.rung]) for config in best)
                self.scores = {}
            else:
                self._start_next()
        return self.queue.popleft()

    def report(self, config: int, epochs: int, score: float | None) -> None:
        self.scores[config] = score


class ASHA:
    """Asynchronous successive halving (Li et al., 2020), one job at a time.

    The next job continues the best configuration of the highest rung that has one in
    its top ``1/eta`` not yet continued; when no rung has, a new configuration starts at
    the lowest fidelity.
    """

    def __init__(self, rungs: Sequence[int], eta: int):
        self.rungs, self.eta = tuple(rungs), eta
        self.scores: list[dict[int, float | None]] = [{} for _ in self.rungs]
        self.promoted: list[set[int]] = [set() for _ in self.rungs]

    def next(self) -> Job:
        for k in reversed(range(len(self.rungs) - 1)):
            for config in top(self.scores[k], len(self.scores[k]) // self.eta):
                if config not in self.promoted[k]:
                    self.promoted[k].add(config)
                    return Job(config, self.rungs[k + 1])
        return Job(None, self.rungs[0])

    def report(self, config: int, epochs: int, score: float | None) -> None:
        self.scores[self.rungs.index(epochs)][config] = score


def max_fidelity(schema: Schema, max_epochs: int | None, context: Any) -> int:
    """The highest fidelity of a campaign: ``max_epochs``, else the env's (``context``, from
    ``bind``), else the schema's default ``train.epochs``.

    Raises:
        PlannerError: ``max_epochs`` over the env's or the schema's range of epochs.
    """
    env_max = getattr(context, "max_epochs", None)
    high = env_max or schema[FIDELITY].high  # type: ignore[attr-defined]  # an Int setting
    if max_epochs is not None and max_epochs > high:
        raise PlannerError(
            f"max_epochs={max_epochs} is over the env's highest fidelity {high}; "
            f"lower it or make the env with max_epochs={max_epochs}"
        )
    return max_epochs or env_max or schema[FIDELITY].default


def forkable_env_kwargs(max_epochs: int | None) -> dict[str, Any]:
    """Env arguments of a planner that continues or forks runs, up to ``max_epochs`` when
    given (else the env's highest fidelity)."""
    return {"forkable": True} | ({} if max_epochs is None else {"max_epochs": max_epochs})


def check_fidelity_free(planner: str, fixed: Mapping[str, Any]) -> None:
    """Refuse a pinned fidelity: a planner that continues or forks runs chooses it."""
    if FIDELITY in fixed:
        raise PlannerError(
            f"planner {planner!r} chooses {FIDELITY} (the fidelity) itself; "
            f"do not pin it, give max_epochs instead"
        )


def check_epochs(name: str, value: Any, low: int = 1) -> None:
    """Raise :class:`PlannerError` unless ``value`` is an integer of at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise PlannerError(f"{name}={shorten(value)} must be an integer of at least {low}")


class FidelityPlanner(SearchPlanner):
    """A planner that follows a :class:`Schedule` over the fidelities of a campaign.

    Subclasses set ``name`` and build their schedule in :meth:`make_schedule`; new
    configurations are drawn at random in each setting's own scale (:meth:`sample`, which
    a model-based planner replaces). ``train.epochs`` is the fidelity and is the planner's
    to choose, so it cannot be pinned.

    Args:
        min_epochs: the lowest fidelity.
        max_epochs: the highest fidelity (default: the env's ``max_epochs``).
        eta: the ratio of fidelities between rungs, and of the configurations kept.

    Raises:
        PlannerError: epochs that are not positive integers, ``min_epochs`` over
            ``max_epochs``, or ``eta`` below 2.
    """

    interface: str | None = None

    def __init__(self, min_epochs: int = 1, max_epochs: int | None = None, eta: int = 3):
        check_epochs("min_epochs", min_epochs)
        if max_epochs is not None:
            check_epochs("max_epochs", max_epochs, low=min_epochs)
        check_epochs("eta", eta, low=2)
        self.min_epochs, self.max_epochs, self.eta = min_epochs, max_epochs, eta
        self.context: Any = None

    @property
    def env_kwargs(self) -> dict[str, Any]:
        """The env this planner runs on: a forkable one, up to ``max_epochs`` when given."""
        return forkable_env_kwargs(self.max_epochs)

    def bind(self, context: Any) -> None:
        """Read the env's highest fidelity and whether it can continue runs."""
        self.context = context

    def make_schedule(self, rungs: tuple[int, ...]) -> Schedule:
        """The schedule of a new campaign over the fidelities ``rungs``."""
        raise NotImplementedError

    def sample(self, config: int) -> dict[str, Any]:
        """Settings of the new configuration numbered ``config`` (drawn at random)."""
        return next(self._points) | self.fixed

    def learn(self, config: int, epochs: int, score: float | None) -> None:
        """Configuration ``config`` reached ``epochs`` with ``score`` (``None``: failed)."""

    def reset(
        self, schema: Schema, *, seed: int | None = None, fixed: Mapping[str, Any] | None = None
    ) -> None:
        super().reset(schema, seed=seed, fixed=fixed)
        check_fidelity_free(self.name, self.fixed)
        top_epochs = max_fidelity(schema, self.max_epochs, self.context)
        if self.min_epochs > top_epochs:
            raise PlannerError(
                f"min_epochs={self.min_epochs} is over the highest fidelity {top_epochs}"
            )
        self.rungs = fidelities(self.min_epochs, top_epochs, self.eta)
        #: Steps of the campaign (``None``: unknown, without ``bind``).
        self.budget: int | None = getattr(self.context, "budget", None)
        self.schedule = self.make_schedule(self.rungs)
        self._points = random_points(schema, seed)
        #: Settings of each configuration, by number.
        self.configs: list[dict[str, Any]] = []
        #: Index of each configuration's latest successful run.
        self.runs: dict[int, int] = {}
        self.can_continue = getattr(self.context, "forkable", True)
        self._pending: tuple[int, int] | None = None  # (config, epochs) proposed, not reported
        self._verb = "new"
        self._retrain = False

    def propose(self, observation: Any) -> dict[str, Any]:
        if self._pending is None:
            job = self.schedule.next()
            config = job.config
            if config is None:
                config = len(self.configs)
                self.configs.append(self.sample(config))
            self._pending = (config, job.epochs)
        config, epochs = self._pending
        run = self.runs.get(config)
        if run is not None and self.can_continue and not self._retrain:
            self._verb = "continue"
            return {"verb": "continue", "run": run, FIDELITY: epochs}
        self._verb = "new"
        return {**self.configs[config], FIDELITY: epochs}

    def observe(
        self, metaprogram: dict[str, Any] | None, reward: float, info: Mapping[str, Any]
    ) -> None:
        if self._pending is None:
            return
        status = info.get("status")
        if self._verb == "continue" and status == "invalid_action":
            self._retrain = True  # e.g. its checkpoint was evicted: train it again from scratch
            return
        config, epochs = self._pending
        self._pending, self._retrain = None, False
        score = info["metrics"].get("score") if status == "ok" else None
        if status == "ok":
            if info.get("run") is None:  # an env that cannot continue runs
                self.can_continue = False
            else:
                self.runs[config] = info["run"]
        self.schedule.report(config, epochs, score)
        self.learn(config, epochs, score)
