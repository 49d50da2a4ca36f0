"""The ``researchgym`` commands end to end: run, envs --schema, generate, surrogate fit."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import pytest
from rich.text import Text
from typer.testing import CliRunner

from researchgym.cli import app
from researchgym.envs.suites import get_suite
from researchgym.store import Store

ENV_ID = "researchgym/Tabular-v0"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Wide enough that rich never folds a setting name or a range across lines.
runner = CliRunner(env={"COLUMNS": "250"})


def invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    return result, " ".join(result.output.split())


def rows(store: Path) -> list[dict]:
    with Store(store) as opened:
        return opened.sql("SELECT * FROM steps ORDER BY run_id").to_pylist()


# --- run ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_run_trains_yaml_plus_overrides_records_the_step_and_plots_it(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("model:\n  family: linear\ntrain:\n  epochs: 3\noptim:\n  lr: 0.01\n")
    plot, store = tmp_path / "plots" / "curve.png", tmp_path / "store"
    result, output = invoke(
        "run",
        ENV_ID,
        "optim.lr=0.05",
        "data.scaling=minmax",
        "--config",
        config,
        "--task",
        "iris",
        "--seed",
        "2",
        "--plot",
        plot,
        "--store",
        store,
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    assert f"{ENV_ID} on iris: ok" in output
    assert "accuracy" in output and "score" in output and f"learning curve: {plot}" in output

    [row] = rows(store)
    metaprogram = json.loads(row["metaprogram"])
    assert metaprogram["model.family"] == "linear" and metaprogram["train.epochs"] == 3  # YAML
    assert metaprogram["optim.lr"] == 0.05  # the override wins over the YAML
    assert metaprogram["data.scaling"] == "minmax"
    assert metaprogram == get_suite("tabular").make_schema().validate(
        metaprogram
    )  # defaults filled
    assert (row["task"], row["agent"], row["status"]) == ("iris", "cli-run", "ok")
    assert len(json.loads(row["curve"])) == 3
    assert f"{json.loads(row['val_metrics'])['score']:.4f}" in output
    assert f"run_id: {row['run_id']}" in result.output  # on one line, as `rerun` takes it

    assert plot.read_bytes()[:8] == PNG_SIGNATURE and plot.stat().st_size > 1000


@pytest.mark.parametrize(
    "args, message",
    [
        (["optim.lr=5"], "optim.lr=5"),
        (["model.nope=1"], "model.nope"),
        (["--task", "not_a_task"], "not_a_task"),
        (["--precision", "fp16"], "precision='fp16' is not one of ('fp32', 'bf16')"),
    ],
)
def test_run_rejects_bad_settings_and_tasks_before_training(tmp_path: Path, args, message) -> None:
    store = tmp_path / "store"
    result, output = invoke("run", ENV_ID, *args, "--store", store, "--plot", tmp_path / "c.png")
    assert result.exit_code == 2, result.output
    assert "error:" in output and message in output
    assert not (tmp_path / "c.png").exists() and not list(store.glob("**/*.parquet"))


def test_run_reaches_a_held_out_task_and_records_the_seed_given(tmp_path: Path) -> None:
    task, store = get_suite("synthetic").held_out_tasks[0], tmp_path / "store"
    result, output = invoke(
        "run", "researchgym/Synthetic-v0", "model.family=linear", "train.epochs=1",
        "--task", task, "--seed", "0", "--store", store, "--plot", tmp_path / "c.png",
        "--device", "cpu",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"on {task}: ok" in output
    [row] = rows(store)
    assert (row["task"], row["episode_seed"]) == (task, 0)
    assert row["seed"] != 0  # the training seed drawn from it


def test_run_trains_in_bf16_deterministically(tmp_path: Path) -> None:
    store = tmp_path / "store"
    result, output = invoke(
        "run", ENV_ID, "model.family=linear", "train.epochs=1", "--task", "iris",
        "--precision", "bf16", "--deterministic", "--device", "cpu",
        "--store", store, "--plot", tmp_path / "c.png",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"{ENV_ID} on iris: ok" in output
    assert rows(store)[0]["status"] == "ok"


# --- envs --schema --------------------------------------------------------------------------
def test_envs_schema_prints_every_setting_with_its_range_default_and_condition() -> None:
    result, output = invoke("envs", "--schema", ENV_ID)
    assert result.exit_code == 0, result.output
    assert f"settings of {ENV_ID}" in output
    schema = gym.make(ENV_ID, store=False, disable_env_checker=True).unwrapped.schema
    for setting in schema:
        assert setting.name in output
        assert setting.describe() in output
    assert "an integer in [16, 1024] (log scale)" in output  # model.width
    assert "optim.name in ['sgd']" in output  # momentum is active only with sgd


# --- what a terminal 80 columns wide and a pipe show -----------------------------------------
terminal_80 = CliRunner(env={"COLUMNS": "80", "TTY_COMPATIBLE": "1"})
piped = CliRunner(env={"TTY_COMPATIBLE": "0"})
BOX = set("│┃┏┓┗┛━─┡┩┼╇")
REGISTERED = [env_id for env_id in gym.registry if env_id.startswith("researchgym/")]


def words_on_terminal(*args: str) -> set[str]:
    result = terminal_80.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return set(re.split(r"[\s│┃,]+", Text.from_ansi(result.output).plain))


def piped_lines(*args: str) -> list[list[str]]:
    result = piped.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    assert not BOX & set(result.stdout) and "\x1b" not in result.stdout
    return [line.split("\t") for line in result.stdout.splitlines()]


def test_envs_shows_every_env_id_and_task_whole_at_80_columns() -> None:
    shown = words_on_terminal("envs")
    assert len(REGISTERED) == 9 and set(REGISTERED) <= shown
    for env_id in REGISTERED:
        if "suite" in gym.spec(env_id).kwargs:
            assert set(get_suite(gym.spec(env_id).kwargs["suite"]).tasks) <= shown


def test_envs_schema_shows_every_setting_name_whole_at_80_columns() -> None:
    for env_id in ("researchgym/Digits-v0", "researchgym/SeqArch-v0"):
        schema = gym.make(env_id, store=False, disable_env_checker=True).unwrapped.schema
        assert {setting.name for setting in schema} <= words_on_terminal("envs", "--schema", env_id)


def test_envs_piped_prints_one_tab_separated_line_per_env() -> None:
    header, *rows = piped_lines("envs")
    assert header == ["id", "tasks", "settings", "description"]
    assert [row[0] for row in rows] == REGISTERED
    header, *rows = piped_lines("envs", "--schema", ENV_ID)
    assert header == ["setting", "allowed", "default", "active when"]
    schema = get_suite("tabular").make_schema()
    assert [row[0] for row in rows] == [setting.name for setting in schema]


def test_envs_schema_of_an_unknown_env_says_how_to_list_them() -> None:
    result, output = invoke("envs", "--schema", "researchgym/Nope-v0")
    assert result.exit_code == 2
    assert "researchgym envs" in output


# --- generate and surrogate fit -------------------------------------------------------------
# The surrogate needs 30 runs or so to split off held-out (task, metaprogram) pairs.
SWEEP = ("--n", "8", "--repeats", "2", "--set", "train.epochs=1", "--set", "model.family=linear")
BOTH_TASKS = ("--task", "iris", "--task", "wine")


@dataclass
class Sweep:
    store: Path
    first_output: str
    first_rows: list[dict]
    resumed_output: str


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Sweep:
    """``generate --workers 2`` on iris, then resumed with wine added."""
    store = tmp_path_factory.mktemp("sweep") / "store"
    result, first_output = invoke(
        "generate", "--env", ENV_ID, *SWEEP, "--task", "iris", "--workers", "2", "--store", store
    )
    assert result.exit_code == 0, result.output
    first_rows = rows(store)
    result, resumed_output = invoke(
        "generate", "--env", ENV_ID, *SWEEP, *BOTH_TASKS, "--workers", "2", "--store", store
    )
    assert result.exit_code == 0, result.output
    return Sweep(store, first_output, first_rows, resumed_output)


@pytest.mark.slow
def test_generate_with_two_workers_resumes_without_redoing_a_run(sweep: Sweep) -> None:
    assert "16 jobs planned, 0 already stored" in sweep.first_output
    assert "16 to run on 2 worker(s)" in sweep.first_output
    first = sweep.first_rows
    assert len(first) == 16 and {r["status"] for r in first} == {"ok"}
    assert {r["task"] for r in first} == {"iris"} and {r["agent"] for r in first} == {"sweep-sobol"}
    assert len({r["metaprogram"] for r in first}) == 8  # 8 design points x 2 seeds
    assert len({(r["metaprogram"], r["seed"]) for r in first}) == 16

    # Resumed with a second task: only the new task's jobs ran.
    assert "32 jobs planned, 16 already stored" in sweep.resumed_output
    assert "16 to run on 2 worker(s)" in sweep.resumed_output
    after = rows(sweep.store)
    assert len(after) == 32 and len({r["run_id"] for r in after}) == 32
    assert [r for r in after if r["task"] == "iris"] == first  # not one iris run redone

    # Everything is stored: nothing runs.
    result, output = invoke(
        "generate", "--env", ENV_ID, *SWEEP, *BOTH_TASKS, "--store", sweep.store
    )
    assert result.exit_code == 0, result.output
    assert "32 jobs planned, 32 already stored" in output and "0 to run" in output
    assert rows(sweep.store) == after


def test_generate_in_batches_records_the_rows_of_jobs_run_alone(tmp_path: Path) -> None:
    sweep = ("--env", ENV_ID, "--n", "4", "--repeats", "2", "--task", "iris")
    sweep += ("--set", "train.epochs=1", "--set", "model.family=linear")
    for batch in ("1", "3"):
        result, _ = invoke("generate", *sweep, "--batch", batch, "--store", tmp_path / batch)
        assert result.exit_code == 0, result.output
    alone, batched = (
        {(r["metaprogram"], r["seed"]): r for r in rows(tmp_path / b)} for b in ("1", "3")
    )
    assert alone.keys() == batched.keys() and len(alone) == 8
    for key, row in alone.items():
        assert batched[key]["status"] == row["status"] == "ok"
        assert batched[key]["reward"] == pytest.approx(row["reward"], abs=1.5 / 30)  # 30 val rows


@pytest.mark.slow
def test_surrogate_fit_writes_a_model_that_a_surrogate_env_loads_and_steps(
    sweep: Sweep, tmp_path: Path
) -> None:
    output_path = tmp_path / "models" / "tabular.npz"
    result, output = invoke(
        "surrogate", "fit", "--env", ENV_ID, "--data", sweep.store, "--output", output_path
    )
    assert result.exit_code == 0, result.output
    assert f"surrogate of {ENV_ID}" in output and "Spearman" in output
    assert f"saved {output_path} and {output_path.with_suffix('.json')}" in output
    card = json.loads(output_path.with_suffix(".json").read_text())
    n_runs = len(rows(sweep.store))
    assert card["fidelity"]["n_train"] + card["fidelity"]["n_test"] == n_runs

    assert card["env_id"] == ENV_ID and card["tasks"] == ["iris", "wine"]

    env = gym.make("researchgym/Surrogate-v0", source=ENV_ID, model=output_path, budget=3)
    env.reset(seed=0, options={"task": "wine"})
    action = env.unwrapped.to_action({"model.family": "linear", "optim.lr": 0.01})
    _, reward, terminated, _, info = env.step(action)
    assert info["status"] == "ok" and reward == info["metrics"]["score"]
    assert -1.0 <= reward <= 1.0 and not terminated
    # the model knows only the tasks it was fitted on
    env.reset(seed=0, options={"task": "breast_cancer"})
    _, _, _, _, info = env.step(action)
    assert info["status"] == "error" and "not fitted on task 'breast_cancer'" in info["error"]
    env.close()


def test_surrogate_fit_on_too_few_runs_fails_clearly(tmp_path: Path) -> None:
    env = gym.make(ENV_ID, store=tmp_path / "store", budget=1)
    env.reset(seed=0, options={"task": "iris"})
    env.step(env.unwrapped.to_action({"model.family": "linear", "train.epochs": 1}))
    env.close()
    result, output = invoke(
        "surrogate",
        "fit",
        "--env",
        ENV_ID,
        "--data",
        tmp_path / "store",
        "--output",
        tmp_path / "m.npz",
    )
    assert result.exit_code == 2
    assert "too few to fit a surrogate" in output
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize(
    ("env_id", "words"),
    [
        ("CartPole-v1", "not a ResearchGym env"),
        ("researchgym/Replay-v0", "no tasks of its own"),
        ("researchgym/Digit-v0", "Did you mean: `Digits`?"),
    ],
)
def test_generate_names_an_env_it_cannot_sweep(tmp_path: Path, env_id: str, words: str) -> None:
    result = CliRunner().invoke(
        app, ["generate", "--env", env_id, "--n", "1", "--store", str(tmp_path)]
    )
    assert result.exit_code == 2, result.output
    assert words in " ".join(result.output.split())
    assert not any(tmp_path.iterdir())  # nothing was run or stored


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_prints_the_installed_version(flag: str) -> None:
    from importlib.metadata import version

    result, out = invoke(flag)
    assert result.exit_code == 0 and out == f"researchgym {version('researchgym')}"


def test_generate_checks_the_horizon_before_running(tmp_path: Path) -> None:
    result, output = invoke(
        "generate", "--env", ENV_ID, "--n", "1", "--max-epochs", "100000", "--store", tmp_path
    )
    assert result.exit_code == 2, result.output
    assert "max_epochs=100000 must be an integer in [1," in output
    assert not any(tmp_path.iterdir())
