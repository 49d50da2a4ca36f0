"""Unit-tree sequence models: a small causal sequence model as a tree of units.

The architecture is declared once as ``researchgym.engine.settings.ARCH``, a
:class:`~researchgym.spaces.UnitTree`: global items (width, position embedding,
normalization and its placement, residual scaling), then 1 to
``MAX_DEPTH`` layers, each choosing its own

* token **mixer**: softmax ``attention`` (with or without RoPE),
  ``linear_attention`` (elu+1 kernel, no softmax), a short causal ``conv``, a
  gated linear ``recurrent`` mixer (state-space style, parallel scan),
  ``token_mlp`` (an MLP-Mixer-style learned causal map over positions: it mixes
  tokens by position only, never by content) or ``none``;
* **ffn**: ``mlp`` (with an activation), the gated ``swiglu`` / ``geglu`` /
  ``reglu`` variants, or ``none``.

Agents edit it flat (``arch.layer1.mixer=conv``) or as a JSON tree (see
``researchgym.spaces.units``). :func:`estimate_unit_tree` gives the exact
parameter count and a FLOP estimate without building anything, unit by unit,
so a budget can reject a design before it trains; the per-unit ``cost``
functions sit next to the modules they describe and tests check them against
built models.

FLOPs count matrix products only (2 per multiply-add, a forward pass over one
sequence): linear layers, convolutions, attention scores and mixing. Norms,
activations and the recurrent scan are elementwise and not counted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from researchgym.engine.settings import ARCH
from researchgym.errors import ConfigError

__all__ = [
    "FFNS",
    "MIXERS",
    "UnitCost",
    "UnitTreeEstimate",
    "UnitTreeModel",
    "build_unit_tree",
    "estimate_unit_tree",
]


@dataclass(frozen=True)
class UnitCost:
    """Parameters and forward FLOPs (matrix products, per sequence) of one unit."""

    params: int
    flops: int

    def __add__(self, other: UnitCost) -> UnitCost:
        return UnitCost(self.params + other.params, self.flops + other.flops)


# --- mixers -----------------------------------------------------------------------------
def _rope_tables(seq_len: int, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    freqs = 1.0 / (10000.0 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), freqs)
    return angles.cos(), angles.sin()


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class UnitModule(nn.Module):
    """A unit of the tree: a module whose size and cost are known before it is built."""

    @staticmethod
    def cost(*args: Any, **kwargs: Any) -> UnitCost:
        """Parameters and training FLOPs per example, from the unit's settings."""
        raise NotImplementedError


