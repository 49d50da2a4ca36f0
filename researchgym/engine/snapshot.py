"""What a checkpoint file holds: a :class:`Snapshot` of a training run between epochs.

``train`` writes one after a job with ``save_to`` and reads one to continue or fork a
run (see :class:`~researchgym.engine.jobs.Start`). Files are written atomically and read
with ``torch.load(weights_only=True)``: plain tensors and containers, no pickled code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from researchgym.engine.checkpoints import atomic_write
from researchgym.errors import ConfigError, shorten

__all__ = ["Snapshot"]

FORMAT = 1  # bump when the fields change; older files are then refused
ARCH_PREFIXES = ("model.", "arch.")  # settings that shape the model's parameters


@dataclass
class Snapshot:
    """A training run between epochs: enough to go on exactly as if it had never stopped.

    Attributes:
        metaprogram: the run's settings (``train.epochs`` its requested fidelity).
        task: the task's name.
        device: the device type it trained on (random states differ between types).
        epochs: epochs the weights have seen, counting those of the runs it started from.
        step: optimizer steps taken (the position in the learning-rate schedule).
        samples: training examples the weights have seen, counting ancestors.
        schedule_epochs: the horizon of the learning-rate schedule.
        curve: per-epoch entries, as in ``Result.curve``.
        model: the model's state dict.
        optimizer: the optimizer's state dict.
        generator: state of the generator of the data order and augmentation.
        rng: state of torch's global generator (initialization, dropout) on the CPU.
        cuda_rng: that of the CUDA device, when it trained on one.
    """

    metaprogram: dict[str, Any]
    task: str
    device: str
    epochs: int
    step: int
    samples: int
    schedule_epochs: int
    curve: list[dict[str, float]]
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    generator: torch.Tensor
    rng: torch.Tensor
    cuda_rng: torch.Tensor | None = None

    @classmethod
    def capture(
        cls,
        *,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
        device: torch.device,
        **progress: Any,
    ) -> Snapshot:
        """The state of a run now; ``progress`` gives the other fields."""
        return cls(
            model=model.state_dict(),
            optimizer=optimizer.state_dict(),
            generator=generator.get_state(),
            rng=torch.get_rng_state(),
            cuda_rng=torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            device=device.type,
            **progress,
        )

    def restore(
        self, optimizer: torch.optim.Optimizer, generator: torch.Generator, device: torch.device
    ) -> None:
        """Put back the optimizer and random states (the model's weights are loaded apart,
        since a fork takes only them)."""
        optimizer.load_state_dict(self.optimizer)
        generator.set_state(self.generator)
        torch.set_rng_state(self.rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state(self.cuda_rng, device)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the snapshot to ``path`` atomically: a reader finds the old file or this one."""
        state = {"format": FORMAT, **{f.name: getattr(self, f.name) for f in fields(self)}}
        atomic_write(path, lambda file: torch.save(state, file))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Snapshot:
        """Read a snapshot written by :meth:`save` (tensors onto the CPU)."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except OSError:
            raise
        except Exception as exc:  # what a damaged file raises varies
            raise ConfigError(
                f"{shorten(os.fspath(path))} is not a readable checkpoint: {shorten(str(exc), 200)}"
            ) from exc
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ConfigError(
                f"{shorten(os.fspath(path))} is not a checkpoint of this version "
                f"(format {FORMAT}); train the run again"
            )
        del state["format"]
        return cls(**state)

    def refusal(
        self, mode: str, metaprogram: Mapping[str, Any], task: str, device: torch.device
    ) -> str | None:
        """Why a job may not start from this snapshot in ``mode``, or ``None`` when it may."""
        if task != self.task:
            return f"the checkpoint was trained on task {self.task!r}, not {task!r}"
        if mode == "continue" and device.type != self.device:
            return (
                f"the checkpoint was trained on {self.device}, so it continues there only "
                f"(not on {device.type}): random states differ between devices"
            )
        epochs = metaprogram["train.epochs"]
        if epochs <= self.epochs:
            return (
                f"train.epochs={epochs} must be above the {self.epochs} epochs the "
                f"checkpoint has trained, to {mode} it"
            )
        if mode == "continue":
            names = _differing(metaprogram, self.metaprogram, lambda n: n != "train.epochs")
            if names:
                return (
                    f"a continued run keeps its settings, but {_listed(names, metaprogram, self)}; "
                    "only train.epochs may change (fork the run to change others)"
                )
            return None
        names = _differing(metaprogram, self.metaprogram, lambda n: n.startswith(ARCH_PREFIXES))
        if names:
            return (
                f"a fork keeps its parent's architecture, but {_listed(names, metaprogram, self)}; "
                "train a new run to change it"
            )
        return None


def _differing(a: Mapping[str, Any], b: Mapping[str, Any], compared) -> list[str]:
    return sorted(n for n in set(a) | set(b) if compared(n) and a.get(n) != b.get(n))


def _listed(names: list[str], requested: Mapping[str, Any], saved: Snapshot) -> str:
    """``"optim.lr=0.1 (saved: 0.01), ..."`` for the first few differing settings."""
    shown = ", ".join(
        f"{n}={shorten(requested.get(n), 30)} (saved: {shorten(saved.metaprogram.get(n), 30)})"
        for n in names[:4]
    )
    return shown + (f" and {len(names) - 4} more" if len(names) > 4 else "")
