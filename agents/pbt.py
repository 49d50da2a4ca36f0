"""Population-based training: the worst runs fork the best ones with perturbed settings.

A population of ``population`` random configurations trains ``interval`` epochs at a
time (Jaderberg et al., 2017). When a generation has trained, the worst ``quantile``
of the population (and every failed member) *exploit* the best ``quantile``: each forks
one of the best runs (verb ``fork``: its weights, a fresh optimizer) and *explores*
from its settings, each of ``perturb`` multiplied by 0.8 or 1.2 (kept in range) or,
with probability ``resample``, drawn anew. The other members continue their own run
(verb ``continue``). Once the population reaches ``max_epochs`` the planner ends the
campaign (verb ``stop``).

A fork answered ``invalid_action`` (its parent's checkpoint evicted) continues the
member's own run instead, and a continue answered so retrains the member's settings
from scratch; PBT needs a forkable env, which :func:`~researchgym.planning.rollout`
makes for it.

    python -m agents.pbt --env researchgym/Synthetic-v0 --steps 40 --population 8 --interval 3 \
        --max-epochs 12
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agents.multi_fidelity import (
    FIDELITY,
    check_epochs,
    check_fidelity_free,
    forkable_env_kwargs,
    max_fidelity,
    top,
)
from researchgym.errors import did_you_mean, shorten
from researchgym.planning import (
    CampaignArgs,
    PlannerError,
    SearchPlanner,
    arg,
    parse_args,
    run_from_args,
)
from researchgym.spaces import Float, Int, Schema
from researchgym.spaces.sampling import random_points


@dataclass
class Args(CampaignArgs):
    """Population-based training over a forkable ResearchGym env's settings."""

    population: int = arg(8, "members trained side by side")
    interval: int = arg(3, "epochs each member trains between two exploit steps")
    max_epochs: int | None = arg(None, "epochs of the whole training (default: the env's)")
    quantile: float = arg(0.25, "share of the population that exploits, and that is exploited")
    perturb: tuple[str, ...] = arg(("optim.lr", "optim.weight_decay"), "settings explored")
    resample: float = arg(0.25, "probability that an explored setting is drawn anew")


@dataclass
class Member:
    """One member of the population: its settings and its latest run."""

    settings: dict[str, Any]
    run: int | None = None
    epochs: int = 0
    score: float | None = None


@dataclass(frozen=True)
class Step:
    """A member's next step: ``verb`` (``new``, ``continue`` or ``fork`` from run ``parent``)."""

    member: int
    verb: str
    epochs: int
    settings: dict[str, Any]
    parent: int | None = None


