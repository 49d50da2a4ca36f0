"""The engine: components, the training loop and the executors that run it."""

from researchgym.engine.data import (
    DATASETS,
    TaskData,
    check_task,
    data_settings,
    load_task_data,
    parse_task,
    task_name,
)
from researchgym.engine.estimate import BudgetError, Estimate, check_budget, estimate
from researchgym.engine.executors import (
    Executor,
    InProcessExecutor,
    SubprocessExecutor,
    failure_result,
)
from researchgym.engine.hooks import (
    Deadline,
    EarlyStopping,
    Hook,
    LambdaHook,
    TrainingState,
    TrainingTimeout,
)
from researchgym.engine.models import build_model, count_parameters, model_settings
from researchgym.engine.tasks import TaskError, TaskRef
from researchgym.engine.train import (
    Result,
    TrainCheck,
    check_trainable,
    pipeline_settings,
    resolve_device,
    train,
)
from researchgym.engine.unit_tree import ARCH, build_unit_tree, estimate_unit_tree

__all__ = [
    "ARCH",
    "DATASETS",
    "BudgetError",
    "Deadline",
    "EarlyStopping",
    "Estimate",
    "Executor",
    "Hook",
    "InProcessExecutor",
    "LambdaHook",
    "Result",
    "SubprocessExecutor",
    "TaskData",
    "TaskError",
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
    "model_settings",
    "parse_task",
    "pipeline_settings",
    "resolve_device",
    "task_name",
    "train",
]
