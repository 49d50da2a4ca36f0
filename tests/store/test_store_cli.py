"""The store's commands on a Typer app: query, store info, store compact, export."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import gymnasium as gym
import minari
import numpy as np
import pyarrow.parquet as pq
import pytest
import typer
from rich.text import Text
from store_rows import make_episode
from typer.testing import CliRunner

from researchgym.cli.store import register
from researchgym.store import Store
from researchgym.store.export import default_dataset_id
from tests.conftest import capped_executor


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    store = Store(tmp_path / "store", auto_compact=None)
    for n in (3, 4):
        for row in make_episode(n):
            store.append(row)
    store.close()
    return store.path


def _words(result: typer.testing.Result) -> str:
    """The result's output with line wrapping undone."""
    return " ".join(result.output.split())


def _ok(result: typer.testing.Result) -> str:
    assert result.exit_code == 0, result.output + str(result.exception or "")
    return result.stdout


def test_query_formats(app: typer.Typer, runner: CliRunner, path: Path, tmp_path: Path) -> None:
    sql = "SELECT campaign_id, count(*) AS n, list(step ORDER BY step) AS steps FROM steps GROUP BY 1 ORDER BY n"
    result = runner.invoke(app, ["query", sql, "--store", str(path)])
    header, *rows = [line.split("\t") for line in _ok(result).splitlines()]
    assert header == ["campaign_id", "n", "steps"] and [r[1:] for r in rows] == [
        ["3", "[0, 1, 2]"],
        ["4", "[0, 1, 2, 3]"],
    ]
    assert result.stderr == "2 rows\n"
    rows = json.loads(
        _ok(runner.invoke(app, ["query", sql, "--store", str(path), "--format", "json"]))
    )
    assert [r["n"] for r in rows] == [3, 4] and rows[1]["steps"] == [0, 1, 2, 3]
    text = _ok(runner.invoke(app, ["query", sql, "--store", str(path), "-f", "csv"]))
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["n"]) for r in parsed] == [3, 4] and json.loads(parsed[0]["steps"]) == [0, 1, 2]
    target = tmp_path / "q.parquet"
    _ok(
        runner.invoke(app, ["query", sql, "--store", str(path), "-f", "parquet", "-o", str(target)])
    )
    assert pq.read_table(target).num_rows == 2
    result = runner.invoke(app, ["query", sql, "--store", str(path), "-f", "parquet"])
    assert result.exit_code == 2 and "--output" in result.output
    result = runner.invoke(app, ["query", "SELEC nonsense", "--store", str(path)])
    assert result.exit_code == 2 and "query failed" in result.output
    shown = runner.invoke(
        app, ["query", "SELECT * FROM steps", "--store", str(path), "--limit", "2"]
    )
    assert len(_ok(shown).splitlines()) == 3 and "7 rows (showing 2" in shown.stderr
    target = tmp_path / "q.txt"
    _ok(runner.invoke(app, ["query", sql, "--store", str(path), "-o", str(target)]))
    assert target.read_text().splitlines()[0] == "campaign_id\tn\tsteps"


def test_query_shows_whole_run_ids_at_80_columns(app: typer.Typer, path: Path) -> None:
    sql = "SELECT * FROM steps ORDER BY run_id LIMIT 2"
    with Store(path) as store:
        columns = store.sql(sql).column_names
        run_ids = store.sql("SELECT run_id FROM steps ORDER BY run_id LIMIT 2").column(0)
    terminal = CliRunner(env={"COLUMNS": "80", "TTY_COMPATIBLE": "1"})
    text = Text.from_ansi(_ok(terminal.invoke(app, ["query", sql, "--store", str(path)]))).plain
    words = set(re.split(r"[\s│┃]+", text))
    assert {*run_ids.to_pylist(), *columns} <= words


def test_query_piped_prints_tab_separated_rows(app: typer.Typer, path: Path) -> None:
    sql = "SELECT run_id, campaign_id, val_score FROM steps ORDER BY run_id"
    result = CliRunner(env={"TTY_COMPATIBLE": "0"}).invoke(
        app, ["query", sql, "--store", str(path)]
    )
    out = _ok(result)
    assert not set("│┃━─") & set(out) and "\x1b" not in out
    with Store(path) as store:
        expected = store.sql(sql).to_pylist()
    header, *rows = [line.split("\t") for line in out.splitlines()]
    assert header == ["run_id", "campaign_id", "val_score"]
    assert [row[:2] for row in rows] == [[r["run_id"], r["campaign_id"]] for r in expected]


