"""The engine: components, the training loop and the executors that run it.

Names are imported on first use, so that code needing only settings declarations,
task references or results (schemas, suites, replayed and surrogate steps) never
imports torch or scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from researchgym.engine.checkpoints import CheckpointMissing, Checkpoints
    from researchgym.engine.data import TaskData, load_task_data
    from researchgym.engine.datasets import (
        DATASETS,
        TaskInfo,
        check_task,
        parse_task,
        shipped_task_info,
        task_name,
    )
    from researchgym.engine.estimation import BudgetError, Estimate, check_budget, estimate
    from researchgym.engine.executors import InProcessExecutor, SubprocessExecutor, failure_result
    from researchgym.engine.hooks import (
        Deadline,
        EarlyStopping,
        Hook,
        LambdaHook,
        TrainingState,
        TrainingTimeout,
    )
    from researchgym.engine.jobs import (
        EXECUTORS,
        START_MODES,
        Executor,
        Job,
        Result,
        Start,
        make_executor,
    )
    from researchgym.engine.models import build_model, count_parameters
    from researchgym.engine.population import (
        population_groups,
        population_key,
        train_population,
    )
    from researchgym.engine.ray_executor import RayExecutor
    from researchgym.engine.runtime import PRECISIONS, Runtime
    from researchgym.engine.settings import ARCH, data_settings, model_settings, pipeline_settings
    from researchgym.engine.tasks import TaskError, TaskRef
    from researchgym.engine.training import TrainCheck, check_trainable, resolve_device, train
    from researchgym.engine.unit_tree import build_unit_tree, estimate_unit_tree

# public name -> module that defines it, imported on first access
_LAZY = {
    "TaskData": "researchgym.engine.data",
    "load_task_data": "researchgym.engine.data",
    "DATASETS": "researchgym.engine.datasets",
    "check_task": "researchgym.engine.datasets",
    "parse_task": "researchgym.engine.datasets",
    "task_name": "researchgym.engine.datasets",
    "TaskInfo": "researchgym.engine.datasets",
    "shipped_task_info": "researchgym.engine.datasets",
    "CheckpointMissing": "researchgym.engine.checkpoints",
    "Checkpoints": "researchgym.engine.checkpoints",
    "BudgetError": "researchgym.engine.estimation",
    "Estimate": "researchgym.engine.estimation",
    "check_budget": "researchgym.engine.estimation",
    "estimate": "researchgym.engine.estimation",
    "InProcessExecutor": "researchgym.engine.executors",
    "SubprocessExecutor": "researchgym.engine.executors",
    "failure_result": "researchgym.engine.executors",
    "Deadline": "researchgym.engine.hooks",
    "EarlyStopping": "researchgym.engine.hooks",
    "Hook": "researchgym.engine.hooks",
    "LambdaHook": "researchgym.engine.hooks",
    "TrainingState": "researchgym.engine.hooks",
    "TrainingTimeout": "researchgym.engine.hooks",
    "Executor": "researchgym.engine.jobs",
    "Job": "researchgym.engine.jobs",
    "Result": "researchgym.engine.jobs",
    "START_MODES": "researchgym.engine.jobs",
    "EXECUTORS": "researchgym.engine.jobs",
    "make_executor": "researchgym.engine.jobs",
    "RayExecutor": "researchgym.engine.ray_executor",
    "PRECISIONS": "researchgym.engine.runtime",
    "Runtime": "researchgym.engine.runtime",
    "Start": "researchgym.engine.jobs",
    "build_model": "researchgym.engine.models",
    "count_parameters": "researchgym.engine.models",
    "population_groups": "researchgym.engine.population",
    "population_key": "researchgym.engine.population",
    "train_population": "researchgym.engine.population",
    "ARCH": "researchgym.engine.settings",
    "data_settings": "researchgym.engine.settings",
    "model_settings": "researchgym.engine.settings",
    "pipeline_settings": "researchgym.engine.settings",
    "TaskError": "researchgym.engine.tasks",
    "TaskRef": "researchgym.engine.tasks",
    "TrainCheck": "researchgym.engine.training",
    "check_trainable": "researchgym.engine.training",
    "resolve_device": "researchgym.engine.training",
    "train": "researchgym.engine.training",
    "build_unit_tree": "researchgym.engine.unit_tree",
    "estimate_unit_tree": "researchgym.engine.unit_tree",
}

__all__ = [
    "ARCH",
    "DATASETS",
    "EXECUTORS",
    "PRECISIONS",
    "START_MODES",
    "BudgetError",
    "CheckpointMissing",
    "Checkpoints",
    "Deadline",
    "EarlyStopping",
    "Estimate",
    "Executor",
    "Hook",
    "InProcessExecutor",
    "Job",
    "LambdaHook",
    "RayExecutor",
    "Result",
    "Runtime",
    "Start",
    "SubprocessExecutor",
    "TaskData",
    "TaskError",
    "TaskInfo",
    "TaskRef",
    "TrainCheck",
    "TrainingState",
    "TrainingTimeout",
    "build_model",
    "build_unit_tree",
    "check_budget",
    "check_task",
    "check_trainable",
    "count_parameters",
    "data_settings",
    "estimate",
    "estimate_unit_tree",
    "failure_result",
    "load_task_data",
    "make_executor",
    "model_settings",
    "parse_task",
    "pipeline_settings",
    "population_groups",
    "population_key",
    "resolve_device",
    "shipped_task_info",
    "task_name",
    "train",
    "train_population",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'researchgym.engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
