"""Task references: which task a job trains on, and where its files are.

A task is named by a string: a dataset name, optionally followed by parameters
in URL query form, e.g. ``"digits"`` or ``"mqar?n_pairs=16&vocab=64"``. The
name is what the store records. Datasets read from files (MNIST, CIFAR-10) also
need their directory, which is configuration and never part of the name: a
:class:`TaskRef` carries it beside the name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

from researchgym.errors import ResearchGymError, shorten

__all__ = ["TaskError", "TaskRef"]


class TaskError(ResearchGymError, ValueError):
    """A task name or reference that stands for no loadable task."""


@dataclass(frozen=True)
class TaskRef:
    """A task to train on: its name and, for datasets read from files, their directory.

    Executors, ``train``, ``estimate`` and ``load_task_data`` take one; the last
    three accept a plain task name too (see :meth:`of`).

    Attributes:
        name: the task as recorded, e.g. ``"digits"`` or ``"mqar?n_pairs=16"``.
        data_dir: directory of the dataset files, for datasets read from files;
            ``None`` reads the dataset's environment variable (e.g.
            ``RESEARCHGYM_MNIST_DIR``) where the data is loaded.
    """

    name: str
    data_dir: Path | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TaskError(
                f"task={shorten(self.name)} must be a task name such as 'digits' or "
                "'mqar?n_pairs=16'"
            )
        if self.data_dir is not None:
            if not isinstance(self.data_dir, (str, os.PathLike)):
                raise TaskError(
                    f"data_dir={shorten(self.data_dir)} must be a directory path or None"
                )
            object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser())

    @classmethod
    def of(cls, task: TaskRef | str) -> TaskRef:
        """``task`` itself, or a reference to the task a name stands for (no directory)."""
        return task if isinstance(task, TaskRef) else cls(task)

    @property
    def dataset(self) -> str:
        """The dataset name: the part of the name before ``?``."""
        return self.name.partition("?")[0]

    @property
    def params(self) -> dict[str, str]:
        """The parameters the name sets, as written (``{"n_pairs": "16"}``).

        Raises:
            TaskError: the part after ``?`` is not ``key=value&key=value`` or
                repeats a key.
        """
        _, sep, query = self.name.partition("?")
        if not sep:
            return {}
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise TaskError(
                f"task {shorten(self.name)}: parameters must look like dataset?key=value&key=value"
            ) from None
        params: dict[str, str] = {}
        for key, value in pairs:
            if key in params:
                raise TaskError(f"task {shorten(self.name)}: parameter {key!r} is given twice")
            params[key] = value
        return params
