"""The run queue: workers drain it, a killed worker's job is finished by another, once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from researchgym.cli import app
from researchgym.errors import ConfigError, StateError
from researchgym.run_queue import RunQueue, campaign_jobs, grid_jobs, work
from researchgym.spaces import SettingError
from researchgym.store import Store
from researchgym.sweeps import MAX_JOBS

ENV = "researchgym/Synthetic-v0"
TASK = "synth_cls?seed=1000&rows=200"
ROOT = Path(__file__).resolve().parents[2]
piped = CliRunner(env={"TTY_COMPATIBLE": "0"})


def _rows(store: Path) -> list[dict]:
    with Store(store, auto_compact=None) as opened:
        return opened.sql("SELECT campaign_id, agent, status FROM steps ORDER BY 1").to_pylist()


def _worker(queue: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "researchgym", "worker", "--queue", str(queue), *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_submit_is_idempotent_and_two_workers_drain_the_queue(tmp_path):
    queue = RunQueue(tmp_path / "q", store=tmp_path / "store")
    grid = {"optim": {"lr": [0.01, 0.1]}, "model.width": [16, 32], "train.epochs": 1}
    jobs = grid_jobs(ENV, grid, tasks=[TASK])
    assert queue.submit(jobs) == (4, 0)
    assert queue.submit(jobs) == (0, 4)
    workers = [_worker(queue.path), _worker(queue.path)]
    for process in workers:
        output = process.communicate(timeout=300)[0].decode()
        assert process.returncode == 0, output
    assert queue.counts() == {"pending": 0, "running": 0, "done": 4}
    done = queue.status().done
    assert {job["result"]["status"] for job in done} == {"ok"}
    rows = _rows(queue.store_path)
    assert sorted(row["campaign_id"] for row in rows) == sorted(f"{job['id']}.1" for job in done)
    assert {row["agent"] for row in rows} == {"sweep-yaml"}


def test_a_killed_workers_job_is_finished_by_another_once(tmp_path):
    queue = RunQueue(tmp_path / "q", store=tmp_path / "store", lease_seconds=2.0)
    # long enough to be killed mid-training: rows are recorded when a step ends
    grid = {"train.epochs": 8, "model.width": 64}
    (job,) = grid_jobs(ENV, grid, tasks=["synth_cls?seed=1000&rows=1000"])
    queue.submit([job])
    killed = _worker(queue.path)  # takes the queue's lease
    _wait_for(lambda: queue.status().running and "worker" in queue.status().running[0])
    time.sleep(0.5)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=10)
    assert _rows(queue.store_path) == []  # it died before recording

    assert work(queue) == 1  # waits for the lease to expire, then takes the job over
    (done,) = queue.status().done
    assert done["attempt"] == 2 and done["result"]["status"] == "ok"
    assert [row["campaign_id"] for row in _rows(queue.store_path)] == [f"{job['id']}.2"]


def test_a_job_recorded_by_a_worker_that_died_before_marking_it_done_is_not_run_again(tmp_path):
    queue = RunQueue(tmp_path / "q", store=tmp_path / "store", lease_seconds=1.0)
    jobs = campaign_jobs(ENV, "random", episodes=2, steps=2, fixed={"train.epochs": 1}, task=TASK)
    queue.submit(jobs)
    assert work(queue) == 2
    # as if the worker of the first job had died after recording, before moving it to done/
    name = min(os.listdir(queue.path / "done"))
    os.rename(queue.path / "done" / name, queue.path / "running" / name)
    os.utime(queue.path / "running" / name, (0, 0))
    rows = _rows(queue.store_path)
    assert len(rows) == 4

    assert work(queue) == 1
    assert _rows(queue.store_path) == rows
    again = json.loads((queue.path / "done" / name).read_text())
    assert again["attempt"] == 2 and again["result"]["recorded_before"] is True


def test_a_job_whose_worker_keeps_dying_is_given_up(tmp_path):
    queue = RunQueue(tmp_path / "q", store=tmp_path / "store", lease_seconds=1.0, max_attempts=2)
    (job,) = grid_jobs(ENV, {"train.epochs": 1}, tasks=[TASK])
    queue.submit([job])
    for _ in range(2):  # claimed, then its worker goes silent
        name, _ = queue.claim("lost")
        os.utime(queue.path / "running" / name, (0, 0))
        queue.reap()
    (done,) = queue.status().done
    assert done["result"] == {"status": "error", "error": done["result"]["error"]}
    assert "went silent in each of 2 attempts" in done["result"]["error"]
    assert queue.counts() == {"pending": 0, "running": 0, "done": 1}


def test_a_damaged_job_file_is_done_with_an_error_and_the_others_still_run(tmp_path):
    queue = RunQueue(tmp_path / "q", store=tmp_path / "store")
    queue.submit(grid_jobs(ENV, {"train.epochs": 1}, tasks=[TASK]))
    (queue.path / "pending" / "0-feed.json").write_text("[1, 2")
    (queue.path / "pending" / "1-beef.json").write_text('["not", "a job"]')
    imports = {"kind": "step", "env": "os:Env-v0", "agent": "x", "task": TASK, "seed": 0}
    (queue.path / "pending" / "2-cafe.json").write_text(json.dumps(imports))
    assert work(queue) == 4
    results = {job["id"]: job["result"] for job in queue.status().done}
    assert {results[name]["status"] for name in ("feed", "beef", "cafe")} == {"error"}
    assert "bad job file" in results["feed"]["error"]
    assert "a JSON list, not an object" in results["beef"]["error"]
    assert "env 'os:Env-v0' is not a registered env id" in results["cafe"]["error"]
    assert len(_rows(queue.store_path)) == 1


def test_the_queue_command_shows_pending_running_and_done_jobs(tmp_path):
    queue = RunQueue(tmp_path / "q", store=tmp_path / "store")
    queue.submit(grid_jobs(ENV, {"optim.lr": [0.01, 0.1, 0.2], "train.epochs": 1}, tasks=[TASK]))
    assert work(queue, max_jobs=1) == 1
    queue.claim("host-a:12:abc")

    result = piped.invoke(app, ["queue", "--queue", str(queue.path)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split("\t") == [
        "state", "job", "what", "worker", "attempt", "heartbeat s", "result",
    ]  # fmt: skip
    running = [line.split("\t") for line in lines if line.startswith("running")]
    assert [(cells[3], cells[4]) for cells in running] == [("host-a:12:abc", "1")]
    assert "lr=0.1" in running[0][2] or "lr=0.2" in running[0][2]
    (done,) = [line.split("\t") for line in lines if line.startswith("done")]
    assert done[6].startswith("ok ")
    assert "1 pending, 1 running, 1 done (1 ok)" in result.stdout


@pytest.mark.parametrize(
    ("args", "files", "message"),
    [
        (["--grid", "g.yaml"], {"g.yaml": "optim:\n  lr: [0.1\n"}, "g.yaml: invalid YAML at line"),
        (["--grid", "g.yaml"], {"g.yaml": "optim.lrr: [0.1]\n"}, "did you mean 'optim.lr'"),
        (["--grid", "g.yaml"], {"g.yaml": "optim.lr: []\n"}, "optim.lr' lists no values"),
        (["--grid", "g.yaml"], {"g.yaml": "- 1\n"}, "expected a mapping of settings"),
        (["--grid", "g.yaml"], {"g.yaml": "optim.lr: 7.0\n"}, "optim.lr=7.0 is outside"),
        (["--sampler", "sobol", "--set", "nope=1"], {}, "unknown setting 'nope'"),
        (["--planner", "tpee"], {}, "did you mean 'tpe'"),
        (["--planner", "tpe", "--planner-arg", "bogus=1"], {}, "bogus"),
        (["--planner", "tpe", "--grid", "g.yaml"], {}, "give one of --grid FILE"),
        (["--sampler", "sobol", "--task", "no_such"], {}, "no_such"),
    ],
)
def test_submit_refuses_bad_input_with_a_short_clear_error(
    tmp_path, monkeypatch, args, files, message
):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    result = piped.invoke(app, ["submit", "--env", ENV, "--queue", "q", "--store", "s", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output) < 1200
    assert not (tmp_path / "q" / "pending").exists() or not os.listdir(tmp_path / "q" / "pending")


def test_grids_larger_than_the_limit_are_refused_before_they_are_expanded():
    values = list(range(16, 400))
    with pytest.raises(SettingError, match=f"more than {MAX_JOBS}"):
        grid_jobs(ENV, {"model.width": values, "train.batch_size": values}, tasks=[TASK])


def test_queues_refuse_a_second_store_bad_leases_and_files(tmp_path):
    RunQueue(tmp_path / "q", store=tmp_path / "a", lease_seconds=5)
    opened = RunQueue(tmp_path / "q")
    assert (opened.store_path, opened.lease_seconds) == (tmp_path / "a", 5.0)
    with pytest.raises(ConfigError, match="has store=.* not .*b'?; leave it out"):
        RunQueue(tmp_path / "q", store=tmp_path / "b")
    with pytest.raises(ConfigError, match="has lease_seconds=5.0, not 60"):
        RunQueue(tmp_path / "q", lease_seconds=60)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "queue.json").write_text('{"store": "s"}')
    with pytest.raises(StateError, match="is not a queue's settings"):
        RunQueue(tmp_path / "bad")
    with pytest.raises(ConfigError, match="lease_seconds must be > 0"):
        RunQueue(tmp_path / "q", lease_seconds=0)
    (tmp_path / "f").write_text("")
    with pytest.raises(StateError, match="is a file"):
        RunQueue(tmp_path / "f")
    result = piped.invoke(app, ["worker", "--queue", str(tmp_path / "none")])
    assert result.exit_code == 2 and "no queue at" in result.output
