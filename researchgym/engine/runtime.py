"""``Runtime``: how training runs on its device, apart from what it trains.

Precision, compilation and determinism are not research settings: no metaprogram
names them and the store does not record them (as it records no device). They
pass through ``train(..., runtime=)``, ``train_population``, the executors and
``gymnasium.make(..., runtime=)``. Importing this module does not import torch.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from researchgym.errors import ConfigError, shorten

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["PRECISIONS", "Runtime"]

#: Training precisions: float32 throughout, or bfloat16 autocast of the forward pass.
PRECISIONS = ("fp32", "bf16")

_CUBLAS_WORKSPACE = "CUBLAS_WORKSPACE_CONFIG"
_CUBLAS_DETERMINISTIC = ":4096:8"  # what torch's reproducibility notes ask for


@dataclass(frozen=True)
class Runtime:
    """How ``train`` runs: precision, compilation and determinism.

    Attributes:
        precision: ``"fp32"`` (the default), or ``"bf16"``: each training step's forward
            pass runs under ``torch.autocast(dtype=torch.bfloat16)``, while the loss,
            weights, gradients, optimizer states and every evaluation (the metrics) stay
            float32. Allowed where autocast has bfloat16: CUDA GPUs that compute in it
            (Ampere and later) and CPUs (emulated on CPUs without bfloat16 instructions,
            where it can be slower than fp32); other devices are refused.
        compile: ``torch.compile`` the model's training forward pass (evaluation runs
            eagerly). The first steps pay the compilation, tens of seconds on a CPU.
            Needs a C++ compiler on the CPU and Triton on CUDA. A population trains its
            members one by one, each compiled.
        deterministic: torch's deterministic algorithms (``torch.use_deterministic_algorithms``,
            cuDNN deterministic and without benchmarking, ``CUBLAS_WORKSPACE_CONFIG`` set
            on CUDA unless already set), so that a CUDA run repeats bitwise. An operation
            without a deterministic implementation then raises. Process-wide while a run
            trains (so not for threads training at once), restored after it; set
            ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` before the process first uses cuBLAS to
            be sure it applies. CPU runs repeat bitwise either way.
    """

    precision: str = "fp32"
    compile: bool = False
    deterministic: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"precision={shorten(self.precision)} is not one of {PRECISIONS}; "
                "use 'fp32' (the default) or 'bf16'"
            )
        for name in ("compile", "deterministic"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ConfigError(f"{name}={shorten(value)} must be True or False")

    @classmethod
    def of(cls, runtime: Runtime | Mapping[str, Any] | None) -> Runtime:
        """A runtime from itself, a mapping of its fields, or ``None`` (the default)."""
        if runtime is None:
            return cls()
        if isinstance(runtime, Runtime):
            return runtime
        if not isinstance(runtime, Mapping):
            raise ConfigError(
                f"runtime={shorten(runtime)} must be a Runtime, a mapping of "
                f"{[f.name for f in fields(cls)]}, or None"
            )
        names = {f.name for f in fields(cls)}
        unknown = [key for key in runtime if key not in names]
        if unknown:
            raise ConfigError(
                f"runtime has no option {shorten(unknown[0])}; the options are {sorted(names)}"
            )
        return cls(**runtime)

    def check(self, device: torch.device) -> None:
        """Raise :class:`ConfigError` when this runtime cannot train on ``device``."""
        import torch

        if self.precision == "bf16":
            if device.type == "cuda":
                supported = torch.cuda.is_bf16_supported(including_emulation=False)
            else:
                supported = device.type == "cpu"
            if not supported:
                raise ConfigError(
                    f"precision='bf16' is not supported on device {shorten(str(device))}: "
                    "it needs a CPU or a CUDA GPU that computes in bfloat16 (Ampere or later); "
                    "use precision='fp32'"
                )
        if self.compile:
            if not torch._dynamo.is_dynamo_supported():
                raise ConfigError(
                    "compile=True: torch.compile does not support this Python or platform; "
                    "use compile=False"
                )
            if device.type == "cpu" and not shutil.which(os.environ.get("CXX", "g++")):
                raise ConfigError(
                    "compile=True on the CPU needs a C++ compiler (g++, or $CXX), "
                    "and none was found; install one or use compile=False"
                )
            if device.type == "cuda" and importlib.util.find_spec("triton") is None:
                raise ConfigError(
                    "compile=True on CUDA needs Triton, which is not installed; "
                    "install triton or use compile=False"
                )

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        """The context a training step's forward pass runs in."""
        import torch

        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=torch.bfloat16)

    def compiled(self, model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        """The model's training forward pass: compiled, or the model itself."""
        import torch

        return torch.compile(model) if self.compile else model

    @contextlib.contextmanager
    def applied(self, device: torch.device) -> Iterator[None]:
        """Set the global state the run needs (deterministic mode) and restore it after."""
        if not self.deterministic:
            yield
            return
        import torch

        cudnn = torch.backends.cudnn
        saved = (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
            cudnn.benchmark,
            cudnn.deterministic,
            os.environ.get(_CUBLAS_WORKSPACE),
        )
        if device.type == "cuda":
            os.environ.setdefault(_CUBLAS_WORKSPACE, _CUBLAS_DETERMINISTIC)
        torch.use_deterministic_algorithms(True)
        cudnn.benchmark, cudnn.deterministic = False, True
        try:
            yield
        finally:
            enabled, warn_only, cudnn.benchmark, cudnn.deterministic, workspace = saved
            torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
            if workspace is None:
                os.environ.pop(_CUBLAS_WORKSPACE, None)
            else:
                os.environ[_CUBLAS_WORKSPACE] = workspace