class Attention(UnitModule):
    """Causal multi-head softmax attention, optionally with rotary position embedding."""

    cos: torch.Tensor  # rotary tables (buffers, present with rope)
    sin: torch.Tensor

    def __init__(self, width: int, seq_len: int, heads: int, rope: bool):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.out = nn.Linear(width, width, bias=False)
        self.rope = rope
        if rope:
            cos, sin = _rope_tables(seq_len, width // heads)
            self.register_buffer("cos", cos, persistent=False)
            self.register_buffer("sin", sin, persistent=False)

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t, c = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        if self.rope:
            q, k = _rotate(q, self.cos[:t], self.sin[:t]), _rotate(k, self.cos[:t], self.sin[:t])
        return q, k, v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self._heads(x)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(y.transpose(1, 2).reshape(b, t, c))

    @staticmethod
    def cost(width: int, seq_len: int, heads: int, rope: bool = False) -> UnitCost:
        return UnitCost(
            4 * width * width, 8 * seq_len * width * width + 4 * seq_len * seq_len * width
        )


class LinearAttention(Attention):
    """Causal kernel attention: normalized ``phi(q) phi(k)^T``, ``phi = elu + 1``, no softmax."""

    mask: torch.Tensor  # causal mask (buffer)

    def __init__(self, width: int, seq_len: int, heads: int):
        super().__init__(width, seq_len, heads, rope=False)
        self.register_buffer("mask", torch.ones(seq_len, seq_len).tril(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self._heads(x)
        q, k = F.elu(q) + 1.0, F.elu(k) + 1.0
        scores = (q @ k.transpose(-1, -2)) * self.mask[:t, :t]
        y = (scores @ v) / (scores.sum(dim=-1, keepdim=True) + 1e-6)
        return self.out(y.transpose(1, 2).reshape(b, t, c))


class ShortConv(UnitModule):
    """Causal depthwise convolution over ``kernel`` positions, SiLU, then a projection."""

    def __init__(self, width: int, seq_len: int, kernel: int):
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Conv1d(width, width, kernel, groups=width)
        self.out = nn.Linear(width, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.pad(x.transpose(1, 2), (self.kernel - 1, 0))
        return self.out(F.silu(self.conv(y)).transpose(1, 2))

    @staticmethod
    def cost(width: int, seq_len: int, kernel: int) -> UnitCost:
        return UnitCost(
            width * kernel + width + width * width, 2 * seq_len * width * (kernel + width)
        )


def linear_recurrence(decay: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """``h[t] = decay[t] * h[t-1] + inputs[t]`` along dim 1, with ``h[-1] = 0``.

    A Hillis-Steele scan: ``log2(T)`` vectorized steps instead of a loop over
    positions, and only products of decays (never their inverses), so it is
    stable for decays in ``[0, 1]``.
    """
    a, h = decay, inputs
    t, shift = a.shape[1], 1
    while shift < t:
        h = h + a * F.pad(h, (0, 0, shift, 0))[:, :t]
        a = a * F.pad(a, (0, 0, shift, 0), value=1.0)[:, :t]
        shift *= 2
    return h


class Recurrent(UnitModule):
    """Gated linear recurrence ``h[t] = a[t] h[t-1] + (1 - a[t]) v[t]``, decays from the input."""

    def __init__(self, width: int, seq_len: int, gate: bool):
        super().__init__()
        self.gate = gate
        self.proj = nn.Linear(width, (3 if gate else 2) * width)
        self.out = nn.Linear(width, width, bias=False)
        with torch.no_grad():  # start with slow decays (sigmoid(2) ~ 0.88): long memory
            self.proj.bias[width : 2 * width].fill_(2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = self.proj(x).chunk(3 if self.gate else 2, dim=-1)
        value, decay = parts[0], torch.sigmoid(parts[1])
        h = linear_recurrence(decay, (1.0 - decay) * value)
        if self.gate:
            h = h * F.silu(parts[2])
        return self.out(h)

    @staticmethod
    def cost(width: int, seq_len: int, gate: bool) -> UnitCost:
        k = 3 if gate else 2
        params = k * width * width + k * width + width * width
        return UnitCost(params, 2 * seq_len * (k + 1) * width * width)


class TokenMLP(UnitModule):
    """A learned causal linear map over positions, shared by all channels (MLP-Mixer style)."""

    mask: torch.Tensor  # causal mask (buffer)

    def __init__(self, width: int, seq_len: int):
        super().__init__()
        bound = 1.0 / math.sqrt(seq_len)
        self.weight = nn.Parameter(torch.empty(seq_len, seq_len).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(seq_len, 1))
        self.register_buffer("mask", torch.ones(seq_len, seq_len).tril(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        return (self.weight[:t, :t] * self.mask[:t, :t]) @ x + self.bias[:t]

    @staticmethod
    def cost(width: int, seq_len: int) -> UnitCost:
        return UnitCost(seq_len * seq_len + seq_len, 2 * seq_len * seq_len * width)


MIXERS: dict[str, type[UnitModule] | None] = {
    "attention": Attention,
    "linear_attention": LinearAttention,
    "conv": ShortConv,
    "recurrent": Recurrent,
    "token_mlp": TokenMLP,
    "none": None,
}


# --- feed-forward -----------------------------------------------------------------------
_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,
    "relu": F.relu,
    "silu": F.silu,
}


class MLP(UnitModule):
    """``Linear -> activation -> Linear`` with hidden width ``mult * width``."""

    def __init__(self, width: int, seq_len: int, mult: int, activation: str):
        super().__init__()
        self.up = nn.Linear(width, mult * width)
        self.down = nn.Linear(mult * width, width)
        self.activation = _ACTIVATIONS[activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.activation(self.up(x)))

    @staticmethod
    def cost(width: int, seq_len: int, mult: int, activation: str) -> UnitCost:
        hidden = mult * width
        return UnitCost(2 * width * hidden + hidden + width, 4 * seq_len * width * hidden)


class GLU(UnitModule):
    """Gated linear unit ``down(gate(g) * a)`` with ``a, g = up(x)`` (no biases)."""

    gate: ClassVar[str] = "silu"

    def __init__(self, width: int, seq_len: int, mult: int):
        super().__init__()
        self.up = nn.Linear(width, 2 * mult * width, bias=False)
        self.down = nn.Linear(mult * width, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, g = self.up(x).chunk(2, dim=-1)
        return self.down(_ACTIVATIONS[self.gate](g) * a)

    @staticmethod
    def cost(width: int, seq_len: int, mult: int) -> UnitCost:
        hidden = mult * width
        return UnitCost(3 * width * hidden, 6 * seq_len * width * hidden)


class SwiGLU(GLU):
    gate = "silu"


class GeGLU(GLU):
    gate = "gelu"


class ReGLU(GLU):
    gate = "relu"


FFNS: dict[str, type[UnitModule] | None] = {
    "mlp": MLP,
    "swiglu": SwiGLU,
    "geglu": GeGLU,
    "reglu": ReGLU,
    "none": None,
}


# --- normalization and residuals -------------------------------------------------------------
class RMSNorm(nn.Module):
    """Root-mean-square normalization with a learned per-channel scale."""

    def __init__(self, width: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight


def _make_norm(kind: str, width: int) -> nn.Module:
    if kind == "rmsnorm":
        return RMSNorm(width)
    if kind == "layernorm":
        return nn.LayerNorm(width)
    return nn.Identity()


def _norm_params(kind: str, width: int) -> int:
    return {"rmsnorm": width, "layernorm": 2 * width}.get(kind, 0)


class Sublayer(nn.Module):
    """A residual sublayer around one unit: pre- or post-normalized, with a residual scale."""

    def __init__(
        self, unit: nn.Module, width: int, norm: str, placement: str, residual: str, depth: int
    ):
        super().__init__()
        self.unit = unit
        self.norm = _make_norm(norm, width)
        self.post = placement == "post"
        self.scale = 1.0 / math.sqrt(2 * depth) if residual == "scaled" else 1.0
        self.layer_scale = (
            nn.Parameter(torch.full((width,), 0.1)) if residual == "layer_scale" else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.unit(x if self.post else self.norm(x)) * self.scale
        if self.layer_scale is not None:
            branch = branch * self.layer_scale
        return self.norm(x + branch) if self.post else x + branch


# --- the model ------------------------------------------------------------------------------
def _read(metaprogram: Mapping[str, Any]) -> dict[str, Any]:
    """The full (non-compact) tree of a validated metaprogram."""
    return ARCH.collapse(metaprogram, compact=False)


def _settings(unit: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in unit.items() if k != "type"}


@dataclass(frozen=True)
class UnitTreeEstimate:
    """Size and cost of a unit-tree model, known before it is built.

    Attributes:
        params: trainable parameters (exactly those of the built model).
        flops: forward FLOPs of one sequence (matrix products only).
        units: ``path -> (unit name, params, flops)`` for every part, e.g.
            ``"arch.layers[1].ffn" -> ("swiglu", 24576, 1572864)``; a sublayer's
            entry includes its norm and residual scale.
    """

    params: int
    flops: int
    units: dict[str, tuple[str, int, int]]


def _plan(tree: Mapping[str, Any], vocab_size: int, seq_len: int, n_outputs: int):
    """Every part of the model: (path, unit name, class or None, settings, cost)."""
    width, norm = tree["width"], tree["norm"]
    norm_kind = norm["type"]
    placement = norm.get("placement", "pre")
    extra = _norm_params(norm_kind, width) + (width if tree["residual"] == "layer_scale" else 0)
    parts = [("arch.embedding", "embedding", UnitCost(vocab_size * width, 0))]
    if tree["position"] == "learned":
        parts.append(("arch.position", "learned", UnitCost(seq_len * width, 0)))
    for i, layer in enumerate(tree["layers"]):
        for slot, registry in (("mixer", MIXERS), ("ffn", FFNS)):
            unit = layer[slot]
            cls = registry[unit["type"]]
            if cls is None:
                continue
            cost = cls.cost(width, seq_len, **_settings(unit)) + UnitCost(extra, 0)
            parts.append((f"arch.layers[{i}].{slot}", unit["type"], cost))
    if placement == "pre":
        parts.append(("arch.norm", norm_kind, UnitCost(_norm_params(norm_kind, width), 0)))
    parts.append(
        (
            "arch.head",
            "linear",
            UnitCost(width * n_outputs + n_outputs, 2 * seq_len * width * n_outputs),
        )
    )
    return parts


def estimate_unit_tree(
    metaprogram: Mapping[str, Any], vocab_size: int, seq_len: int, n_outputs: int
) -> UnitTreeEstimate:
    """Parameters and FLOPs of the model a validated metaprogram describes, without building it."""
    parts = _plan(_read(metaprogram), vocab_size, seq_len, n_outputs)
    units = {path: (name, cost.params, cost.flops) for path, name, cost in parts}
    return UnitTreeEstimate(
        params=sum(c.params for _, _, c in parts),
        flops=sum(c.flops for _, _, c in parts),
        units=units,
    )


class UnitTreeModel(nn.Module):
    """Token ids ``(batch, seq)`` -> logits ``(batch, seq, n_outputs)``; causal throughout."""

    def __init__(self, tree: Mapping[str, Any], vocab_size: int, seq_len: int, n_outputs: int):
        super().__init__()
        width = tree["width"]
        norm_kind = tree["norm"]["type"]
        placement = tree["norm"].get("placement", "pre")
        self.seq_len = seq_len
        self.embed = nn.Embedding(vocab_size, width)
        self.position = nn.Embedding(seq_len, width) if tree["position"] == "learned" else None
        self.sublayers = nn.ModuleList()
        depth = len(tree["layers"])
        for layer in tree["layers"]:
            for slot, registry in (("mixer", MIXERS), ("ffn", FFNS)):
                cls = registry[layer[slot]["type"]]
                if cls is None:
                    continue
                unit = cls(width, seq_len, **_settings(layer[slot]))
                self.sublayers.append(
                    Sublayer(unit, width, norm_kind, placement, tree["residual"], depth)
                )
        self.final_norm = _make_norm(norm_kind, width) if placement == "pre" else nn.Identity()
        self.head = nn.Linear(width, n_outputs)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        t = tokens.shape[1]
        if t > self.seq_len:
            raise ConfigError(
                f"sequence of length {t} is longer than the model's seq_len={self.seq_len}"
            )
        x = self.embed(tokens)
        if self.position is not None:
            x = x + self.position.weight[:t]
        for sublayer in self.sublayers:
            x = sublayer(x)
        return self.head(self.final_norm(x))


def build_unit_tree(
    metaprogram: Mapping[str, Any], vocab_size: int, seq_len: int, n_outputs: int
) -> UnitTreeModel:
    """Build the model a (validated) metaprogram describes, on the CPU."""
    return UnitTreeModel(_read(metaprogram), vocab_size, seq_len, n_outputs)
