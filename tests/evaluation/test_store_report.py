"""``researchgym report``: a summary of any store as Markdown, PNG plots and HTML."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import pytest
from typer.testing import CliRunner

from researchgym.cli import app
from researchgym.envs.replay import REFERENCE_STORE
from researchgym.store import Store
from tests.evaluation.test_report import chromium_dom

runner = CliRunner(env={"COLUMNS": "250"})
HOSTILE_AGENT = "<script>alert('agent')</script>"
HOSTILE_TASK = "<script>alert('task')</script> $x$ |"


def invoke(*args: object):
    result = runner.invoke(app, [str(a) for a in args])
    return result, " ".join(result.output.split())


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """Two replayed campaigns of three steps, and one row with hostile task and agent names."""
    path = tmp_path_factory.mktemp("store")
    env = gym.make(
        "researchgym/Replay-v0",
        source="researchgym/Tabular-v0",
        missing="nearest",
        budget=3,
        store=str(path),
    )
    env.action_space.seed(0)
    for seed in range(2):
        env.reset(seed=seed, options={"agent": "random", "task": "wine"})
        for _ in range(3):
            env.step(env.action_space.sample())
    env.close()
    with Store(path) as opened:
        row = opened.run(opened.sql("SELECT min(run_id) AS id FROM steps").to_pylist()[0]["id"])
        assert row is not None
        row.update(task=HOSTILE_TASK, agent=HOSTILE_AGENT, campaign_id="c" * 32, run_id="r" * 32)
        opened.append(row)
    return path


@pytest.fixture(scope="module")
def report(store, tmp_path_factory) -> tuple[Path, str]:
    """The folder ``researchgym report`` wrote for ``store``, and what it printed."""
    out = tmp_path_factory.mktemp("report")
    result, output = invoke("report", "--store", store, "--out", out)
    assert result.exit_code == 0, output
    return out, output


@pytest.mark.slow
def test_report_summarizes_runs_best_configurations_and_curves(store, report):
    out, output = report
    plots = sorted((out / "plots").glob("*.png"))
    assert [p.name for p in plots] == [
        "00-researchgym_Replay-v0-epochs.png",
        "00-researchgym_Replay-v0-progress.png",
    ]
    for path in (out / "report.md", out / "report.html", *plots):
        assert str(path) in output
    markdown = (out / "report.md").read_text()
    # runs per env and agent: campaigns, runs, then the count of each status
    assert "| researchgym/Replay-v0 | random | 2 | 6 | 6 | 0 | 0 | 0 | 0 | 0 | 0 |" in markdown
    with Store(store) as opened:
        wine = opened.best_runs().set_index("task").loc["wine"]
    assert f"| wine | {wine.best_val_score:.4g} | 6 | random | {wine.run_id} | " in markdown
    assert "model.family=" in markdown  # settings of the best metaprogram
    assert "![researchgym/Replay-v0: best validation score so far" in markdown
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2
    assert wine.run_id in html


@pytest.mark.slow
def test_report_renders_in_chromium(store, report):
    dom = chromium_dom(report[0] / "report.html")
    assert ["researchgym/Replay-v0", "random", "2", "6", "6", *["0"] * 7] in (dom.rows)
    assert len(dom.images) == 2
    assert all(image["data-rendered"] == "true" for image in dom.images)


@pytest.mark.slow
def test_hostile_names_are_escaped(report):
    html = (report[0] / "report.html").read_text()
    markdown = (report[0] / "report.md").read_text()
    assert "<script>alert" not in html
    assert html.count("<script>") == 1  # the report's own
    assert "&lt;script&gt;alert(&#x27;agent&#x27;)&lt;/script&gt;" in html
    assert "&lt;script&gt;alert(&#x27;task&#x27;)&lt;/script&gt; $x$ |" in html
    assert "<script>" not in markdown
    assert "&lt;script&gt;alert('task')&lt;/script&gt; $x$ \\|" in markdown


def test_empty_store_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result, output = invoke("report", "--store", tmp_path / "empty", "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert "holds no runs" in output and "researchgym rollout" in output
    assert not (tmp_path / "out").exists()


def test_missing_store_is_a_clear_error(tmp_path):
    result, output = invoke("report", "--store", tmp_path / "nothing")
    assert result.exit_code == 2
    assert "no store at" in output


@pytest.mark.slow
def test_report_of_the_reference_store(tmp_path):
    result, output = invoke("report", "--store", REFERENCE_STORE, "--out", tmp_path)
    assert result.exit_code == 0, output
    markdown = (tmp_path / "report.md").read_text()
    assert "5,344 runs in 5,344 campaigns of 3 envs" in markdown
    assert "| researchgym/Digits-v0 | sweep-sobol | 2032 | 2032 | 2032 |" in markdown
    # one-step campaigns have no best-so-far curve; per-epoch curves are drawn per env
    assert markdown.count("there is no best-so-far curve") == 3
    assert len(list((tmp_path / "plots").glob("*-epochs.png"))) == 3
