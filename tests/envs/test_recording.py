"""StepRecorder: the rows an env writes, the agent of each campaign, bounded text, sources."""

from __future__ import annotations

import json
import logging

import gymnasium as gym
import numpy as np
import pytest

import researchgym  # noqa: F401 - registers the envs
from researchgym.engine import TaskRef, load_task_data
from researchgym.envs.recording import MAX_STORED_CHARS
from researchgym.store import open_store
from researchgym.store.schema import ROW_FIELDS
from tests.conftest import capped_executor

TABULAR = "researchgym/Tabular-v0"
CHEAP = {"model.family": "linear", "train.epochs": 1}


def rows(path) -> list[dict]:
    with open_store(path) as store:
        return store.sql("SELECT * FROM steps ORDER BY started_at").to_pylist()


def store_bytes(path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def test_a_row_has_every_column_the_task_features_and_the_source(tmp_path):
    env = gym.make(TABULAR, store=tmp_path, budget=2, device="cpu", agent="me")
    env.reset(seed=0, options={"task": "iris"})
    env.step(env.unwrapped.to_action(CHEAP))
    env.step("not an action")
    env.close()
    first, second = rows(tmp_path)
    assert {field.name for field in ROW_FIELDS} <= first.keys()
    assert json.loads(first["task_features"]) == load_task_data("iris").features()
    assert first["source_env_id"] == TABULAR == first["env_id"]
    assert first["answered_by"] is None  # trained, not answered by something else
    assert (first["task"], first["agent"], first["status"]) == ("iris", "me", "ok")
    assert (second["step"], second["status"], second["action_flat"]) == (1, "invalid_action", None)
    assert second["task_features"] == first["task_features"]


def test_last_run_id_is_the_run_id_of_the_latest_recorded_step(tmp_path):
    env = gym.make(TABULAR, store=tmp_path, budget=2, device="cpu")
    env.reset(seed=0, options={"task": "iris"})
    assert env.unwrapped.last_run_id is None
    ids = []
    for _ in range(2):
        env.step(env.unwrapped.to_action(CHEAP))
        ids.append(env.unwrapped.last_run_id)
    env.close()
    assert ids == [row["run_id"] for row in rows(tmp_path)]
    unrecorded = gym.make(TABULAR, store=False, budget=1, device="cpu")
    unrecorded.reset(seed=0, options={"task": "iris"})
    unrecorded.step(unrecorded.unwrapped.to_action(CHEAP))
    assert unrecorded.unwrapped.last_run_id is None


def test_reset_options_name_the_agent_of_one_campaign(tmp_path):
    env = gym.make(TABULAR, store=tmp_path, budget=1, device="cpu", agent="default")
    for options in ({"agent": "tpe"}, {}):
        env.reset(seed=0, options={"task": "iris", **options})
        env.step(env.unwrapped.to_action(CHEAP))
    assert [row["agent"] for row in rows(tmp_path)] == ["tpe", "default"]
    for bad in ("", 3):
        with pytest.raises(ValueError, match="agent=.* must be a non-empty name"):
            env.reset(seed=0, options={"agent": bad})
    with pytest.raises(ValueError, match="agent="):
        gym.make(TABULAR, store=False, agent="")


def test_a_row_keeps_the_seed_reset_was_given_beside_the_training_seed(tmp_path):
    env = gym.make(TABULAR, store=tmp_path, budget=1, device="cpu")
    seeds = []
    for seed in (0, None):
        env.reset(seed=seed, options={"task": "iris"})
        seeds.append(env.step(env.unwrapped.to_action(CHEAP))[4]["seed"])
    env.close()
    recorded = [(row["episode_seed"], row["seed"]) for row in rows(tmp_path)]
    assert recorded == [(0, seeds[0]), (None, seeds[1])]
    assert seeds[0] != 0
    with open_store(tmp_path) as store:
        episodes = store.sql("SELECT episode_seed FROM episodes ORDER BY started_at").to_pylist()
    assert episodes == [{"episode_seed": 0}, {"episode_seed": None}]


def test_the_default_store_is_announced_once_per_directory(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("RESEARCHGYM_STORE", raising=False)
    caplog.set_level(logging.WARNING, logger="researchgym")
    for directory in ("a", "a", "b"):
        (tmp_path / directory).mkdir(exist_ok=True)
        monkeypatch.chdir(tmp_path / directory)
        gym.make(TABULAR).close()
    said = [r.getMessage() for r in caplog.records if r.name.startswith("researchgym")]
    assert len(said) == 2
    for message, directory in zip(said, ("a", "b"), strict=True):
        assert f"recording every step in {tmp_path / directory / 'datasets_store'}" in message
        assert "store=False" in message and "RESEARCHGYM_STORE" in message
    gym.make(TABULAR, store=tmp_path / "chosen").close()
    gym.make(TABULAR, store=False).close()
    assert len([r for r in caplog.records if r.name.startswith("researchgym")]) == 2


def test_a_huge_text_action_is_stored_cut(tmp_path):
    env = gym.make(TABULAR, store=tmp_path, budget=1, interface="text", device="cpu")
    env.reset(seed=0)
    huge = json.dumps({"model.family": "x" * 5_000_000})
    _, _, _, _, info = env.step(huge)
    assert info["status"] == "invalid_action"
    (row,) = rows(tmp_path)
    assert store_bytes(tmp_path) < 100_000
    stored = json.loads(row["action"])
    assert stored.startswith('{"model.family": "xxx') and stored.endswith(
        f"({len(huge):,} characters)"
    )
    assert len(row["action"]) <= MAX_STORED_CHARS
    assert len(row["error"]) <= MAX_STORED_CHARS


@pytest.mark.parametrize("char", ["é", '"', "\x00", "\ud800"])
def test_text_actions_that_json_escapes_lengthen_are_stored_within_the_bound(tmp_path, char):
    env = gym.make(TABULAR, store=tmp_path, budget=1, interface="text", device="cpu")
    env.reset(seed=0)
    env.step(char * 50_000)
    (row,) = rows(tmp_path)
    assert len(row["action"]) <= MAX_STORED_CHARS
    assert json.loads(row["action"]).startswith(char * 100)


def test_a_huge_training_error_is_stored_cut(tmp_path):
    from researchgym.engine import Executor, Result

    class Failing(Executor):
        def run(self, metaprogram, *, task, seed, **job):
            return Result(status="error", error="e" * 1_000_000)

    env = gym.make(TABULAR, store=tmp_path, budget=1, executor=Failing())
    env.reset(seed=0)
    env.step(env.unwrapped.to_action(CHEAP))
    (row,) = rows(tmp_path)
    assert row["error"].startswith("eee") and row["error"].endswith("(1,000,000 characters)")
    assert len(row["error"]) <= MAX_STORED_CHARS


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [("researchgym/Replay-v0", {"missing": "nearest"}), ("researchgym/Surrogate-v0", {})],
)
def test_fast_envs_record_the_env_whose_runs_answer(env_id, kwargs, tmp_path):
    for source in ("researchgym/Digits-v0", "researchgym/Tabular-v0"):
        env = gym.make(env_id, source=source, store=tmp_path, budget=1, **kwargs)
        env.reset(seed=0)
        _, _, _, _, info = env.step(env.unwrapped.to_action({}))
        env.close()
        assert info["status"] == "ok"
    recorded = [
        (row["env_id"], row["source_env_id"], json.loads(row["env_kwargs"])["source"])
        for row in rows(tmp_path)
    ]
    assert sorted(recorded) == [
        (env_id, "researchgym/Digits-v0", "researchgym/Digits-v0"),
        (env_id, "researchgym/Tabular-v0", "researchgym/Tabular-v0"),
    ]


def test_a_row_records_the_envs_arguments_but_not_its_configuration(tmp_path):
    arguments = {
        "budget": 3,
        "reward": "regret_minus_cost",
        "cost_budget": {"samples": 10**6},
        "cost_weight": 0.5,
        "cost_unit": None,
        "tasks": ["iris"],
        "max_params": 10**6,
        "max_train_flops": None,
        "max_train_steps": None,
        "history": 2,
        "failure_reward": -2.0,
    }
    env = gym.make(TABULAR, store=tmp_path, device="cpu", interface="text", **arguments)
    env.reset(seed=0)
    env.step(env.unwrapped.to_action(CHEAP))
    env.close()
    (row,) = rows(tmp_path)
    assert json.loads(row["env_kwargs"]) == arguments
    with gym.make(TABULAR, store=False, **json.loads(row["env_kwargs"])) as again:
        assert (again.unwrapped.budget, again.unwrapped.reward_mode) == (3, "regret_minus_cost")
        assert again.unwrapped.costs.budget.to_dict() == {"samples": 10**6}
        assert again.unwrapped.tasks == ("iris",) and again.unwrapped.limits == {
            "max_params": 10**6
        }


def test_closing_the_env_closes_the_store_its_recorder_opened(tmp_path):
    env = gym.make(TABULAR, store=tmp_path / "opened", budget=1, device="cpu")
    env.reset(seed=0)
    env.step(env.unwrapped.to_action(CHEAP))
    opened = env.unwrapped.store
    opened.sql("SELECT count(*) FROM steps")  # opens its DuckDB connection
    env.close()
    assert opened._catalog is None

    with open_store(tmp_path / "given") as given:
        env = gym.make(TABULAR, store=given, budget=1, device="cpu")
        env.reset(seed=0)
        env.step(env.unwrapped.to_action(CHEAP))
        given.sql("SELECT count(*) FROM steps")
        env.close()
        assert given._catalog is not None  # the caller's store stays open
        assert given.sql("SELECT count(*) FROM steps").column(0)[0].as_py() == 1


def test_task_ref_is_the_campaigns_task():
    env = gym.make(TABULAR, store=False).unwrapped
    assert env.task_ref is None
    env.reset(seed=0, options={"task": "wine"})
    assert env.task_ref == TaskRef("wine")
    with pytest.raises(AttributeError):
        env.task_ref = TaskRef("iris")


def test_dict_actions_are_recorded_with_choices_not_indices(tmp_path):
    env = gym.make(
        "researchgym/Digits-v0", store=tmp_path, executor=capped_executor(1), device="cpu"
    )
    env.reset(seed=0)
    # a numpy integer is a choice's index: index 1 of model.kernel's (3, 5) is 5
    env.step({"model.family": np.int64(1), "model.kernel": np.int64(1), "optim.lr": 3e-3})
    env.step({"model.family": "cnn", "model.kernel": 5})
    env.close()
    actions = [json.loads(row["action"]) for row in rows(tmp_path)]
    assert actions[0] == {"model.family": "cnn", "model.kernel": 5, "optim.lr": 3e-3}
    assert actions[1] == {"model.family": "cnn", "model.kernel": 5}


def test_a_row_holds_the_observations_before_and_after_its_step(tmp_path):
    env = gym.make(TABULAR, store=tmp_path, budget=2, interface="flat", device="cpu")
    observations = [env.reset(seed=0, options={"task": "iris"})[0]]
    for _ in range(2):
        observations.append(env.step(env.unwrapped.to_action(CHEAP))[0])
    env.close()
    recorded = rows(tmp_path)
    np.testing.assert_array_equal([row["obs"] for row in recorded], observations[:-1])
    np.testing.assert_array_equal([row["next_obs"] for row in recorded], observations[1:])
