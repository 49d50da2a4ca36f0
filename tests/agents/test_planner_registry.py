"""The planner protocol, the registry, the harness and the pieces agents share."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import typing
from pathlib import Path

import gymnasium as gym
import pytest
from planner_testing import CHEAP, ENV_ID, assert_in_space, rows_by_agent

from researchgym.errors import ConfigError
from researchgym.planning import (
    PLANNERS,
    CampaignArgs,
    CampaignContext,
    CampaignResult,
    FailedAsWorst,
    Planner,
    PlannerError,
    SearchPlanner,
    StepRecord,
    TrainArgs,
    best_per_task,
    check_options,
    make_planner,
    make_trainer,
    optimize,
    parse_args,
    planner_names,
    register_planner,
    rollout,
    run_campaign,
    run_campaigns,
)
from researchgym.spaces import Categorical, Float, Schema, SettingError
from researchgym.wrappers import PinSettings

BLACK_BOX = ["random", "sobol", "grid", "tpe", "default"]
PEERS = ["gp", "cmaes", "ngopt", "template"]


@pytest.fixture(scope="module")
def schema() -> Schema:
    return gym.make(ENV_ID, store=False, disable_env_checker=True).unwrapped.schema


def test_every_issue_planner_is_registered() -> None:
    assert set(planner_names()) >= {
        "random",
        "sobol",
        "grid",
        "tpe",
        "default",
        "ppo-sb3",
        "ppo-rllib",
        "successive-halving",
        "hyperband",
        "asha",
        "bohb",
        "pbt",
        *PEERS,
    }
    for spec in PLANNERS.values():
        assert ":" in spec.entry_point and spec.description


@pytest.mark.parametrize("name", BLACK_BOX + PEERS)
def test_black_box_planners_implement_the_protocol(name: str) -> None:
    planner = make_planner(name)
    assert isinstance(planner, Planner)
    assert planner.name == name
    assert planner.interface is None


def test_agents_are_one_runnable_file_each() -> None:
    modules = {spec.entry_point.partition(":")[0] for spec in PLANNERS.values()}
    for module in modules:
        found = importlib.util.find_spec(module)
        assert found is not None and found.origin.endswith(".py"), module
        source = Path(found.origin).read_text()
        assert 'if __name__ == "__main__":' in source and "class Args" in source, module


def test_unknown_planner_suggests_the_closest_name() -> None:
    with pytest.raises(PlannerError, match=r"unknown planner 'tpx'; did you mean 'tpe'\?"):
        make_planner("tpx")


def test_trainers_exist_only_for_learned_planners() -> None:
    with pytest.raises(PlannerError, match="nothing to train.*ppo-sb3"):
        make_trainer("random")
    assert callable(make_trainer("ppo-sb3"))


def test_missing_optional_dependency_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    register_planner("needs-missing", "agents.random_search:RandomPlanner", extra="hpo")
    monkeypatch.setitem(PLANNERS, "needs-missing", PLANNERS.pop("needs-missing"))
    real_import = importlib.import_module

    def fake_import(name: str, *args, **kwargs):
        if name == "agents.random_search":
            raise ModuleNotFoundError("No module named 'optuna'", name="optuna")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", fake_import)
    with pytest.raises(PlannerError, match=r"needs the package 'optuna'.*researchgym\[hpo\]"):
        make_planner("needs-missing")


def test_failed_steps_count_as_the_worst_value_seen() -> None:
    value = FailedAsWorst()
    assert value(-1.0, {"status": "error"}) is None  # nothing to compare with yet
    assert value(0.4, {"status": "ok"}) == 0.4
    assert value(0.9, {"status": "ok"}) == 0.9
    assert value(float("nan"), {"status": "ok"}) == 0.4
    assert value(-1.0, {"status": "diverged"}) == -1.0
    assert value(0.2, {"status": "timeout"}) == -1.0


def test_register_planner_checks_the_entry_point() -> None:
    with pytest.raises(PlannerError, match="must look like"):
        register_planner("broken", "agents.random_search.RandomPlanner")


@pytest.mark.parametrize("name", [*BLACK_BOX, "cmaes", "template"])
def test_proposals_stay_inside_the_full_space(name: str, schema: Schema) -> None:
    """Hundreds of proposals over every setting (no training): valid, only active settings, pins kept."""
    fixed = {"optim.name": "sgd", "train.epochs": 3}
    history = optimize(
        make_planner(name), schema, lambda m: -m["optim.lr"], n_trials=60, seed=3, fixed=fixed
    )
    assert len(history) == 60
    for metaprogram, _ in history:
        assert_in_space(schema, metaprogram, fixed)
        assert "optim.momentum" in metaprogram  # active under the pinned optimizer


@pytest.mark.parametrize("name", ["random", "sobol", "grid", "tpe"])
def test_search_planners_explore_and_are_seeded(name: str, schema: Schema) -> None:
    def run(seed: int) -> list[dict]:
        return [
            m
            for m, _ in optimize(make_planner(name), schema, lambda m: 0.0, n_trials=12, seed=seed)
        ]

    first = run(0)
    assert first == run(0)
    assert first != run(1)
    assert len({json.dumps(m, sort_keys=True) for m in first}) >= 10
    seen = {m["model.family"] for m in first} | {m["optim.name"] for m in first}
    assert {"mlp", "linear"} <= seen and len(seen & {"adam", "adamw", "sgd"}) >= 2


def test_harness_converts_once_pins_and_records(make_env, store_dir) -> None:
    env = make_env(interface="flat")
    result = run_campaign(env, make_planner("random"), seed=4, fixed=CHEAP)
    assert [s.step for s in result.steps] == [0, 1, 2]
    assert result.agent == "random"
    assert rows_by_agent(store_dir) == {"random": 3}  # the agent name travels with reset
    assert all(s.status == "ok" and s.metaprogram["train.epochs"] == 1 for s in result.steps)
    assert result.best_score == max(s.score for s in result.steps)
    assert result.best_so_far()[-1] == result.best_score


def test_harness_refuses_an_interface_the_planner_cannot_read(make_env) -> None:
    class NeedsFlat:
        name, interface = "needs-flat", "flat"

    with pytest.raises(PlannerError, match="make the env with interface='flat'"):
        run_campaign(make_env(interface="dict"), NeedsFlat(), seed=0)


def test_pins_are_validated(make_env) -> None:
    with pytest.raises(SettingError, match="train.epochs=0 is outside"):
        run_campaign(make_env(), make_planner("random"), seed=0, fixed={"train.epochs": 0})
    with pytest.raises(SettingError, match="did you mean 'train.epochs'"):
        run_campaign(make_env(), make_planner("random"), seed=0, fixed={"train.epoch": 1})


@pytest.mark.parametrize("interface", ["flat", "dict", "text"])
def test_pin_settings_wrapper_overwrites_any_interface(interface: str) -> None:
    env = PinSettings(
        gym.make(ENV_ID, store=False, interface=interface, disable_env_checker=True),
        {"train.epochs": 2},
    )
    base = env.unwrapped
    action = base.to_action({"train.epochs": 50, "optim.lr": 0.01})
    pinned = base.interface.parse_action(env.action(action))
    assert pinned["train.epochs"] == 2
    assert pinned["optim.lr"] == pytest.approx(0.01, rel=1e-4)
    if interface == "text":
        assert env.action("not json") == "not json"  # malformed actions reach the env unchanged


def test_optimize_is_a_planner_agnostic_seam() -> None:
    schema = Schema(
        [
            Categorical("kind", "a", choices=("a", "b")),
            Float("x", 0.5, low=0.0, high=1.0, when={"kind": ("b",)}),
        ]
    )
    history = optimize(
        make_planner("grid", levels=4), schema, lambda m: m.get("x", 0.0), n_trials=5, seed=0
    )
    assert sorted(json.dumps(m, sort_keys=True) for m, _ in history) == sorted(
        json.dumps(m, sort_keys=True)
        for m in [
            {"kind": "a"},
            {"kind": "b", "x": 0.125},
            {"kind": "b", "x": 0.375},
            {"kind": "b", "x": 0.625},
            {"kind": "b", "x": 0.875},
        ]
    )
    assert max(v for _, v in history) == 0.875


def test_parse_args_gives_every_agent_a_command_line() -> None:
    from agents.grid import Args

    args = parse_args(
        Args,
        [
            "--env",
            "researchgym/Digits-v0",
            "--set",
            "train.epochs=2",
            "--set",
            "optim.lr=0.1",
            "--levels",
            "5",
            "--no-shuffle",
            "--store",
            "none",
        ],
    )
    assert isinstance(args, CampaignArgs)
    assert (args.env, args.fixed, args.levels, args.shuffle, args.store) == (
        "researchgym/Digits-v0",
        ("train.epochs=2", "optim.lr=0.1"),
        5,
        False,
        "none",
    )
    assert parse_args(Args, []).levels == 3


def test_proposal_vectors_decode_like_the_env(schema: Schema) -> None:
    """A metaprogram survives the harness's one conversion (to a flat action and back)."""
    env = gym.make(ENV_ID, store=False, interface="flat", disable_env_checker=True).unwrapped
    metaprogram = schema.validate(
        {"optim.name": "sgd", "optim.lr": 0.02, "model.width": 64, **CHEAP}
    )
    decoded = env.interface.parse_action(env.to_action(metaprogram))
    assert decoded.keys() == metaprogram.keys()
    for name, value in metaprogram.items():
        assert decoded[name] == (
            pytest.approx(value, rel=1e-4) if isinstance(value, float) else value
        )


