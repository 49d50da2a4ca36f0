"""``run_campaign(..., batch=K)``: planners that propose several metaprograms per round."""

from __future__ import annotations

import gymnasium as gym
import optuna
import pytest
from planner_testing import CHEAP, ENV_ID, assert_in_space, rows_by_agent
from typer.testing import CliRunner

from agents.tpe import TPEPlanner
from researchgym.cli import app
from researchgym.envs.suites import get_suite
from researchgym.planning import (
    PlannerError,
    SearchPlanner,
    make_planner,
    optimize,
    rollout,
    run_campaign,
)
from researchgym.wrappers import PinSettings


@pytest.mark.parametrize("agent", ["random", "sobol", "tpe"])
def test_batched_campaigns_take_every_step(agent, make_env, store_dir) -> None:
    env = make_env(budget=6)
    seen = []
    result = run_campaign(
        env, make_planner(agent), seed=1, fixed=CHEAP, batch=4, callback=seen.append
    )
    assert [s.step for s in result.steps] == list(range(6))  # rounds of 4, then 2
    assert seen == result.steps
    assert all(s.status == "ok" for s in result.steps)
    schema = env.unwrapped.schema
    for step in result.steps:
        assert_in_space(schema, step.metaprogram, CHEAP)
    assert rows_by_agent(store_dir) == {agent: 6}


def test_a_batch_of_independent_proposals_takes_the_steps_of_one_at_a_time(make_env) -> None:
    """Random search proposes the same metaprograms either way; the env draws the same seeds."""
    runs = {}
    for batch in (1, 3):
        result = run_campaign(make_env(), make_planner("random"), seed=2, fixed=CHEAP, batch=batch)
        runs[batch] = [(s.metaprogram, s.info["seed"], s.status) for s in result.steps]
    assert runs[1] == runs[3] and len(runs[1]) == 3


def test_tpe_asks_a_batch_of_trials_and_tells_them_in_order() -> None:
    schema = get_suite("tabular").make_schema()
    planner = TPEPlanner(n_startup_trials=2)
    planner.reset(schema, seed=0, fixed=CHEAP)
    for _ in range(2):
        planner.propose(None)
        planner.observe(None, 0.5, {"status": "ok"})
    batch = planner.propose_batch(None, 3)
    assert len(batch) == 3 and len({str(sorted(m.items())) for m in batch}) == 3
    for value in (0.1, 0.2, 0.3):
        planner.observe(None, value, {"status": "ok"})
    assert [t.value for t in planner.study.trials] == [0.5, 0.5, 0.1, 0.2, 0.3]
    planner.propose_batch(None, 2)  # never observed: failed when the next proposals are asked
    planner.propose(None)
    states = [t.state for t in planner.study.trials]
    assert states[-3:] == [optuna.trial.TrialState.FAIL] * 2 + [optuna.trial.TrialState.RUNNING]


def test_tpe_constant_liar_leaves_one_at_a_time_proposals_unchanged() -> None:
    class NoLiar(TPEPlanner):
        def make_sampler(self, seed):
            return optuna.samplers.TPESampler(
                n_startup_trials=3, multivariate=True, group=True, seed=seed, constant_liar=False
            )

    schema = get_suite("tabular").make_schema()

    def objective(m) -> float:
        return -abs(m["optim.lr"] - 0.01)

    ours = optimize(TPEPlanner(n_startup_trials=3), schema, objective, n_trials=12, seed=4)
    assert ours == optimize(NoLiar(), schema, objective, n_trials=12, seed=4)


class OneAtATime(SearchPlanner):
    name = "one-at-a-time"

    def propose(self, observation):
        return dict(CHEAP)


def test_batch_needs_a_planner_that_proposes_batches(make_env) -> None:
    env = make_env()
    with pytest.raises(PlannerError, match="has no propose_batch.*batch=1"):
        run_campaign(env, OneAtATime(), seed=0, batch=2)
    with pytest.raises(PlannerError, match="positive integer"):
        run_campaign(env, make_planner("random"), seed=0, batch=0)
    assert len(run_campaign(env, OneAtATime(), seed=0, batch=1).steps) == 3


def test_batch_refuses_wrappers_step_many_would_bypass(make_env) -> None:
    env = PinSettings(make_env(), {"train.epochs": 1})
    with pytest.raises(PlannerError, match="bypass the wrapper PinSettings"):
        run_campaign(env, make_planner("random"), seed=0, batch=2)


def test_a_planner_must_return_as_many_proposals_as_asked(make_env) -> None:
    class Short(OneAtATime):
        def propose_batch(self, observation, n):
            return [self.propose(observation)]

    with pytest.raises(PlannerError, match="returned 1 proposals.*must return 2"):
        run_campaign(make_env(), Short(), seed=0, batch=2)


def test_rollout_and_the_cli_take_batch(store_dir) -> None:
    results = rollout(make_planner("sobol"), ENV_ID, budget=3, fixed=CHEAP, store=False, batch=2)
    assert len(results[0].steps) == 3
    out = CliRunner().invoke(
        app,
        ["rollout", "--agent", "random", "--env", ENV_ID, "--steps", "3", "--batch", "2"]
        + ["--set", "train.epochs=1", "--store", str(store_dir)],
    )
    assert out.exit_code == 0, out.output
    assert rows_by_agent(store_dir) == {"random": 3}
    out = CliRunner().invoke(
        app, ["rollout", "--agent", "default", "--env", ENV_ID, "--steps", "2", "--batch", "2"]
    )
    assert out.exit_code != 0 and "propose_batch" in out.output


def test_unwrapped_envs_batch_too() -> None:
    env = gym.make(ENV_ID, store=False, budget=2, disable_env_checker=True).unwrapped
    assert len(run_campaign(env, make_planner("grid"), seed=0, fixed=CHEAP, batch=2).steps) == 2
    env.close()
