"""The Ray executor on a local Ray with 2 CPUs: results equal in-process training, and a
job whose worker dies is run again, or recorded once with status "error"."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import gymnasium as gym
import pytest

from researchgym.engine import (
    Hook,
    InProcessExecutor,
    Job,
    RayExecutor,
    TaskRef,
    TrainingState,
    make_executor,
)
from researchgym.errors import ConfigError
from researchgym.store import Store

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray

DIGITS = "researchgym/Digits-v0"


class DieOnFirstEpoch(Hook):
    """Kills the worker process at the end of epoch 1 of a job's first ``deaths`` attempts;
    each attempt leaves a file in ``attempts``."""

    def __init__(self, attempts: Path, deaths: int):
        self.attempts, self.deaths = attempts, deaths

    def on_train_start(self, state: TrainingState) -> None:
        (self.attempts / str(len(list(self.attempts.iterdir())))).touch()

    def on_epoch_end(self, state: TrainingState) -> None:
        if len(list(self.attempts.iterdir())) <= self.deaths:
            os.kill(os.getpid(), signal.SIGKILL)


class Fails(Hook):
    """Raises in the job (a failure of the job itself, not of its worker)."""

    def __init__(self, attempts: Path):
        self.attempts = attempts

    def on_train_start(self, state: TrainingState) -> None:
        (self.attempts / str(len(list(self.attempts.iterdir())))).touch()
        raise ValueError("the job's own failure")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    # workers at normal priority, as RayExecutor starts them (Ray nices them to 15)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _system_config={"worker_niceness": 0},
    )
    yield
    ray.shutdown()


def cheap(schema, **settings):
    return schema.validate({"model.family": "mlp", "train.epochs": 2, **settings})


@pytest.mark.slow
def test_ray_jobs_equal_in_process_training(digits_schema):
    jobs = [Job(cheap(digits_schema), TaskRef("digits"), seed) for seed in (0, 1)]
    with RayExecutor(device="cpu") as executor:
        remote = executor.run_many(jobs)  # both at once, one per CPU
        single = executor.run(jobs[0].metaprogram, task=jobs[0].task, seed=jobs[0].seed)
    local = [
        InProcessExecutor(device="cpu").run(job.metaprogram, task=job.task, seed=job.seed)
        for job in jobs
    ]
    for got, want in zip([*remote, single], [*local, local[0]]):
        assert got.status == "ok", got.error
        assert got.val_metrics == want.val_metrics  # bitwise: same seed, same CPU
        assert got.test_metrics == want.test_metrics and got.curve == want.curve
        assert (got.samples, got.n_params, got.epochs) == (want.samples, want.n_params, 2)
    assert remote[0].val_metrics != remote[1].val_metrics
    assert ray.is_initialized()  # the executor did not start this Ray, so it left it running


def _step(executor, store):
    env = gym.make(DIGITS, store=store, executor=executor, budget=1)
    env.reset(seed=0)
    action = {"model.family": "mlp", "train.epochs": 2}
    _, _, _, _, info = env.step(env.unwrapped.to_action(action))
    with Store(store) as opened:
        rows = opened.runs(DIGITS, columns=("status", "error")).to_pylist()
    return info, rows


def test_a_killed_worker_is_retried_and_its_step_recorded_once(tmp_path):
    attempts = tmp_path / "attempts"
    attempts.mkdir()
    executor = RayExecutor(device="cpu", max_retries=2, hooks=[DieOnFirstEpoch(attempts, 1)])
    info, rows = _step(executor, tmp_path / "store")
    assert info["status"] == "ok", info["error"]
    assert len(list(attempts.iterdir())) == 2  # killed once, then finished
    assert rows == [{"status": "ok", "error": None}]


@pytest.mark.slow
def test_past_its_retries_a_killed_job_is_recorded_once_as_an_error(tmp_path):
    attempts = tmp_path / "attempts"
    attempts.mkdir()
    executor = RayExecutor(device="cpu", max_retries=1, hooks=[DieOnFirstEpoch(attempts, 5)])
    info, rows = _step(executor, tmp_path / "store")
    assert info["status"] == "error"
    assert "WorkerCrashedError" in info["error"] and "max_retries=1" in info["error"]
    assert len(list(attempts.iterdir())) == 2  # the first attempt and one retry
    assert len(rows) == 1 and rows[0]["status"] == "error"
    assert "WorkerCrashedError" in rows[0]["error"]


@pytest.mark.slow
def test_a_failing_job_is_not_retried(tmp_path, digits_schema):
    executor = RayExecutor(device="cpu", max_retries=3, hooks=[Fails(tmp_path)])
    result = executor.run(cheap(digits_schema), task=TaskRef("digits"), seed=0)
    assert result.status == "error" and "ValueError: the job's own failure" in result.error
    assert len(list(tmp_path.iterdir())) == 1


def test_envs_take_the_ray_executor_by_name():
    env = gym.make(DIGITS, store=False, executor="ray", device="cpu")
    assert isinstance(env.unwrapped.executor, RayExecutor)
    assert env.unwrapped.executor.device == "cpu"
    with pytest.raises(ConfigError, match=r"executor='rey' .* did you mean 'ray'"):
        make_executor("rey")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"address": "auto", "num_cpus": 2}, "drop one of them"),
        ({"num_cpus": 0}, "num_cpus=0 must be a whole number"),
        ({"cpus_per_job": 0}, "cpus_per_job=0 must be a number above 0"),
        ({"max_retries": -1}, "max_retries=-1 must be a whole number"),
        ({"device": "cuda"}, "gpus_per_job=0 hides every GPU"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        RayExecutor(**kwargs)


@pytest.mark.slow
def test_generate_on_ray_stores_what_processes_store(tmp_path):
    from typer.testing import CliRunner

    from researchgym.cli import app
    from researchgym.sweeps import plan_sweep, run_sweep

    words = ["generate", "--env", "researchgym/Tabular-v0", "--task", "iris", "--n", "3"]
    words += ["--set", "train.epochs=1", "--set", "model.family=linear"]
    result = CliRunner().invoke(
        app, [*words, "--executor", "ray", "--workers", "2", "--store", str(tmp_path / "ray")]
    )
    assert result.exit_code == 0, result.output
    assert "3 to run on 2 Ray step(s) at once" in " ".join(result.output.split())
    jobs = plan_sweep(
        "researchgym/Tabular-v0",
        sampler="sobol",
        n=3,
        fixed={"train.epochs": 1, "model.family": "linear"},
        tasks=["iris"],
    )
    local = list(
        run_sweep(
            "researchgym/Tabular-v0", jobs, store_path=tmp_path / "local", agent="sweep-sobol"
        )
    )
    assert [status for status, _ in local] == ["ok"] * 3

    def stored(store):
        with Store(store) as opened:
            rows = opened.runs(columns=("metaprogram", "seed", "status", "val_score")).to_pylist()
        return sorted(rows, key=lambda r: (r["metaprogram"], r["seed"]))

    assert stored(tmp_path / "ray") == stored(tmp_path / "local")  # bitwise, once each


@pytest.mark.slow
def test_a_leaderboard_trains_its_steps_on_ray_and_records_each_once(tmp_path):
    from researchgym.evaluation import BenchmarkSuite, run_leaderboard

    task = "synth_cls?seed=1000&rows=200"
    suite = BenchmarkSuite(
        "ray-tiny", 1, "one small table trained on Ray", env_id="researchgym/Synthetic-v0",
        source="researchgym/Synthetic-v0", test_tasks=(task,), train_tasks=(),
        budget=2, fixed={"train.epochs": 1},
    )  # fmt: skip
    with RayExecutor(device="cpu") as executor:
        board = run_leaderboard(
            suite, ["random"], 2, workers=2, executor=executor,
            store=tmp_path / "store", out_dir=tmp_path / "out",
        )  # fmt: skip
    assert board.ran == 2 and len(board.traces) == 2
    with Store(tmp_path / "store") as opened:
        rows = opened.sql("SELECT campaign_id, step, status FROM steps").to_pylist()
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    assert len({(r["campaign_id"], r["step"]) for r in rows}) == 4  # no step stored twice


def test_a_suite_that_replays_recorded_runs_takes_no_executor():
    from researchgym.evaluation import benchmark_suite

    with pytest.raises(ConfigError, match="trains nothing, so it takes no executor"):
        benchmark_suite("fast").make_env(executor=RayExecutor())