@pytest.mark.parametrize(
    "module",
    [
        "agents.random_search",
        "agents.sobol",
        "agents.grid",
        "agents.tpe",
        "agents.default",
        "agents.gp",
        "agents.cmaes",
        "agents.ngopt",
        "agents.template",
    ],
)
def test_agents_run_as_modules(
    module: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import runpy
    import sys

    argv = [
        module,
        "--steps",
        "2",
        "--store",
        "none",
        "--set",
        "train.epochs=1",
        "--set",
        "train.batch_size=256",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.delitem(sys.modules, module, raising=False)  # run it fresh, as `python -m` does
    runpy.run_module(module, run_name="__main__")
    out = capsys.readouterr().out
    assert "campaign 0 step 1" in out and "best validation score" in out


class Binds(SearchPlanner):
    """Proposes the defaults; keeps every context it is bound to."""

    name = "binds"

    def __init__(self) -> None:
        self.contexts: list[CampaignContext] = []

    def bind(self, context: CampaignContext) -> None:
        self.contexts.append(context)

    def propose(self, observation) -> dict:
        return {}


def test_run_campaign_binds_each_campaign_context(make_env, store_dir) -> None:
    env = make_env(max_params=10**6)
    planner = Binds()
    results = run_campaigns(env, planner, episodes=2, seed=0, fixed=CHEAP, options={"task": "wine"})
    first, second = planner.contexts
    base = env.unwrapped
    assert isinstance(first, CampaignContext)
    assert (first.env_id, first.task, first.budget) == (ENV_ID, "wine", 3)
    assert first.schema is base.schema and first.executor is base.executor
    assert first.store is base.store and first.store.path == store_dir
    assert dict(first.limits) == {"max_params": 10**6}
    assert first.campaign_id != second.campaign_id == base.campaign_id
    assert [r.task for r in results] == ["wine", "wine"]
    with pytest.raises(AttributeError):
        first.task = "iris"  # type: ignore[misc]
    with pytest.raises(TypeError):
        first.limits["max_params"] = 1  # type: ignore[index]


def test_rollout_makes_the_env_the_planner_reads_and_closes_it(store_dir) -> None:
    seen: list[StepRecord] = []
    results = rollout(
        make_planner("grid", levels=2), ENV_ID, episodes=2, seed=1, budget=2,
        fixed=["train.epochs=1", "train.batch_size=256"], store=store_dir, callback=seen.append,
    )  # fmt: skip
    assert [(s.episode, s.step, s.budget) for s in seen] == [
        (0, 0, 2), (0, 1, 2), (1, 0, 2), (1, 1, 2)
    ]  # fmt: skip
    assert [r.seed for r in results] == [1, 2]
    assert all(s.metaprogram["train.epochs"] == 1 for s in seen)
    assert rows_by_agent(store_dir) == {"grid": 4}
    with pytest.raises(SettingError, match="train.epochs=0 is outside"):
        rollout(make_planner("random"), ENV_ID, fixed=["train.epochs=0"], store=False)


def test_parse_args_takes_help_from_field_metadata(capsys: pytest.CaptureFixture) -> None:
    from agents.grid import Args

    with pytest.raises(SystemExit):
        parse_args(Args, ["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--levels LEVELS points per numeric setting (default: 3)" in out
    assert "--set SET [SET ...] pin a setting for every step" in out
    assert "Grid search over (some of) a ResearchGym env's settings." in out


def step_on(task: str, score: float | None, step: int = 0) -> StepRecord:
    status = "ok" if score is not None else "diverged"
    return StepRecord(0, step, 2, task, {}, score or -2.0, status, score, score, 0.1)


def test_best_per_task_never_compares_the_scores_of_two_tasks() -> None:
    wine = CampaignResult("p", ENV_ID, "wine", 0, [step_on("wine", 0.6), step_on("wine", 0.9, 1)])
    diabetes = CampaignResult("p", ENV_ID, "diabetes", 1, [step_on("diabetes", -0.3)])
    again = CampaignResult("p", ENV_ID, "wine", 2, [step_on("wine", 0.7)])
    failed = CampaignResult("p", ENV_ID, "iris", 3, [step_on("iris", None)])
    best = best_per_task([wine, diabetes, again, failed])
    assert list(best) == ["wine", "diabetes"]
    assert (best["wine"].score, best["wine"].step) == (0.9, 1)
    assert best["diabetes"].score == -0.3


def test_agent_modules_report_the_best_of_each_task(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import runpy
    import sys

    argv = ["agents.default", "--episodes", "2", "--steps", "1", "--store", "none"]
    argv += ["--set", "train.epochs=1", "train.batch_size=256"]
    monkeypatch.setattr(sys, "argv", argv)  # seeds 0 and 1: diabetes, then breast_cancer
    monkeypatch.delitem(sys.modules, "agents.default", raising=False)
    runpy.run_module("agents.default", run_name="__main__")
    out = capsys.readouterr().out
    summary = [line for line in out.splitlines() if line.startswith("best validation score")]
    assert [line.split(":")[0] for line in summary] == [
        "best validation score on diabetes",
        "best validation score on breast_cancer",
    ]


def test_an_unknown_planner_option_gets_a_suggestion_and_the_options() -> None:
    with pytest.raises(PlannerError) as caught:
        make_planner("tpe", n_startup=3)
    message = str(caught.value)
    assert isinstance(caught.value, ConfigError)
    assert "planner 'tpe' has no option 'n_startup'; did you mean 'n_startup_trials'?" in message
    assert "its options are: n_startup_trials: int = 5, multivariate: bool = True" in message


def test_a_planner_option_of_the_wrong_type_names_the_option_and_the_type() -> None:
    with pytest.raises(PlannerError, match=r"option n_startup_trials='abc' is not a valid int"):
        make_planner("tpe", n_startup_trials="abc")
    with pytest.raises(PlannerError, match=r"levels=2.5 is not a valid int") as caught:
        make_planner("grid", levels=2.5)
    assert "settings: Sequence[str] | None = None" in str(caught.value)
    with pytest.raises(PlannerError) as caught:
        make_planner("tpe", n_startup_trials="x" * 10_000)
    assert len(str(caught.value)) < 400 and "(10,002 characters)" in str(caught.value)


def test_planner_options_are_converted_to_their_types() -> None:
    assert make_planner("tpe", n_startup_trials="7").n_startup_trials == 7
    assert make_planner("sobol", scramble="false").scramble is False


def test_check_options_reads_classes_and_functions() -> None:
    def train(env_id: str, *, rate: float = 0.1, **more: object) -> None: ...

    given = {"rate": "1e-3", "other": 1}
    checked = check_options(train, given, owner="t", exclude={"env_id"})
    assert checked == {"rate": 0.001, "other": 1}
    with pytest.raises(PlannerError, match=r"t needs the option env_id; its options are: env_id"):
        check_options(train, {}, owner="t")
    with pytest.raises(PlannerError, match=r"t has no option 'env_id'; .* rate: float = 0.1"):
        check_options(train, {"env_id": "x"}, owner="t", exclude={"env_id"})


@pytest.mark.parametrize(
    "module", sorted({s.entry_point.partition(":")[0] for s in PLANNERS.values()})
)
def test_every_agent_module_speaks_the_cli_vocabulary(
    module: str, capsys: pytest.CaptureFixture
) -> None:
    args = importlib.import_module(module).Args
    with pytest.raises(SystemExit):
        parse_args(args, ["--help"])
    flags = set(re.findall(r"--[a-z][a-z-]*", capsys.readouterr().out))
    assert {"--env", "--episodes", "--steps", "--seed", "--set", "--store"} <= flags
    assert not flags & {"--env-id", "--budget", "--fixed", "--save-path", "--total-timesteps"}
    if issubclass(args, TrainArgs):
        assert {"--timesteps", "--n-envs", "--out", "--policy"} <= flags


class Unchecked(typing.Protocol):
    """A protocol ``isinstance`` cannot test (not runtime-checkable)."""

    def go(self) -> None: ...


def test_check_options_passes_values_of_types_it_cannot_check() -> None:
    def build(helper: Unchecked | None = None) -> None: ...

    helper = object()
    assert check_options(build, {"helper": helper}, owner="b") == {"helper": helper}