class PBTPlanner(SearchPlanner):
    """Synchronous population-based training through ``fork`` and ``continue``.

    Args:
        population: members trained side by side.
        interval: epochs each member trains between two exploit steps.
        max_epochs: epochs of the whole training (default: the env's ``max_epochs``).
        quantile: share of the population that exploits (the worst) and is exploited
            (the best); at least one member each.
        perturb: the settings explored; pipeline settings (learning rate, weight decay,
            schedule, ...), since a fork cannot change the architecture.
        resample: probability that an explored setting is drawn anew instead of scaled.

    Raises:
        PlannerError: a population below 2, an interval below 1, or a quantile or
            resample probability outside its range.
    """

    name = "pbt"
    interface: str | None = None

    def __init__(
        self,
        population: int = 8,
        interval: int = 3,
        max_epochs: int | None = None,
        quantile: float = 0.25,
        perturb: tuple[str, ...] = ("optim.lr", "optim.weight_decay"),
        resample: float = 0.25,
    ):
        check_epochs("population", population, low=2)
        check_epochs("interval", interval)
        if max_epochs is not None:
            check_epochs("max_epochs", max_epochs, low=interval)
        if not 0.0 < quantile <= 0.5:
            raise PlannerError(f"quantile={shorten(quantile)} must lie in (0, 0.5]")
        if not 0.0 <= resample <= 1.0:
            raise PlannerError(f"resample={shorten(resample)} must lie in [0, 1]")
        self.population, self.interval, self.max_epochs = population, interval, max_epochs
        self.quantile, self.perturb, self.resample = quantile, tuple(perturb), resample
        self.context: Any = None

    @property
    def env_kwargs(self) -> dict[str, Any]:
        """The env this planner runs on: a forkable one, up to ``max_epochs`` when given."""
        return forkable_env_kwargs(self.max_epochs)

    def bind(self, context: Any) -> None:
        """Check that the env can fork runs; read its highest fidelity."""
        if not context.forkable:
            raise PlannerError(
                f"planner {self.name!r} forks and continues runs; make the env with forkable=True"
            )
        self.context = context

    def reset(
        self, schema: Schema, *, seed: int | None = None, fixed: Mapping[str, Any] | None = None
    ) -> None:
        super().reset(schema, seed=seed, fixed=fixed)
        check_fidelity_free(self.name, self.fixed)
        for name in self.perturb:
            if name not in schema:
                raise PlannerError(
                    f"perturb names {shorten(name)}, not a setting; {did_you_mean(name, schema.names)}"
                    f"choose pipeline settings such as optim.lr"
                )
        self.total_epochs = max_fidelity(schema, self.max_epochs, self.context)
        self._points = random_points(schema, seed)
        self.members = [Member(self._new_settings()) for _ in range(self.population)]
        first = min(self.interval, self.total_epochs)
        self.queue = deque(Step(i, "new", first, m.settings) for i, m in enumerate(self.members))

    def propose(self, observation: Any) -> dict[str, Any]:
        if not self.queue:
            if all(m.epochs >= self.total_epochs for m in self.members):
                return {"verb": "stop"}
            self.queue.extend(self._generation())
        step = self.queue[0]
        if step.verb == "new":
            return {**step.settings, FIDELITY: step.epochs}
        if step.verb == "continue":
            return {"verb": "continue", "run": self.members[step.member].run, FIDELITY: step.epochs}
        explored = {name: step.settings[name] for name in self.perturb if name in step.settings}
        return {"verb": "fork", "run": step.parent, **explored, FIDELITY: step.epochs}

    def observe(
        self, metaprogram: dict[str, Any] | None, reward: float, info: Mapping[str, Any]
    ) -> None:
        if not self.queue:
            return
        step = self.queue.popleft()
        member = self.members[step.member]
        status = info.get("status")
        if status == "invalid_action" and step.verb != "new":  # e.g. an evicted checkpoint
            fallback = "continue" if step.verb == "fork" and member.run is not None else "new"
            self.queue.appendleft(Step(step.member, fallback, step.epochs, member.settings))
            return
        member.settings, member.epochs = step.settings, step.epochs
        if status == "ok":
            member.run, member.score = info["run"], info["metrics"].get("score")
        else:
            member.run, member.score = None, None

    def _generation(self) -> list[Step]:
        """The next generation's steps: the worst members exploit the best, the rest continue."""
        target = min(max(m.epochs for m in self.members) + self.interval, self.total_epochs)
        scores = {i: m.score for i, m in enumerate(self.members)}
        k = max(1, math.floor(self.population * self.quantile))
        best = top(scores, k)
        ranked = top(scores, self.population)
        worst = set(ranked[len(ranked) - k :]) - set(best) if len(ranked) > k else set()
        steps = []
        for i, member in enumerate(self.members):
            if best and (member.score is None or i in worst):
                parent = self.members[int(self.rng.choice(best))]
                settings = self._explore(parent.settings)
                steps.append(Step(i, "fork", target, settings, parent=parent.run))
            elif member.score is None:  # nothing succeeded: start again from new settings
                steps.append(Step(i, "new", target, self._new_settings()))
            else:
                steps.append(Step(i, "continue", target, member.settings))
        return steps

    def _new_settings(self) -> dict[str, Any]:
        return next(self._points) | self.fixed

    def _explore(self, settings: dict[str, Any]) -> dict[str, Any]:
        """``settings`` with each active, unpinned setting of ``perturb`` redrawn (with probability
        ``resample``) or else scaled by 0.8 or 1.2 within its range (choices stay)."""
        explored = dict(settings)
        for name in self.perturb:
            if name not in settings or name in self.fixed:
                continue
            setting = self.schema[name]
            if self.rng.random() < self.resample:
                explored[name] = setting.decode(float(self.rng.uniform(-1.0, 1.0)))
            elif isinstance(setting, Float | Int):
                value = min(
                    max(settings[name] * self.rng.choice((0.8, 1.2)), setting.low), setting.high
                )
                explored[name] = round(value) if isinstance(setting, Int) else float(value)
        return explored


if __name__ == "__main__":
    args = parse_args(Args)
    planner = PBTPlanner(
        args.population, args.interval, args.max_epochs, args.quantile, args.perturb, args.resample
    )
    run_from_args(planner, args)
