"""`researchgym rollout --agent NAME` and `researchgym train --agent ppo-sb3|ppo-rllib`."""

from __future__ import annotations

import json

import pytest
from planner_testing import ENV_ID, rows_by_agent
from typer.testing import CliRunner

from researchgym.cli import app
from researchgym.store import Store

runner = CliRunner()
CHEAP_SET = ["--set", "train.epochs=1", "--set", "train.batch_size=256"]


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    return result, result.output


@pytest.mark.parametrize("agent", ["tpe", "sobol"])
def test_rollout_runs_a_planner_and_records_its_name(agent: str, store_dir) -> None:
    result, out = invoke(
        "rollout",
        "--agent",
        agent,
        "--env",
        ENV_ID,
        "--episodes",
        "2",
        "--steps",
        "2",
        "--seed",
        "3",
        *CHEAP_SET,
        "--store",
        str(store_dir),
    )
    assert result.exit_code == 0, out
    assert f"{agent} on {ENV_ID}" in out and "best found" in out
    assert rows_by_agent(store_dir) == {agent: 4}


def test_rollout_reports_the_best_of_each_task(store_dir) -> None:
    # campaigns seeded 0 and 1 draw diabetes (R²) and breast_cancer (accuracy)
    args = ["rollout", "--agent", "default", "--env", ENV_ID, "--episodes", "2", "--steps", "1"]
    result, out = invoke(*args, "--seed", "0", *CHEAP_SET, "--store", str(store_dir))
    assert result.exit_code == 0, out
    found = [line.split(":")[0] for line in out.splitlines() if line.startswith("best found")]
    assert found == ["best found on diabetes", "best found on breast_cancer"]


def test_rollout_keeps_the_positional_env_and_planner_options(store_dir, tmp_path) -> None:
    result, out = invoke(
        "rollout",
        ENV_ID,
        "--agent",
        "grid",
        "--agent-arg",
        "levels=2",
        "--agent-arg",
        "settings=[optim.lr]",
        "--steps",
        "2",
        *CHEAP_SET,
        "--store",
        str(store_dir),
        "--plot",
        str(tmp_path / "c.png"),
    )
    assert result.exit_code == 0, out
    assert (tmp_path / "c.png").exists()
    assert rows_by_agent(store_dir) == {"grid": 2}


def test_rollout_defaults_to_random(store_dir) -> None:
    result, out = invoke(
        "rollout", "--env", ENV_ID, "--steps", "1", *CHEAP_SET, "--store", str(store_dir)
    )
    assert result.exit_code == 0, out
    assert rows_by_agent(store_dir) == {"random": 1}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--agent", "tpx", "--env", ENV_ID], "did you mean 'tpe'"),
        (["--agent", "ppo-sb3", "--env", ENV_ID], "needs a trained policy"),
        (["--agent", "random"], "no env given"),
        (["--env", ENV_ID, "--set", "train.epochs=0"], "train.epochs=0 is outside"),
        (["--env", ENV_ID, "--agent-arg", "nonsense"], "not of the form key=value"),
        (
            ["--env", ENV_ID, "--agent", "grid", "--agent-arg", "colour=red"],
            "planner 'grid' has no option 'colour'; its options are: levels: int = 3,",
        ),
    ],
)
def test_rollout_errors_say_what_to_do(args: list[str], message: str) -> None:
    result, out = invoke("rollout", *args, "--store", "none")
    assert result.exit_code == 2
    assert message in " ".join(out.split())


def test_train_then_rollout_the_trained_policy(tmp_path, store_dir) -> None:
    policy = tmp_path / "ppo"
    result, out = invoke(
        "train",
        "--agent",
        "ppo-sb3",
        "--env",
        ENV_ID,
        "--timesteps",
        "32",
        "--n-envs",
        "2",
        "--steps",
        "4",
        *CHEAP_SET,
        "--set",
        "model.family=linear",
        "--agent-arg",
        "n_steps=16",
        "--agent-arg",
        "batch_size=16",
        "--out",
        str(policy),
        "--store",
        str(store_dir),
    )
    assert result.exit_code == 0, out
    assert "saved ppo-sb3 policy" in out and (tmp_path / "ppo.zip").exists()
    result, out = invoke(
        "rollout",
        "--agent",
        "ppo-sb3",
        "--policy",
        str(tmp_path / "ppo.zip"),
        "--env",
        ENV_ID,
        "--steps",
        "2",
        *CHEAP_SET,
        "--store",
        str(store_dir),
    )
    assert result.exit_code == 0, out
    assert rows_by_agent(store_dir) == {"ppo-sb3-train": 32, "ppo-sb3": 2}


def test_train_refuses_planners_without_a_policy() -> None:
    result, out = invoke("train", "--agent", "tpe", "--env", ENV_ID)
    assert result.exit_code == 2 and "nothing to train" in out


