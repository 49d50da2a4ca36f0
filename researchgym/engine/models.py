"""Model components: their settings and how to build them from a metaprogram."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from researchgym.engine.unit_tree import build_unit_tree, is_unit_tree
from researchgym.errors import ConfigError, shorten
from researchgym.spaces import Categorical, Float, Int, Setting, SettingError

__all__ = [
    "ACTIVATIONS",
    "MODEL_FAMILIES",
    "ModelFamily",
    "build_model",
    "count_parameters",
    "model_settings",
]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
}

# Settings of the model component; each is active for the families that read it.
_SETTINGS: tuple[Setting, ...] = (
    Int("model.depth", 2, low=1, high=4, help="hidden layers of the MLP"),
    Int("model.width", 128, low=16, high=1024, log=True, help="units per hidden layer"),
    Categorical("model.activation", "relu", choices=tuple(ACTIVATIONS), help="nonlinearity"),
    Categorical(
        "model.norm",
        "none",
        choices=("none", "batch", "layer"),
        help="normalization after each layer",
    ),
    Float("model.dropout", 0.0, low=0.0, high=0.5, help="dropout probability"),
    Int(
        "model.channels",
        16,
        low=4,
        high=64,
        log=True,
        help="channels of the first conv layer (doubling per layer)",
    ),
    Categorical("model.kernel", 3, choices=(3, 5), help="convolution kernel size"),
    Categorical(
        "model.pooling", "max", choices=("max", "avg"), help="2x2 pooling after each conv layer"
    ),
    Int("model.conv_depth", 2, low=1, high=3, help="convolutional layers"),
)


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


@dataclass(frozen=True)
class ModelFamily:
    """A kind of model: the settings it reads and how to build it.

    ``build(metaprogram, input_shape, n_outputs)`` returns the module.
    """

    settings: tuple[str, ...]
    build: Callable[[Mapping[str, Any], tuple[int, ...], int], nn.Module]


def _linear(m: Mapping[str, Any], input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(int(torch.Size(input_shape).numel()), n_outputs))


#: Every model family by name. A new family is one entry here (and a builder above);
#: a suite offers it by naming it in its ``model_settings(...)``.
MODEL_FAMILIES: dict[str, ModelFamily] = {
    "linear": ModelFamily((), _linear),
    "mlp": ModelFamily(
        ("model.depth", "model.width", "model.activation", "model.norm", "model.dropout"), _mlp
    ),
    "cnn": ModelFamily(
        (
            "model.width",
            "model.activation",
            "model.norm",
            "model.dropout",
            "model.channels",
            "model.kernel",
            "model.pooling",
            "model.conv_depth",
        ),
        _cnn,
    ),
}


def model_settings(families: Sequence[str]) -> list[Setting]:
    """Settings of a model component offering the given families.

    Args:
        families: model families an agent may choose from, names of
            :data:`MODEL_FAMILIES` (the first is the default).
    """
    unknown = [f for f in families if f not in MODEL_FAMILIES]
    if not families or unknown:
        raise ConfigError(
            f"families={shorten(tuple(families))}: unknown {shorten(unknown)}; choose from {sorted(MODEL_FAMILIES)}"
        )
    families = tuple(families)
    settings: list[Setting] = [
        Categorical("model.family", families[0], choices=families, help="model family")
    ]
    for setting in _SETTINGS:
        users = tuple(
            name
            for name, family in MODEL_FAMILIES.items()
            if name in families and setting.name in family.settings
        )
        if users:
            settings.append(replace(setting, when={"model.family": users}))
    return settings


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
    if family not in MODEL_FAMILIES:
        raise SettingError(
            f"unknown model family {shorten(family)}; choose from {sorted(MODEL_FAMILIES)}"
        )
    return MODEL_FAMILIES[family].build(metaprogram, input_shape, n_outputs)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