def test_store_env_var_and_missing_store(
    app: typer.Typer, runner: CliRunner, path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESEARCHGYM_STORE", str(path))
    rows = json.loads(
        _ok(runner.invoke(app, ["query", "SELECT count(*) AS n FROM steps", "-f", "json"]))
    )
    assert rows == [{"n": 7}]
    result = runner.invoke(app, ["store", "info", "--store", str(tmp_path / "absent")])
    assert result.exit_code == 2 and "no store at" in result.output


def test_info_and_compact(app: typer.Typer, runner: CliRunner, path: Path) -> None:
    info = json.loads(_ok(runner.invoke(app, ["store", "info", "--store", str(path), "--json"])))
    assert (info["rows"], info["episodes"], info["files"]["steps"]) == (7, 2, 7)
    assert info["size_bytes"] > 0 and ["obs", "DOUBLE[]"] in info["schema"]
    text = _ok(runner.invoke(app, ["store", "info", "--store", str(path)]))
    for word in ("rows", "episodes", "files", "size", "schema", "val_score"):
        assert word in text
    text = _ok(runner.invoke(app, ["store", "compact", "--store", str(path)]))
    assert "compacted 7 files (7 rows) into 1" in text
    info = json.loads(_ok(runner.invoke(app, ["store", "info", "--store", str(path), "--json"])))
    assert (info["rows"], info["files"]["steps"], info["files"]["compacted"]) == (7, 0, 1)
    assert "nothing to compact" in _ok(
        runner.invoke(app, ["store", "compact", "--store", str(path)])
    )


def test_export(app: typer.Typer, runner: CliRunner, path: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.csv"
    text = _ok(
        runner.invoke(
            app, ["export", "--format", "csv", "--output", str(out), "--store", str(path)]
        )
    )
    assert "wrote 7 rows" in text and out.exists()
    out = tmp_path / "x.parquet"
    args = [
        "export",
        "-f",
        "parquet",
        "-o",
        str(out),
        "--store",
        str(path),
        "--env",
        "researchgym/Digits-v0",
    ]
    _ok(runner.invoke(app, args))
    assert pq.read_table(out).num_rows == 7
    root = tmp_path / "minari"
    minari_args = ["export", "-f", "minari", "-o", str(root), "--store", str(path)]
    refused = runner.invoke(app, [*minari_args, "--without-env"])
    assert refused.exit_code == 2 and "without the observation their last step" in _words(refused)
    text = _ok(runner.invoke(app, [*minari_args, "--without-env", "--repeat-last-obs"]))
    assert "researchgym/Digits/store-v0" in text and "2 episodes" in text
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(root))
        assert minari.load_dataset("researchgym/Digits/store-v0").total_steps == 7
    refused = runner.invoke(app, [*minari_args, "--repeat-last-obs"])
    assert refused.exit_code == 2 and "already exists" in _words(refused)
    refused = runner.invoke(app, [*minari_args, "-o", str(tmp_path / "other"), "--repeat-last-obs"])
    assert refused.exit_code == 2 and "flat spaces" in refused.output
    assert "--without-env on the command line" in _words(refused)


@pytest.mark.slow
def test_minari_export_round_trips_each_env(
    app: typer.Typer, runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each env's campaigns become a dataset of what the env returned, in Minari's layout."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "not-here"))  # --output decides
    store = tmp_path / "store"
    envs: dict[str, dict[str, Any]] = {
        "researchgym/Tabular-v0": {"executor": capped_executor(1)},
        "researchgym/Replay-v0": {"source": "researchgym/Tabular-v0"},
    }
    runs: dict[str, dict[str, list[Any]]] = {}  # campaign id -> what the env returned
    for env_id, kwargs in envs.items():
        env = gym.make(env_id, interface="flat", store=store, budget=3, **kwargs)
        env.action_space.seed(0)
        for seed, steps in ((0, 3), (1, 2)):  # the second campaign stops before its end
            obs, info = env.reset(seed=seed)
            run = runs[info["campaign_id"]] = {"obs": [obs], "step": [], "settings": []}
            for _ in range(steps):
                obs, *returned, step_info = env.step(env.action_space.sample())
                run["obs"].append(obs)
                run["step"].append(returned)
                run["settings"].append(step_info["metaprogram"])
        env.close()

    root = tmp_path / "minari"
    text = _ok(
        runner.invoke(app, ["export", "-f", "minari", "-o", str(root), "--store", str(store)])
    )
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    with Store(store) as s:
        campaign_of = {r["run_id"]: r["campaign_id"] for r in s.runs().to_pylist()}
    for env_id in envs:
        assert f"wrote Minari dataset {default_dataset_id(env_id)} (2 episodes, 5 steps)" in text
        dataset = minari.load_dataset(default_dataset_id(env_id))
        recovered = dataset.recover_environment()
        assert recovered.observation_space == dataset.observation_space
        assert recovered.action_space == dataset.action_space
        lengths = []
        for episode in dataset.iterate_episodes():
            run = runs.pop(campaign_of[episode.infos["run_id"][1]])
            n = len(episode.actions)
            lengths.append(n)
            assert len(episode.observations) == n + 1 == len(run["obs"])
            np.testing.assert_array_equal(episode.observations, np.stack(run["obs"]))
            rewards, terminations, truncations = (np.array(x) for x in zip(*run["step"]))
            truncations[-1] |= not terminations[-1]  # Minari truncates an episode left unfinished
            np.testing.assert_array_equal(episode.rewards, rewards)
            np.testing.assert_array_equal(episode.terminations, terminations)
            np.testing.assert_array_equal(episode.truncations, truncations)
            assert [recovered.unwrapped.interface.parse_action(a) for a in episode.actions] == (
                run["settings"]
            )
        recovered.close()
        assert sorted(lengths) == [2, 3]
    assert not runs


def test_minari_export_of_one_env(
    app: typer.Typer, runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store"
    with Store(path) as store:
        store.append_many(make_episode(2))
        store.append_many(make_episode(3, env_id="researchgym/Wine-v0", obs_dim=9, act_dim=2))
    args = ["export", "-f", "minari", "-o", str(tmp_path / "minari"), "--store", str(path)]
    args += ["--without-env", "--repeat-last-obs"]
    refused = runner.invoke(app, [*args, "--dataset-id", "mine/all-v0"])
    assert refused.exit_code == 2 and "pass --env ID with it" in _words(refused)
    text = _ok(runner.invoke(app, [*args, "--env", "researchgym/Wine-v0"]))
    assert "researchgym/Wine/store-v0 (1 episodes, 3 steps)" in text and "Digits" not in text
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    assert minari.list_local_datasets().keys() == {"researchgym/Wine/store-v0"}


def test_store_option_reads_the_command_line_value():
    from researchgym.store import store_option

    assert store_option(None) is None
    assert store_option("none") is False and store_option("NONE") is False
    assert store_option("runs/store") == "runs/store"
