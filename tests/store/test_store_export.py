"""Export to Minari datasets and to plain Parquet/CSV files."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import gymnasium as gym
import minari
import numpy as np
import pyarrow.parquet as pq
import pytest
from store_rows import make_episode

from researchgym.store import Store, StoreError
from researchgym.store.export import default_dataset_id, export_minari, export_table
from tests.conftest import capped_executor


@pytest.fixture
def two_envs(store: Store) -> Store:
    for n in (3, 5, 2):
        store.append_many(make_episode(n))
    store.append_many(make_episode(4, env_id="researchgym/Wine-v0", obs_dim=9, act_dim=2))
    return store


def test_minari_export_of_rows_without_final_observations(
    two_envs: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows written before ``next_obs`` export only when told to repeat the last observation."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    digits = {"env_id": "researchgym/Digits-v0", "recover_env": False}
    with pytest.raises(StoreError, match="3 of 3 episodes .* without the observation their last"):
        export_minari(two_envs, "researchgym/Digits/test-v0", **digits)
    export_minari(two_envs, "researchgym/Digits/test-v0", repeat_last_obs=True, **digits)
    dataset = minari.load_dataset("researchgym/Digits/test-v0")
    assert (
        "3 episodes recorded without their final observation"
        in dataset.storage.metadata["description"]
    )
    assert dataset.env_spec is None
    assert dataset.total_episodes == 3
    assert dataset.total_steps == 10
    assert dataset.observation_space.shape == (6,) and dataset.action_space.shape == (3,)
    stored = {e.campaign_id: e for e in two_envs.iter_episodes(env_id="researchgym/Digits-v0")}
    lengths = []
    for episode in dataset.iterate_episodes():
        n = len(episode.rewards)
        lengths.append(n)
        assert episode.observations.shape == (n + 1, 6)
        assert episode.actions.shape == (n, 3)
        assert episode.terminations[-1] and not episode.terminations[:-1].any()
        assert list(episode.infos["step"]) == [-1, *range(n)]
        np.testing.assert_array_equal(episode.observations[-1], episode.observations[-2])
        match = [
            e for e in stored.values() if np.array_equal(e.observations, episode.observations[:-1])
        ]
        assert len(match) == 1
        np.testing.assert_array_equal(match[0].actions, episode.actions)
        np.testing.assert_allclose(match[0].rewards, episode.rewards)
    assert sorted(lengths) == [2, 3, 5]


def test_minari_export_needs_one_vector_size(two_envs: Store, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="export one env at a time"):
        export_minari(two_envs, "researchgym/mixed-v0", datasets_path=tmp_path)
    dataset = export_minari(
        two_envs,
        "researchgym/Wine/test-v0",
        env_id="researchgym/Wine-v0",
        datasets_path=tmp_path,
        recover_env=False,
        repeat_last_obs=True,
    )
    assert dataset.total_episodes == 1 and dataset.observation_space.shape == (9,)
    with pytest.raises(ValueError, match="no episodes"):
        export_minari(two_envs, "x/none-v0", env_id="researchgym/Nope-v0", datasets_path=tmp_path)


def test_minari_export_with_env_needs_the_envs_spaces(two_envs: Store, tmp_path: Path) -> None:
    old = {"datasets_path": tmp_path, "repeat_last_obs": True}
    with pytest.raises(StoreError, match="not registered with gymnasium"):
        export_minari(two_envs, "x/wine-v0", env_id="researchgym/Wine-v0", **old)
    with pytest.raises(StoreError, match=r"flat spaces have shapes \(\d+,\) and \(\d+,\)"):
        export_minari(two_envs, "x/digits-v0", env_id="researchgym/Digits-v0", **old)


def test_minari_export_final_observation_and_truncation(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last row's ``next_obs`` ends the episode; an unfinished episode is truncated."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    rows = make_episode(3)
    rows[-1]["terminated"] = False  # stopped before its budget was spent
    for row, following in itertools.pairwise(rows):
        row["next_obs"] = following["obs"]
    rows[-1]["next_obs"] = [9.0] * 6
    store.append_many(rows)
    export_minari(store, "researchgym/Digits/final-v0", recover_env=False)
    (episode,) = minari.load_dataset("researchgym/Digits/final-v0").iterate_episodes()
    np.testing.assert_array_equal(episode.observations, [r["obs"] for r in rows] + [[9.0] * 6])
    assert list(episode.truncations) == [False, False, True]
    assert not episode.terminations.any()
    with pytest.raises(StoreError, match="already exists"):
        export_minari(store, "researchgym/Digits/final-v0", recover_env=False)


def test_minari_export_of_real_campaigns_recovers_the_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.setenv("RESEARCHGYM_STORE", str(tmp_path / "default_store"))
    env = gym.make(
        "researchgym/Tabular-v0",
        interface="flat",
        store=tmp_path / "store",
        executor=capped_executor(1),
        budget=3,
        reward="regret",
    )
    invalid = np.zeros(2, dtype=np.float32)  # wrong shape: an invalid action
    for seed, task in ((0, "iris"), (1, "wine")):
        env.reset(seed=seed, options={"task": task})
        env.action_space.seed(seed)
        for action in (env.action_space.sample(), invalid, env.action_space.sample()):
            env.step(action)
    env.close()
    with Store(tmp_path / "store") as store:
        statuses = store.sql("SELECT status, count(*) AS n FROM steps GROUP BY 1").to_pylist()
        assert {r["status"]: r["n"] for r in statuses}["invalid_action"] == 2
        export_minari(store, "researchgym/Tabular/campaigns-v0", env_id="researchgym/Tabular-v0")
        stored = {e.campaign_id: e for e in store.iter_episodes()}
    dataset = minari.load_dataset("researchgym/Tabular/campaigns-v0")
    assert dataset.total_episodes == len(stored) == 2
    assert dataset.total_steps == sum(len(e) for e in stored.values()) == 6
    episodes = sorted(dataset.iterate_episodes(), key=lambda e: e.infos["run_id"][1])
    recorded = sorted(stored.values(), key=lambda e: e.run_ids[0])
    for episode, want in zip(episodes, recorded):
        np.testing.assert_array_equal(episode.rewards, want.rewards)
        assert np.isnan(episode.actions[1]).all()  # the invalid action has no flat vector
        np.testing.assert_array_equal(episode.actions[[0, 2]], want.actions[[0, 2]])

    recovered = dataset.recover_environment(executor=capped_executor(1))
    assert recovered.spec.kwargs["interface"] == "flat"
    assert recovered.unwrapped.budget == 3  # the campaign's arguments, not the registered ones
    assert recovered.unwrapped.reward_mode == "regret"
    assert recovered.observation_space == dataset.observation_space
    assert recovered.action_space == dataset.action_space == env.action_space
    assert recovered.observation_space == env.observation_space
    recovered.reset(seed=0, options={"task": "iris"})
    obs, reward, *_ = recovered.step(recovered.action_space.sample())
    assert recovered.observation_space.contains(obs) and np.isfinite(reward)
    recovered.close()


def test_minari_export_of_replay_campaigns_recovers_their_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    kwargs = {
        "source": "researchgym/Tabular-v0",
        "missing": "nearest",
        "budget": 2,
        "reward": "improvement",
    }
    env = gym.make("researchgym/Replay-v0", interface="flat", store=tmp_path / "store", **kwargs)
    for seed in (0, 1):
        env.reset(seed=seed)
        env.action_space.seed(seed)
        for _ in range(2):
            env.step(env.action_space.sample())
    env.close()
    with Store(tmp_path / "store") as store:
        export_minari(store, "researchgym/Replay/tabular-v0", env_id="researchgym/Replay-v0")
    dataset = minari.load_dataset("researchgym/Replay/tabular-v0")
    assert dataset.total_episodes == 2 and dataset.total_steps == 4

    recovered = dataset.recover_environment()
    assert recovered.spec.kwargs["source"] == "researchgym/Tabular-v0"
    assert recovered.unwrapped.recorder.source_env_id == "researchgym/Tabular-v0"
    assert recovered.unwrapped.budget == 2 and recovered.unwrapped.reward_mode == "improvement"
    assert recovered.action_space == env.action_space == dataset.action_space
    recovered.reset(seed=0)
    _, _, _, _, info = recovered.step(recovered.action_space.sample())
    assert info["status"] == "ok"
    recovered.close()


def test_minari_export_needs_one_set_of_env_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    for budget in (1, 2):
        env = gym.make(
            "researchgym/Replay-v0",
            source="researchgym/Tabular-v0",
            interface="flat",
            store=tmp_path / "store",
            budget=budget,
        )
        env.reset(seed=0)
        env.step(env.action_space.sample())
        env.close()
    with (
        Store(tmp_path / "store") as store,
        pytest.raises(StoreError, match="recorded with different env arguments"),
    ):
        export_minari(store, "x/mixed-v0", env_id="researchgym/Replay-v0")


def test_default_dataset_id() -> None:
    assert default_dataset_id("researchgym/Digits-v0") == "researchgym/Digits/store-v0"
    assert default_dataset_id("Plain", "random") == "Plain/random-v0"


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_plain_export(two_envs: Store, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "out" / f"steps.{fmt}"
    assert export_table(two_envs, out, format=fmt, env_id="researchgym/Digits-v0") == 10
    assert export_table(two_envs, tmp_path / f"all.{fmt}", format=fmt) == 14
    if fmt == "parquet":
        table = pq.read_table(out)
        assert table.num_rows == 10 and set(table.column("env_id").to_pylist()) == {
            "researchgym/Digits-v0"
        }
        assert (
            table.column("obs").to_pylist()[0]
            == two_envs.sql(
                "SELECT obs FROM steps WHERE env_id = 'researchgym/Digits-v0' ORDER BY campaign_id, step LIMIT 1"
            )
            .column(0)
            .to_pylist()[0]
        )
    else:
        with open(out, newline="") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == 10 and "campaign_id" in rows[0]
        assert len(json.loads(rows[0]["obs"])) == 6
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]
    with pytest.raises(ValueError, match="unknown export format"):
        export_table(two_envs, out, format="xlsx")
