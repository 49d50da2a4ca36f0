"""The store's commands on a Typer app: query, store info, store compact, export."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import minari
import pyarrow.parquet as pq
import pytest
import typer
from store_rows import make_episode
from typer.testing import CliRunner

from researchgym.cli.store import register
from researchgym.store import Store


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


def _ok(result: typer.testing.Result) -> str:
    assert result.exit_code == 0, result.output + str(result.exception or "")
    return result.stdout


def test_query_formats(app: typer.Typer, runner: CliRunner, path: Path, tmp_path: Path) -> None:
    sql = "SELECT campaign_id, count(*) AS n, list(step ORDER BY step) AS steps FROM steps GROUP BY 1 ORDER BY n"
    out = _ok(runner.invoke(app, ["query", sql, "--store", str(path)]))
    assert "campaign_id" in out and "2 rows" in out
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
    shown = _ok(
        runner.invoke(app, ["query", "SELECT * FROM steps", "--store", str(path), "--limit", "2"])
    )
    assert "7 rows (showing 2" in shown


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
    text = _ok(
        runner.invoke(
            app,
            ["export", "-f", "minari", "-o", str(root), "--store", str(path), "--without-env"],
        )
    )
    assert "researchgym/Digits/store-v0" in text and "2 episodes" in text
    refused = runner.invoke(app, ["export", "-f", "minari", "-o", str(root), "--store", str(path)])
    assert refused.exit_code == 2 and "--without-env exports" in refused.output
    assert "flat spaces" in refused.output
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(root))
        assert minari.load_dataset("researchgym/Digits/store-v0").total_steps == 7


def test_store_option_reads_the_command_line_value():
    from researchgym.store import store_option

    assert store_option(None) is None
    assert store_option("none") is False and store_option("NONE") is False
    assert store_option("runs/store") == "runs/store"
