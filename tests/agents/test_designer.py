"""The designer-reviewer loop: designers, the checker, the reviewer, its records and campaigns."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import duckdb
import gymnasium as gym
import pytest

from agents.designer import (
    DESIGNS_DIR,
    DesignerPlanner,
    MutationDesigner,
    Proposal,
    describe_change,
)
from agents.llm_agent import URL_VAR
from researchgym.engine import ARCH, Executor, Result
from researchgym.engine import unit_tree as units
from researchgym.envs.suites import get_suite
from researchgym.planning import (
    CampaignContext,
    Planner,
    PlannerError,
    make_planner,
    run_campaign,
)
from researchgym.store import open_store

ENV_ID = "researchgym/SeqArch-v0"
TASK = "mqar?n_pairs=4&n_queries=4&n_train=64&n_val=32&n_test=32"
FIXED = {"train.epochs": 1}
SCHEMA = get_suite("seqarch").make_schema()
START = ARCH.collapse(SCHEMA.validate(FIXED), compact=False)


def tree(**changes: Any) -> dict[str, Any]:
    """The start tree with some top-level items replaced."""
    return {**copy.deepcopy(START), **changes}


class Scripted:
    """A designer that proposes the given trees in order (the last one from then on)."""

    name = "scripted"

    def __init__(self, *trees: dict[str, Any]):
        self.trees = list(trees)

    def reset(self, arch, *, task, seed, fixed) -> None:
        pass

    def propose(self, parent, history) -> Proposal:
        return Proposal(copy.deepcopy(self.trees.pop(0) if len(self.trees) > 1 else self.trees[0]))


class WidthScore(Executor):
    """Trains nothing: the validation score of a design is its width / 1000."""

    def run(self, metaprogram, *, task, seed, **job):
        score = metaprogram["arch.width"] / 1000
        return Result("ok", {"score": score}, {"score": score}, samples=1)


def make_env(store: Any, budget: int = 2, **kwargs: Any) -> gym.Env:
    return gym.make(
        ENV_ID, tasks=[TASK], interface="text", store=store, budget=budget,
        disable_env_checker=True, **kwargs,
    )  # fmt: skip


def run_bound(env: gym.Env, planner: DesignerPlanner):
    """run_campaign binds the planner to its env."""
    try:
        return run_campaign(env, planner, seed=0, fixed=FIXED)
    finally:
        env.close()


def stored_steps(store: Path) -> list[dict[str, Any]]:
    with open_store(store) as s:
        return s.sql(
            "SELECT campaign_id, step, seed, agent, metaprogram FROM steps ORDER BY step"
        ).to_pylist()


def assert_only_accepted_trained(planner: DesignerPlanner, store: Path) -> None:
    """One accepted record per env step, trained in order, and nothing else in the store."""
    steps = stored_steps(store)
    accepted = [r for r in planner.records if r.accepted]
    assert len(accepted) == len(steps) == len({r.round for r in planner.records})
    assert [json.loads(s["metaprogram"]) for s in steps] == [r.metaprogram for r in accepted]
    assert {s["agent"] for s in steps} == {"designer"}
    assert [r.step for r in accepted] == [s["step"] for s in steps]
    assert all(r.step is None for r in planner.records if not r.accepted)


def test_a_design_over_the_parameter_budget_is_rejected_and_never_trained(tmp_path):
    store = tmp_path / "store"
    big = tree(width=256, layers=START["layers"] * 3)
    planner = DesignerPlanner(Scripted(big, tree(width=16)), max_attempts=2, margin=1.0)
    result = run_bound(make_env(store, max_params=30_000), planner)

    assert [s.status for s in result.steps] == ["ok", "ok"]
    start, over, small = planner.records
    assert start.designer == "start" and start.accepted
    assert over.check_status == "over_budget" and not over.accepted
    assert "max_params=30,000" in over.check_reason and over.estimated_params > 30_000
    assert over.params is None and over.review_score is None and over.full_status is None
    assert (
        small.accepted and small.parent_id == start.design_id and small.change == "width: 32 -> 16"
    )
    assert small.params == small.estimated_params and small.check_seconds > 0
    assert_only_accepted_trained(planner, store)
    assert all(json.loads(s["metaprogram"])["arch.width"] != 256 for s in stored_steps(store))


class NaNConv(units.ShortConv):
    """A convolution whose kernel blows up: every output is NaN."""

    def forward(self, x):
        return super().forward(x) * float("nan")


class BrokenRecurrent(units.Recurrent):
    def forward(self, x):
        raise RuntimeError("scan kernel unavailable")


def test_designs_whose_forward_backward_fails_are_rejected(tmp_path, monkeypatch):
    monkeypatch.setitem(units.MIXERS, "conv", NaNConv)
    monkeypatch.setitem(units.MIXERS, "recurrent", BrokenRecurrent)
    store = tmp_path / "store"
    layer = START["layers"][0]
    conv = tree(layers=[{**layer, "mixer": "conv"}])
    recurrent = tree(layers=[{**layer, "mixer": "recurrent"}])
    fine = tree(layers=[{**layer, "mixer": "token_mlp"}])
    planner = DesignerPlanner(Scripted(conv, recurrent, fine), max_attempts=3, margin=1.0)
    run_bound(make_env(store), planner)

    _, nan, broken, ok = planner.records
    assert nan.check_status == "non_finite" and "loss" in nan.check_reason
    assert nan.params is not None and nan.review_score is None and not nan.accepted
    assert broken.check_status == "error" and "scan kernel unavailable" in broken.check_reason
    assert broken.change == "layers[0].mixer: attention -> recurrent; layers[1] removed"
    assert ok.check_status == "ok" and ok.accepted
    assert_only_accepted_trained(planner, store)


def test_the_reviewer_rejects_worse_designs_and_falls_back_with_the_reason(tmp_path):
    store = tmp_path / "store"
    w16 = tree(width=16)
    w16_conv = tree(width=16, layers=[{**START["layers"][0], "mixer": "conv"}])
    scripted = Scripted(
        w16, w16_conv, {"width": 7}, {"layers": [{"mixer": "lstm"}]}, tree(width=48)
    )
    planner = DesignerPlanner(scripted, max_attempts=2, margin=0.0)
    result = run_bound(make_env(store, budget=4, executor=WidthScore()), planner)

    assert [s.score for s in result.steps] == [0.032, 0.016, 0.032, 0.048]
    d = planner.records
    assert [r.design_id for r in d if r.accepted] == [0, 1, 5, 6]
    assert "below the best so far (0.0320)" in d[2].decision and not d[2].accepted
    assert d[1].decision.startswith("accepted as fallback: none of the 2 proposals")
    assert d[3].check_status == d[4].check_status == "malformed"
    assert "arch.width=7" in d[3].check_reason and "lstm" in d[4].check_reason
    repeat = d[5]
    assert (
        repeat.designer == "fallback"
        and repeat.parent_id == 0
        and repeat.metaprogram == d[0].metaprogram
    )
    assert "none passed the checker and the reviewer" in repeat.decision
    assert d[6].accepted and d[6].review_score == 0.048 and d[6].parent_id == 0
    assert_only_accepted_trained(planner, store)

    # Every proposal, check and review is on disk, and joins the store's steps.
    path = store / DESIGNS_DIR / f"{planner.campaign_id}.parquet"
    assert planner.records_path == path and not list(path.parent.glob(".*"))
    rows = duckdb.sql(
        "SELECT design_id, check_status, accepted, full_score "
        f"FROM read_parquet('{path.parent}/*.parquet') ORDER BY design_id"
    ).fetchall()
    assert rows == [(r.design_id, r.check_status, r.accepted, r.full_score) for r in d]
    with open_store(store) as s:
        joined = s.sql(
            f"SELECT d.design_id, s.val_score FROM steps s JOIN read_parquet('{path}') d "
            "ON d.campaign_id = s.campaign_id AND d.step = s.step ORDER BY s.step"
        ).to_pylist()
    assert [(j["design_id"], j["val_score"]) for j in joined] == [
        (0, 0.032),
        (1, 0.016),
        (5, 0.032),
        (6, 0.048),
    ]


def test_without_a_store_the_records_stay_in_memory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    planner = DesignerPlanner(Scripted(tree(width=16)), margin=1.0)
    run_bound(make_env(False, budget=1, executor=WidthScore()), planner)
    assert planner.records_path is None and len(planner.records) == 1
    assert not any(tmp_path.rglob("*.parquet"))


class Replies:
    """A text model that answers from a script and keeps the prompts."""

    def __init__(self, *replies: str):
        self.replies, self.prompts = list(replies), []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


def test_an_llm_designer_records_garbage_and_invalid_trees_and_proceeds(tmp_path):
    store = tmp_path / "store"
    good = tree(layers=[{**START["layers"][0], "mixer": {"type": "conv", "kernel": 4}}])
    model = Replies(
        "A deeper model should help!",
        json.dumps({"arch": {"width": 7}}),
        "Here it is:\n```json\n" + json.dumps(good) + "\n```",
    )
    planner = DesignerPlanner("llm", generate=model, max_attempts=3, margin=1.0)
    run_bound(make_env(store, executor=WidthScore()), planner)

    _, garbage, invalid, accepted = planner.records
    assert (
        garbage.designer == "llm" and garbage.check_status == "malformed" and garbage.tree is None
    )
    assert garbage.reply == "A deeper model should help!" and "not JSON" in garbage.check_reason
    assert invalid.check_status == "malformed" and "arch.width=7" in invalid.check_reason
    assert invalid.tree == {"width": 7} and invalid.change == "width: 32 -> 7"
    assert accepted.accepted and accepted.metaprogram["arch.layer0.mixer_kernel"] == 4
    assert accepted.change == "layers[0].mixer: attention -> conv; layers[1] removed"
    assert len(model.prompts) == 3
    assert "unit_catalogue" in model.prompts[0] and "current_design" in model.prompts[0]
    assert "not JSON" in model.prompts[1] and "arch.width=7" in model.prompts[2]  # history fed back
    assert_only_accepted_trained(planner, store)


def test_mutation_edits_are_valid_single_changes_that_respect_pins():
    designer = MutationDesigner()
    designer.reset(ARCH, task=TASK, seed=0, fixed={"arch.width": 32, **FIXED})
    edits = designer.edits(START)
    assert all(edits.values())  # every kind of edit is possible from the default tree
    seen = set()
    for change, new in (e for options in edits.values() for e in options):
        metaprogram = SCHEMA.validate({"arch": new, **FIXED})
        assert metaprogram != SCHEMA.validate(FIXED) and metaprogram["arch.width"] == 32, change
        seen.add(json.dumps(metaprogram, sort_keys=True))
    assert len(seen) == sum(map(len, edits.values()))
    assert "layers[1].mixer: attention -> conv" in [change for change, _ in edits["swap"]]
    assert designer.propose(START, []).change  # a drawn edit says what it changes
    assert describe_change(START, tree(position="learned")) == "position: none -> learned"


def test_a_campaign_on_seqarch_end_to_end(tmp_path):
    store = tmp_path / "store"
    planner = make_planner("designer", review_epochs=1)
    assert isinstance(planner, Planner) and planner.name == "designer"
    env = make_env(store, budget=3)
    try:
        result = run_campaign(env, planner, seed=0, fixed=FIXED)
    finally:
        env.close()

    assert [s.status for s in result.steps] == ["ok"] * 3
    assert_only_accepted_trained(planner, store)
    records = planner.records
    assert records[0].designer == "start" and {r.designer for r in records[1:]} == {"mutation"}
    assert all(r.review_score is not None for r in records if r.check_status == "ok")
    with open_store(store) as s:
        joined = s.sql(
            "SELECT count(*) AS n FROM steps s "
            f"JOIN read_parquet('{store}/{DESIGNS_DIR}/*.parquet') d "
            "ON d.campaign_id = s.campaign_id AND d.step = s.step AND d.run_seed = s.seed"
        ).to_pylist()
    assert joined == [{"n": 3}]


def test_clear_errors(monkeypatch):
    monkeypatch.delenv(URL_VAR, raising=False)
    with pytest.raises(PlannerError, match="max_attempts=0 must be an integer >= 1"):
        DesignerPlanner(max_attempts=0)
    with pytest.raises(PlannerError, match="margin=-0.1"):
        DesignerPlanner(margin=-0.1)
    with pytest.raises(PlannerError, match="url configure designer='llm'"):
        DesignerPlanner(url="http://127.0.0.1:1")
    with pytest.raises(PlannerError, match=URL_VAR):
        DesignerPlanner("llm")
    with pytest.raises(PlannerError, match="unit-tree models"):
        DesignerPlanner().reset(get_suite("tabular").make_schema())
    with pytest.raises(PlannerError, match="start tree: .*lstm"):
        DesignerPlanner(start={"layers": [{"mixer": "lstm"}]}).reset(SCHEMA)


def test_a_bound_designer_needs_only_its_campaign_context():
    """No env and no observation: the task, budgets, executor and ids come from the context."""
    context = CampaignContext(
        env_id=ENV_ID, schema=SCHEMA, task="mqar-small", task_ref=TASK, campaign_id="c1",
        budget=1, limits={"max_params": 30_000}, executor=WidthScore(), store=None,
    )  # fmt: skip
    big = tree(width=256, layers=START["layers"] * 3)
    planner = DesignerPlanner(Scripted(big), max_attempts=1)
    planner.bind(context)
    planner.reset(SCHEMA, seed=0, fixed=FIXED)
    planner.propose(None)
    planner.observe(None, 0.0, {"status": "ok", "metrics": {"score": 0.5}, "seed": 7})
    planner.propose(None)
    start, over = planner.records[:2]
    assert {r.campaign_id for r in planner.records} == {"c1"} and planner.records_path is None
    assert {r.task for r in planner.records} == {"mqar-small"}
    assert start.review_score == START["width"] / 1000  # reviewed by the context's executor
    assert over.check_status == "over_budget" and "max_params=30,000" in over.check_reason


def test_a_failing_endpoint_stops_the_llm_designer_instead_of_passing_for_a_design(tmp_path):
    from agents.llm_agent import EndpointError

    def unreachable(prompt):
        raise EndpointError(
            "unreachable", "cannot reach http://127.0.0.1:9/v1 (connection refused)"
        )

    planner = DesignerPlanner("llm", generate=unreachable, max_attempts=3, margin=1.0)
    with pytest.raises(EndpointError, match="connection refused"):
        run_bound(make_env(tmp_path / "store", executor=WidthScore()), planner)
    assert not any(r.designer == "llm" for r in planner.records)  # no design came from it
