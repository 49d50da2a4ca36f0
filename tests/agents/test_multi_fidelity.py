"""Successive halving, Hyperband, ASHA, BOHB and PBT against a fake forkable env, then a real one."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import pytest

import researchgym  # noqa: F401  (registers the envs)
from agents.asha import ASHAPlanner
from agents.bohb import BOHBPlanner
from agents.hyperband import HyperbandPlanner
from agents.multi_fidelity import ASHA, Brackets, fidelities, hyperband_brackets, top
from agents.pbt import PBTPlanner
from agents.successive_halving import SuccessiveHalvingPlanner
from researchgym.envs.suites import get_suite
from researchgym.planning import PlannerError, make_planner, rollout, run_campaign
from researchgym.spaces import Schema

SCHEMA: Schema = get_suite("synthetic").make_schema()


def quality(settings: Mapping[str, Any]) -> float:
    """How good a configuration is: best at a learning rate of 10**-2.5."""
    return math.exp(-((math.log10(settings["optim.lr"]) + 2.5) ** 2))


class FakeForkableEnv:
    """Answers the verbs of a forkable env from a formula, without training.

    A run of settings ``s`` at ``e`` epochs scores ``quality(s) * (1 - exp(-e / 4))``; a fork
    scores with its own settings. Only the ``capacity`` most recently used checkpoints are
    kept; ``forkable=False`` answers like an env without checkpoints (no ``run`` in ``info``).
    """

    def __init__(self, max_epochs: int = 27, capacity: int = 1000, forkable: bool = True):
        self.max_epochs, self.capacity, self.forkable = max_epochs, capacity, forkable
        self.runs: list[dict[str, Any] | None] = []  # settings and epochs of each run
        self.kept: OrderedDict[int, None] = OrderedDict()  # checkpoints, least recently used first
        self.epochs_trained = 0

    def step(self, proposal: dict[str, Any]) -> dict[str, Any]:
        verb = proposal.get("verb", "new")
        if verb == "stop":
            return {"status": "stopped", "metrics": {}, "verb": "stop"}
        epochs = proposal["train.epochs"]
        start, parent, settings = 0, None, {k: v for k, v in proposal.items() if k != "verb"}
        if verb in ("continue", "fork"):
            parent = proposal["run"]
            if not self.forkable or parent not in self.kept:
                return self._invalid(f"run {parent} has no checkpoint")
            self.kept.move_to_end(parent)
            start = self.runs[parent]["train.epochs"]  # type: ignore[index]
            changed = {k: v for k, v in settings.items() if k != "run"}
            settings = {**self.runs[parent], **(changed if verb == "fork" else {})}  # type: ignore[dict-item]
            settings["train.epochs"] = epochs
        if not start < epochs <= self.max_epochs:
            return self._invalid(f"train.epochs={epochs} not in ({start}, {self.max_epochs}]")
        self.epochs_trained += epochs - start
        self.runs.append(settings)
        index = len(self.runs) - 1
        self.kept[index] = None
        while len(self.kept) > self.capacity:
            self.kept.popitem(last=False)
        score = quality(settings) * (1 - math.exp(-epochs / 4))
        info = {"status": "ok", "metrics": {"score": score}, "epochs": epochs, "verb": verb}
        if self.forkable:
            info |= {"run": index, "parent_run": parent}
        return info

    def _invalid(self, reason: str) -> dict[str, Any]:
        self.runs.append(None)
        return {"status": "invalid_action", "error": reason, "metrics": {}}


def drive(planner: Any, env: FakeForkableEnv, budget: int, seed: int = 0) -> list[tuple]:
    """Run ``budget`` steps (fewer if the planner stops): ``(proposal, info)`` of each."""
    planner.reset(SCHEMA, seed=seed)
    steps = []
    for _ in range(budget):
        proposal = planner.propose(None)
        info = env.step(proposal)
        planner.observe(None, info.get("metrics", {}).get("score", -2.0), info)
        steps.append((proposal, info))
        if info["status"] == "stopped":
            break
    return steps


def best(steps: list[tuple]) -> float:
    return max(info["metrics"].get("score", -1.0) for _, info in steps)


def test_rungs_and_brackets_follow_hyperband() -> None:
    assert fidelities(1, 27, 3) == (1, 3, 9, 27)
    assert fidelities(1, 10, 3) == (1, 3, 10)
    assert fidelities(2, 5, 3) == (5,)
    assert hyperband_brackets((1, 3, 9, 27), 3) == [
        (27, (1, 3, 9, 27)),
        (12, (3, 9, 27)),
        (6, (9, 27)),
        (4, (27,)),
    ]


def test_top_ranks_by_score_and_never_picks_failures() -> None:
    assert top({0: 0.1, 1: None, 2: 0.9, 3: 0.5}, 3) == [2, 3, 0]
    assert top({0: None}, 1) == []


def test_a_bracket_continues_the_best_third_at_each_rung_then_starts_the_next() -> None:
    schedule = Brackets([(9, (1, 3, 9))], eta=3)
    for config in range(9):
        job = schedule.next()
        assert (job.config, job.epochs) == (None, 1)
        schedule.report(config, 1, score=config / 10)
    rung = [schedule.next() for _ in range(3)]
    assert [(j.config, j.epochs) for j in rung] == [(8, 3), (7, 3), (6, 3)]
    for job, score in zip(rung, (0.1, 0.9, 0.5), strict=True):
        schedule.report(job.config, 3, score)  # type: ignore[arg-type]
    job = schedule.next()
    assert (job.config, job.epochs) == (7, 9)
    schedule.report(7, 9, 0.95)
    assert schedule.next().config is None  # the bracket again, with new configurations


def test_a_bracket_starts_fewer_configurations_when_the_campaign_has_fewer_steps() -> None:
    schedule = Brackets([(27, (1, 3, 9, 27))], eta=3, max_steps=20)
    assert schedule.sizes == [14, 4, 1, 1]  # 20 steps: one configuration reaches 27 epochs
    assert Brackets([(27, (1, 3, 9, 27))], eta=3, max_steps=2).sizes == [1, 1, 1, 1]


def test_hyperband_reaches_the_highest_fidelity_within_a_small_budget() -> None:
    planner = HyperbandPlanner(max_epochs=27)
    planner.bind(SimpleNamespace(forkable=True, max_epochs=27, budget=20))
    steps = drive(planner, FakeForkableEnv(max_epochs=27), budget=20)
    assert [p["train.epochs"] for p, _ in steps[14:]] == [3, 3, 3, 3, 9, 27]


def test_asha_promotes_as_soon_as_a_run_is_in_the_top_third() -> None:
    schedule = ASHA((1, 3, 9), eta=3)
    for config, score in enumerate((0.2, 0.5, 0.1)):
        assert schedule.next().config is None
        schedule.report(config, 1, score)
    job = schedule.next()
    assert (job.config, job.epochs) == (1, 3)
    schedule.report(1, 3, 0.6)
    assert schedule.next().config is None  # one result at rung 3: nothing due yet


@pytest.mark.parametrize(
    "planner",
    [
        SuccessiveHalvingPlanner(max_epochs=27),
        HyperbandPlanner(max_epochs=27),
        ASHAPlanner(max_epochs=27),
        BOHBPlanner(max_epochs=27, min_points=5),
    ],
    ids=lambda p: p.name,
)
def test_fidelity_planners_continue_their_best_runs(planner: Any) -> None:
    env = FakeForkableEnv(max_epochs=27)
    steps = drive(planner, env, budget=60)
    assert len(steps) == 60 and all(info["status"] == "ok" for _, info in steps)
    continues = [(p, info) for p, info in steps if p.get("verb") == "continue"]
    assert continues
    for proposal, info in continues:
        parent = env.runs[proposal["run"]]
        assert parent is not None and parent["train.epochs"] < proposal["train.epochs"]
        assert info["parent_run"] == proposal["run"]
    assert {p["train.epochs"] for p, _ in steps} <= {1, 3, 9, 27}
    assert any(p["train.epochs"] == 27 for p, _ in steps)
    # continuing pays only the new epochs: less than retraining each step from scratch
    assert env.epochs_trained < sum(p["train.epochs"] for p, _ in steps)


def test_hyperband_beats_random_search_for_the_same_epochs_on_a_clear_signal() -> None:
    wins = 0
    for seed in range(5):
        env = FakeForkableEnv(max_epochs=27)
        steps = drive(HyperbandPlanner(max_epochs=27), env, budget=40, seed=seed)
        random_env = FakeForkableEnv(max_epochs=27)
        planner = make_planner("random")
        planner.reset(SCHEMA, seed=seed)
        random = [
            (None, random_env.step({**planner.propose(None), "train.epochs": 27}))
            for _ in range(env.epochs_trained // 27)  # the epochs Hyperband spent
        ]
        wins += best(steps) > best(random)
    assert wins >= 4


def test_an_evicted_checkpoint_retrains_the_configuration_from_scratch() -> None:
    env = FakeForkableEnv(max_epochs=9, capacity=2)
    planner = HyperbandPlanner(max_epochs=9)
    steps = drive(planner, env, budget=30)
    invalid = [i for i, (_, info) in enumerate(steps) if info["status"] == "invalid_action"]
    assert invalid
    for i in invalid:
        failed, (retry, info) = steps[i][0], steps[i + 1]
        assert failed["verb"] == "continue" and "verb" not in retry
        assert retry["train.epochs"] == failed["train.epochs"] and info["status"] == "ok"
        assert retry == {**env.runs[failed["run"]], "train.epochs": failed["train.epochs"]}


def test_an_env_that_cannot_continue_gets_promotions_trained_from_scratch() -> None:
    env = FakeForkableEnv(max_epochs=9, forkable=False)
    steps = drive(ASHAPlanner(max_epochs=9), env, budget=20)
    assert all("verb" not in p and info["status"] == "ok" for p, info in steps)
    assert {p["train.epochs"] for p, _ in steps} == {1, 3, 9}


def test_bohb_proposes_from_tpe_once_a_fidelity_has_enough_results() -> None:
    planner = BOHBPlanner(max_epochs=9, min_points=4, random_fraction=0.0)
    steps = drive(planner, FakeForkableEnv(max_epochs=9), budget=30)
    assert len(planner._results[1]) >= 4
    new = [p for p, _ in steps if "verb" not in p]
    for proposal in new:
        assert SCHEMA.validate(proposal) == proposal


def test_pbt_forks_the_best_runs_with_perturbed_settings_and_stops() -> None:
    env = FakeForkableEnv(max_epochs=6)
    planner = PBTPlanner(population=4, interval=2, max_epochs=6, resample=0.0)
    steps = drive(planner, env, budget=50)
    verbs = [p.get("verb", "new") for p, _ in steps]
    assert verbs[:4] == ["new"] * 4 and verbs[-1] == "stop" and len(steps) == 4 * 3 + 1
    generation = steps[4:8]
    forks = [(p, info) for p, info in generation if p.get("verb") == "fork"]
    assert len(forks) == 1
    scores = {info["run"]: info["metrics"]["score"] for _, info in steps[:4]}
    proposal, info = forks[0]
    assert proposal["run"] == max(scores, key=scores.__getitem__)
    parent = env.runs[proposal["run"]]
    assert proposal["optim.lr"] / parent["optim.lr"] in (pytest.approx(0.8), pytest.approx(1.2))
    assert info["status"] == "ok" and proposal["train.epochs"] == 4
    assert all(p["train.epochs"] == 6 for p, _ in steps[8:12])


def test_pbt_falls_back_to_continuing_when_a_fork_parent_was_evicted() -> None:
    env = FakeForkableEnv(max_epochs=4, capacity=1)
    steps = drive(PBTPlanner(population=2, interval=2, max_epochs=4, quantile=0.5), env, 10)
    verbs = [(p.get("verb", "new"), info["status"]) for p, info in steps]
    assert verbs[:2] == [("new", "ok")] * 2
    assert ("fork", "invalid_action") in verbs or ("continue", "invalid_action") in verbs
    assert verbs[-1] == ("stop", "stopped")
    assert all(p["train.epochs"] == 4 for p, info in steps[2:-1] if info["status"] == "ok")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: HyperbandPlanner(eta=1), "eta=1 must be an integer of at least 2"),
        (lambda: ASHAPlanner(min_epochs=0), "min_epochs=0 must be"),
        (lambda: SuccessiveHalvingPlanner(min_epochs=5, max_epochs=3), "max_epochs=3 must be"),
        (lambda: PBTPlanner(population=1), "population=1 must be"),
        (lambda: PBTPlanner(quantile=0.9), r"quantile=0.9 must lie in \(0, 0.5\]"),
        (lambda: BOHBPlanner(random_fraction=2), r"random_fraction=2 must lie in \[0, 1\]"),
    ],
)
def test_bad_options_are_rejected_with_the_value(make: Any, message: str) -> None:
    with pytest.raises(PlannerError, match=message):
        make()


def test_the_fidelity_cannot_be_pinned_nor_exceed_the_schema() -> None:
    with pytest.raises(PlannerError, match="chooses train.epochs"):
        HyperbandPlanner().reset(SCHEMA, fixed={"train.epochs": 3})
    with pytest.raises(PlannerError, match="max_epochs=500 is over"):
        ASHAPlanner(max_epochs=500).reset(SCHEMA)
    with pytest.raises(PlannerError, match="perturb names 'optim.lrr'.*'optim.lr'"):
        PBTPlanner(perturb=("optim.lrr",)).reset(SCHEMA)


def test_planners_ask_rollout_for_a_forkable_env() -> None:
    assert make_planner("hyperband", max_epochs=9).env_kwargs == {"forkable": True, "max_epochs": 9}
    assert make_planner("pbt").env_kwargs == {"forkable": True}


# --- on a real forkable env ---------------------------------------------------------------
CHEAP_NEW = {"train.batch_size": 256, "model.family": "linear"}


def synthetic(**kwargs: Any) -> gym.Env:
    return gym.make("researchgym/Synthetic-v0", store=False, disable_env_checker=True, **kwargs)


def test_hyperband_continues_real_runs_and_pays_only_the_new_epochs() -> None:
    env = synthetic(forkable=True, max_epochs=3, budget=6)
    result = run_campaign(env, make_planner("hyperband"), seed=0, fixed=CHEAP_NEW)
    env.close()
    steps = [s.info for s in result.steps]
    assert [(i["verb"], i["epochs"]) for i in steps[:4]] == [
        ("new", 1), ("new", 1), ("new", 1), ("continue", 3)
    ]  # fmt: skip
    continued = steps[3]
    parent = steps[continued["parent_run"]]
    assert continued["status"] == "ok" and parent["metrics"]["score"] == max(
        i["metrics"]["score"] for i in steps[:3]
    )
    assert continued["metaprogram"] == {**parent["metaprogram"], "train.epochs": 3}
    assert [e["epoch"] for e in continued["curve"]] == [1, 2, 3]


def test_pbt_forks_real_runs_and_stops_the_campaign() -> None:
    env = synthetic(forkable=True, max_epochs=2, budget=10)
    planner = make_planner("pbt", population=2, interval=1)
    result = run_campaign(env, planner, seed=0, fixed=CHEAP_NEW)
    env.close()
    verbs = [(s.info["verb"], s.status) for s in result.steps]
    assert verbs[:2] == [("new", "ok")] * 2 and verbs[4:] == [("stop", "stopped")]
    assert sorted(verbs[2:4]) == [("continue", "ok"), ("fork", "ok")]
    fork = next(s.info for s in result.steps if s.info["verb"] == "fork")
    parent = result.steps[fork["parent_run"]].info
    assert fork["curve"][0]["val_score"] == parent["curve"][-1]["val_score"]
    assert fork["metaprogram"]["optim.lr"] != parent["metaprogram"]["optim.lr"]


def test_rollout_makes_the_forkable_env_a_planner_asks_for() -> None:
    [result] = rollout(
        make_planner("asha", max_epochs=3), "researchgym/Synthetic-v0", budget=5,
        store=False, fixed=CHEAP_NEW,
    )  # fmt: skip
    assert [s.info["verb"] for s in result.steps] == ["new"] * 3 + ["continue", "new"]


def test_on_an_env_that_cannot_fork_promotions_retrain_and_pbt_refuses() -> None:
    env = synthetic(budget=4)
    result = run_campaign(env, make_planner("asha", max_epochs=3), seed=0, fixed=CHEAP_NEW)
    assert [(s.info["verb"], s.info["epochs"]) for s in result.steps] == [
        ("new", 1), ("new", 1), ("new", 1), ("new", 3)
    ]  # fmt: skip
    with pytest.raises(PlannerError, match="make the env with forkable=True"):
        run_campaign(env, make_planner("pbt"), seed=0)
    env.close()