@pytest.mark.usefixtures("without_ray")
def test_train_ppo_rllib_without_ray_names_the_extra() -> None:
    result, out = invoke("train", "--agent", "ppo-rllib", "--env", ENV_ID)
    assert result.exit_code == 2
    assert "pip install 'researchgym[rllib]'" in " ".join(out.split())


@pytest.mark.parametrize(
    ("command", "trainable"), [("rollout", False), ("train", True), ("train-planner", False)]
)
def test_every_agent_option_lists_the_planner_registry(command: str, trainable: bool) -> None:
    from researchgym.planning import planner_names

    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    agent_help = next(line for line in result.output.splitlines() if "--agent " in line)
    names = planner_names(trainable=trainable)
    assert {"transformer"} <= set(names) and ("designer" in names) != trainable
    assert ", ".join(names) in agent_help


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("n_startup=3", "has no option 'n_startup'; did you mean 'n_startup_trials'?"),
        ("n_startup_trials=abc", "option n_startup_trials='abc' is not a valid int"),
    ],
)
def test_rollout_planner_options_are_checked_without_a_traceback(option: str, message: str) -> None:
    result, out = invoke(
        "rollout", "--agent", "tpe", "--env", ENV_ID, "--agent-arg", option, "--store", "none"
    )
    text = " ".join(out.split())
    assert result.exit_code == 2 and message in text
    assert "n_startup_trials: int = 5, multivariate: bool = True" in text
    assert "Traceback" not in out and not isinstance(result.exception, TypeError)


def test_train_runs_exactly_the_timesteps_asked(tmp_path, store_dir) -> None:
    common = ["train", "--agent", "ppo-sb3", "--env", ENV_ID, "--n-envs", "2", "--steps", "4"]
    cheap = [*CHEAP_SET, "--set", "model.family=linear", "--store", str(store_dir)]
    result, out = invoke(*common, "--timesteps", "8", *cheap, "--out", str(tmp_path / "ppo"))
    assert result.exit_code == 0, out
    assert rows_by_agent(store_dir) == {"ppo-sb3-train": 8}
    result, out = invoke(*common, "--timesteps", "100", "--agent-arg", "n_steps=16", *cheap)
    assert result.exit_code == 2 and "Traceback" not in out
    assert "ask for a multiple of 32 (e.g. 96 or 128)" in " ".join(out.split())
    result, out = invoke(*common, "--agent-arg", "total_timesteps=8", *cheap)
    assert result.exit_code == 2 and "total_timesteps is given by --timesteps" in out
    assert rows_by_agent(store_dir) == {"ppo-sb3-train": 8}


REPLAY = ["rollout", "--env", "researchgym/Replay-v0", "--steps", "3"]


def test_rollout_on_replay_takes_env_args_and_says_which_run_answered(tmp_path) -> None:
    result, out = invoke(*REPLAY, "--env-arg", "missing=nearest", "--store", str(tmp_path))
    assert result.exit_code == 0, out
    assert out.count("ok (nearest)") == 3 and "by the nearest recorded run" in out
    with Store(tmp_path) as store:
        answered = store.sql("SELECT status, answered_by FROM steps").to_pylist()
    assert [row["status"] for row in answered] == ["ok"] * 3
    assert all(json.loads(row["answered_by"])["match"] == "nearest" for row in answered)


def test_rollout_shows_why_a_step_failed() -> None:
    result, out = invoke(*REPLAY, "--store", "none")
    assert result.exit_code == 0, out
    assert "error" in out.splitlines()[1].split("\t")  # the header of the plain table
    assert "no recorded run of this metaprogram on task 'digits'; the nearest differs in" in out


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("missin=nearest", "env 'researchgym/Replay-v0' has no option 'missin'; did you mean"),
        ("history=many", "option history='many' is not a valid int"),
        ("budget=3", "--env-arg budget is not an option here: pass --steps instead"),
        ("missing=nowhere", "missing='nowhere' is not a policy"),
    ],
)
def test_rollout_env_args_are_checked_without_a_traceback(option: str, message: str) -> None:
    result, out = invoke(*REPLAY, "--env-arg", option, "--store", "none")
    assert result.exit_code == 2 and message in " ".join(out.split()), out
    assert "Traceback" not in out


def test_run_takes_env_args(tmp_path) -> None:
    result, out = invoke(
        "run", "researchgym/Replay-v0", "--env-arg", "missing=nearest", "--store", str(tmp_path),
        "--plot", str(tmp_path / "curve.png"),
    )  # fmt: skip
    assert result.exit_code == 0, out
    result, out = invoke("run", "researchgym/Replay-v0", "--env-arg", "missin=nearest")
    assert result.exit_code == 2 and "did you mean 'missing'?" in " ".join(out.split())
