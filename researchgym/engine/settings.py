"""Settings the engine's components declare: data, model, training pipeline, architecture.

Declarations only, without torch or scikit-learn, so that schemas, suites and
the envs that answer steps without training (Replay-v0, Surrogate-v0) never
import the training stack. The modules that build and train
(``researchgym.engine.data``, ``models``, ``train``, ``unit_tree``) read the
settings' values; this module says which settings exist.

The unit-tree architecture is declared once as :data:`ARCH`, a
:class:`~researchgym.spaces.UnitTree` (see ``researchgym.engine.unit_tree`` for
the models it describes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from researchgym.errors import ConfigError, shorten
from researchgym.spaces import Bool, Categorical, Float, Int, Setting, Slot, Unit, UnitTree

__all__ = [
    "ARCH",
    "FFN_SLOT",
    "MAX_DEPTH",
    "MIXER_SLOT",
    "MODEL_FAMILIES",
    "NORM_SLOT",
    "WIDTHS",
    "data_settings",
    "is_unit_tree",
    "model_settings",
    "pipeline_settings",
]


def data_settings(images: bool) -> list[Setting]:
    """Preprocessing settings of a dataset component."""
    settings: list[Setting] = [
        Categorical(
            "data.scaling",
            "standard",
            choices=("standard", "minmax", "none"),
            help="feature scaling fitted on the training split",
        )
    ]
    if images:
        settings.append(
            Bool("data.augment", False, help="random one-pixel translations of training images")
        )
    return settings


# Settings of the model component; each is active for the families that read it.
_SETTINGS: tuple[Setting, ...] = (
    Int("model.depth", 2, low=1, high=4, help="hidden layers of the MLP"),
    Int("model.width", 128, low=16, high=1024, log=True, help="units per hidden layer"),
    Categorical(
        "model.activation", "relu", choices=("relu", "gelu", "tanh", "silu"), help="nonlinearity"
    ),
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


#: Every model family by name and the model settings it reads. A new family is one
#: entry here and its builder in ``researchgym.engine.models``; a suite offers it by
#: naming it in its ``model_settings(...)``.
MODEL_FAMILIES: dict[str, tuple[str, ...]] = {
    "linear": (),
    "mlp": ("model.depth", "model.width", "model.activation", "model.norm", "model.dropout"),
    "cnn": (
        "model.width",
        "model.activation",
        "model.norm",
        "model.dropout",
        "model.channels",
        "model.kernel",
        "model.pooling",
        "model.conv_depth",
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
            f"families={shorten(tuple(families))}: unknown {shorten(unknown)}; "
            f"choose from {sorted(MODEL_FAMILIES)}"
        )
    families = tuple(families)
    settings: list[Setting] = [
        Categorical("model.family", families[0], choices=families, help="model family")
    ]
    for setting in _SETTINGS:
        users = tuple(
            name
            for name, reads in MODEL_FAMILIES.items()
            if name in families and setting.name in reads
        )
        if users:
            settings.append(replace(setting, when={"model.family": users}))
    return settings


def pipeline_settings(classification: bool = True) -> list[Setting]:
    """Settings of the training pipeline: optimizer, schedule and loop."""
    settings: list[Setting] = [
        Categorical("optim.name", "adam", choices=("adam", "adamw", "sgd"), help="optimizer"),
        Float("optim.lr", 1e-3, low=1e-5, high=1.0, log=True, help="peak learning rate"),
        Float(
            "optim.momentum",
            0.9,
            low=0.0,
            high=0.99,
            when={"optim.name": ("sgd",)},
            help="SGD momentum",
        ),
        Float(
            "optim.weight_decay", 0.0, low=0.0, high=0.1, help="L2 penalty (decoupled for adamw)"
        ),
        Categorical(
            "optim.schedule",
            "constant",
            choices=("constant", "cosine", "warmup_cosine"),
            help="learning-rate schedule",
        ),
        Float(
            "optim.warmup_frac",
            0.1,
            low=0.0,
            high=0.5,
            when={"optim.schedule": ("warmup_cosine",)},
            help="fraction of steps spent warming up",
        ),
        Int("train.batch_size", 64, low=8, high=512, log=True, help="examples per step"),
        Int("train.epochs", 10, low=1, high=100, help="passes over the training split"),
        Float("train.grad_clip", 0.0, low=0.0, high=10.0, help="max gradient norm (0 = off)"),
        Int("train.early_stopping", 0, low=0, high=20, help="patience in epochs (0 = off)"),
    ]
    if classification:
        settings.append(
            Float(
                "train.label_smoothing", 0.0, low=0.0, high=0.3, help="label smoothing of the loss"
            )
        )
    return settings


# --- the unit-tree architecture -----------------------------------------------------------
MAX_DEPTH = 6
WIDTHS = (16, 32, 48, 64, 96, 128, 192, 256)  # multiples of 16: every head count splits them evenly

_HEADS = Categorical("heads", 2, choices=(1, 2, 4, 8), help="attention heads")
_MULT = Categorical(
    "mult", 2, choices=(1, 2, 4), help="hidden width as a multiple of the model width"
)
_PLACEMENT = Categorical(
    "placement",
    "pre",
    choices=("pre", "post"),
    help="normalize each sublayer's input (pre) or the residual sum (post)",
)

MIXER_SLOT = Slot(
    "mixer",
    units=(
        Unit(
            "attention",
            (_HEADS, Bool("rope", True, help="rotary position embedding on queries and keys")),
            "causal softmax attention",
        ),
        Unit("linear_attention", (_HEADS,), "causal kernel attention (elu+1 features, no softmax)"),
        Unit(
            "conv",
            (Int("kernel", 3, low=2, high=8, help="taps of the causal depthwise convolution"),),
            "short causal depthwise convolution and a projection",
        ),
        Unit(
            "recurrent",
            (Bool("gate", True, help="multiply the state by a SiLU output gate"),),
            "gated linear recurrence (state-space style), computed by a parallel scan",
        ),
        Unit(
            "token_mlp",
            (),
            "MLP-Mixer-style learned causal map over positions (mixes by position, not content)",
        ),
        Unit("none", (), "no token mixing in this layer"),
    ),
    default="attention",
    help="how a layer mixes information across positions",
)

FFN_SLOT = Slot(
    "ffn",
    units=(
        Unit(
            "mlp",
            (
                _MULT,
                Categorical(
                    "activation", "gelu", choices=("gelu", "relu", "silu"), help="nonlinearity"
                ),
            ),
            "two linear layers with an activation",
        ),
        Unit("swiglu", (_MULT,), "gated linear unit with SiLU gate"),
        Unit("geglu", (_MULT,), "gated linear unit with GELU gate"),
        Unit("reglu", (_MULT,), "gated linear unit with ReLU gate"),
        Unit("none", (), "no feed-forward sublayer in this layer"),
    ),
    default="swiglu",
    help="per-position feed-forward sublayer",
)

NORM_SLOT = Slot(
    "norm",
    units=(
        Unit("rmsnorm", (_PLACEMENT,), "RMSNorm (scale only)"),
        Unit("layernorm", (_PLACEMENT,), "LayerNorm (scale and shift)"),
        Unit("none", (), "no normalization"),
    ),
    default="rmsnorm",
    help="normalization around every sublayer",
)

ARCH = UnitTree(
    "arch",
    top=(
        Categorical("width", 32, choices=WIDTHS, help="model width (channels per position)"),
        Categorical(
            "position",
            "none",
            choices=("none", "learned"),
            help="absolute position embedding added to the tokens",
        ),
        NORM_SLOT,
        Categorical(
            "residual",
            "none",
            choices=("none", "scaled", "layer_scale"),
            help="residual branch scale: 1, 1/sqrt(2*depth), or learned per channel (from 0.1)",
        ),
    ),
    layer=(MIXER_SLOT, FFN_SLOT),
    max_depth=MAX_DEPTH,
    default_depth=2,
    help="a causal sequence model: token embedding, a stack of (mixer, ffn) layers, a linear head",
)


def is_unit_tree(metaprogram: Mapping[str, Any]) -> bool:
    """Whether a metaprogram describes a unit-tree model."""
    return f"{ARCH.prefix}.depth" in metaprogram
