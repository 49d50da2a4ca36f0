"""Seeded synthetic tables and the Synthetic-v0 suite's held-out split."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import researchgym  # noqa: F401 - registers the envs
from researchgym.engine.data import load_task_data
from researchgym.engine.synthetic_tables import generate
from researchgym.envs.suites import get_suite


@pytest.mark.parametrize("name", ["synth_cls", "synth_reg"])
def test_a_seed_always_gives_the_same_table_and_seeds_differ(name):
    x, y = generate(name, seed="7")
    x2, y2 = generate(name, seed=7)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    shapes = {generate(name, seed=k)[0].shape for k in range(8)}
    assert len(shapes) > 4  # sizes and columns are drawn from the seed


def test_tasks_load_with_the_right_kind_and_features():
    cls = load_task_data("synth_cls?seed=3")
    reg = load_task_data("synth_reg?seed=3")
    assert (
        cls.kind == "classification" and 2 <= cls.n_classes <= 5 and cls.chance == 1 / cls.n_classes
    )
    assert reg.kind == "regression" and reg.features()["is_regression"] == 1.0
    assert (
        abs(float(reg.y_train.mean())) < 1e-5
    )  # regression targets standardized on the training split
    assert 0.6 * 300 - 1 <= len(cls.x_train) <= 0.6 * 1500 + 1  # 60% of 300 to 1,500 rows


@pytest.mark.parametrize("name", ["synth_cls", "synth_reg"])
def test_rows_fixes_the_size_and_keeps_every_other_draw(name):
    x, y = generate(name, seed=5)
    x_big, y_big = generate(name, seed=5, rows=2500)
    assert x_big.shape == (2500, x.shape[1])  # same columns, the rows asked for
    assert len(np.unique(y_big)) == len(np.unique(y)) or name == "synth_reg"
    np.testing.assert_array_equal(generate(name, seed=5, rows=0)[0], x)  # 0: drawn from the seed
    assert len(load_task_data(f"{name}?seed=5&rows=2500").x_val) == 500


@pytest.mark.parametrize(
    "task, message",
    [
        ("synth_cls?seed=1&rows=10", "below 50"),
        ("synth_cls?seed=1&rows=1000000", "outside"),
        ("synth_cls?seed=x", "not an integer"),
        ("synth_reg?seed=-1", "outside"),
        ("synth_cls?depth=2", "no parameter"),
    ],
)
def test_bad_parameters_are_clear_errors(task, message):
    with pytest.raises(ValueError, match=message):
        load_task_data(task)


def test_the_held_out_split_is_disjoint_and_never_drawn_by_default():
    suite = get_suite("synthetic")
    assert suite.held_out_tasks and not set(suite.tasks) & set(suite.held_out_tasks)
    env = gym.make("researchgym/Synthetic-v0", store=False, budget=1).unwrapped
    assert set(env.tasks) == set(suite.tasks)
    drawn = {env.reset(seed=s)[1]["task"] for s in range(40)}
    assert drawn <= set(suite.tasks)


def test_a_held_out_task_trains_when_asked_for():
    held_out = get_suite("synthetic").held_out_tasks[0]
    env = gym.make("researchgym/Synthetic-v0", store=False, budget=1, tasks=[held_out])
    env.reset(seed=0)
    metaprogram = {"train.epochs": 2, "train.batch_size": 256}
    _, reward, terminated, _, info = env.step(
        env.unwrapped.to_action(env.unwrapped.schema.validate(metaprogram))
    )
    assert info["status"] == "ok" and info["task"] == held_out and terminated
    assert -1.0 <= reward <= 1.0


def test_sweeps_cover_the_held_out_tasks_too():
    from researchgym.sweeps import plan_sweep

    jobs = plan_sweep("researchgym/Synthetic-v0", sampler="random", n=1)
    assert [job.task for job in jobs] == list(get_suite("synthetic").all_tasks)


def test_sweeps_take_other_tasks_of_the_suites_datasets_and_refuse_foreign_ones():
    from researchgym.sweeps import plan_sweep

    task = "synth_cls?seed=7&rows=2500"
    jobs = plan_sweep("researchgym/Synthetic-v0", sampler="sobol", n=2, repeats=2, tasks=[task])
    assert [job.task for job in jobs] == [task] * 4 and len({job.seed for job in jobs}) == 4
    with pytest.raises(ValueError, match="not a task of suite"):
        plan_sweep("researchgym/Synthetic-v0", sampler="sobol", n=2, tasks=["iris"])
