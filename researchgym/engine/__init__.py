"""The engine: components, the training loop and the executors that run it."""

from researchgym.engine.data import DATASETS, TaskData, data_settings, load_task_data
from researchgym.engine.executors import (
    Executor,
    InProcessExecutor,
    SubprocessExecutor,
    failure_result,
)
from researchgym.engine.hooks import Deadline, EarlyStopping, Hook, LambdaHook, TrainingState, TrainingTimeout
from researchgym.engine.models import build_model, count_parameters, model_settings
from researchgym.engine.train import Result, pipeline_settings, resolve_device, train

__all__ = [
    "DATASETS",
    "Deadline",
    "EarlyStopping",
    "Executor",
    "Hook",
    "InProcessExecutor",
    "LambdaHook",
    "Result",
    "SubprocessExecutor",
    "TaskData",
    "TrainingState",
    "TrainingTimeout",
    "build_model",
    "count_parameters",
    "data_settings",
    "failure_result",
    "load_task_data",
    "model_settings",
    "pipeline_settings",
    "resolve_device",
    "train",
]
