"""Model components: how to build the model a metaprogram describes.

Their settings are declared in ``researchgym.engine.settings``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from researchgym.engine.settings import is_unit_tree
from researchgym.engine.unit_tree import build_unit_tree
from researchgym.errors import shorten
from researchgym.spaces import SettingError

__all__ = ["ACTIVATIONS", "BUILDERS", "build_model", "count_parameters"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
}


def _norm(kind: str, features: int, conv: bool) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(features) if conv else nn.BatchNorm1d(features)
    if kind == "layer":
        return nn.GroupNorm(1, features) if conv else nn.LayerNorm(features)
    return nn.Identity()


def _mlp(m: Mapping[str, Any], input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    width = int(torch.Size(input_shape).numel())
    for _ in range(m["model.depth"]):
        layers.append(nn.Linear(width, m["model.width"]))
        if m["model.norm"] != "none":
            layers.append(_norm(m["model.norm"], m["model.width"], conv=False))
        layers.append(ACTIVATIONS[m["model.activation"]]())
        if m["model.dropout"] > 0:
            layers.append(nn.Dropout(m["model.dropout"]))
        width = m["model.width"]
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)


def _cnn(m: Mapping[str, Any], input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    if len(input_shape) != 3:
        raise SettingError(
            f"a CNN needs image inputs (channels, height, width), got shape {input_shape}"
        )
    channels, height, width = input_shape
    pool = nn.MaxPool2d if m["model.pooling"] == "max" else nn.AvgPool2d
    layers: list[nn.Module] = []
    for i in range(m["model.conv_depth"]):
        out = m["model.channels"] * 2**i
        layers += [
            nn.Conv2d(channels, out, m["model.kernel"], padding=m["model.kernel"] // 2),
            _norm(m["model.norm"], out, conv=True),
            ACTIVATIONS[m["model.activation"]](),
        ]
        if min(height, width) >= 2:
            layers.append(pool(2))
            height, width = height // 2, width // 2
        channels = out
    layers += [
        nn.Flatten(),
        nn.Dropout(m["model.dropout"]),
        nn.Linear(channels * height * width, m["model.width"]),
        ACTIVATIONS[m["model.activation"]](),
        nn.Linear(m["model.width"], n_outputs),
    ]
    return nn.Sequential(*layers)


def _linear(m: Mapping[str, Any], input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(int(torch.Size(input_shape).numel()), n_outputs))


#: Builder of every model family in ``researchgym.engine.settings.MODEL_FAMILIES``:
#: ``build(metaprogram, input_shape, n_outputs)`` returns the module.
BUILDERS: dict[str, Callable[[Mapping[str, Any], tuple[int, ...], int], nn.Module]] = {
    "linear": _linear,
    "mlp": _mlp,
    "cnn": _cnn,
}


def build_model(
    metaprogram: Mapping[str, Any], input_shape: tuple[int, ...], n_outputs: int
) -> nn.Module:
    """Build the model a metaprogram describes (on the CPU; move it afterwards).

    A unit-tree metaprogram (``arch.*`` settings, see ``researchgym.engine.unit_tree``)
    builds a sequence model over token ids of shape ``input_shape = (seq_len,)``
    whose vocabulary is its ``n_outputs`` classes (inputs and targets are tokens
    of one vocabulary).
    """
    if is_unit_tree(metaprogram):
        return build_unit_tree(metaprogram, n_outputs, input_shape[0], n_outputs)
    family = metaprogram.get("model.family", "mlp")
    if family not in BUILDERS:
        raise SettingError(
            f"unknown model family {shorten(family)}; choose from {sorted(BUILDERS)}"
        )
    return BUILDERS[family](metaprogram, input_shape, n_outputs)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
