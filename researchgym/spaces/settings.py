"""Setting types: one small immutable object per kind of value.

Each setting validates its own declaration and values, maps a value to and
from the unit interval ``[-1, 1]`` for flat encodings, and builds its own
gymnasium space. Conditions (a setting active only when another has given
values) live on the setting and are resolved by :class:`~researchgym.spaces.Schema`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium import spaces

from researchgym.errors import ResearchGymError, shorten

__all__ = [
    "Bool",
    "Categorical",
    "Float",
    "Int",
    "Setting",
    "SettingError",
]


class SettingError(ResearchGymError, ValueError):
    """A value or declaration that a setting does not accept."""


@dataclass(frozen=True)
class Setting:
    """Base class: a named value with a default and optional activation condition.

    Attributes:
        name: dotted name, e.g. ``"optim.lr"``.
        default: value used when the setting is omitted.
        help: one line shown in docs, the CLI and language-model prompts.
        when: ``{other_setting: allowed_values}``; the setting is only active when
            every named setting takes one of the allowed values.
    """

    name: str
    default: Any
    help: str = ""
    when: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    kind = "setting"

    def __post_init__(self) -> None:
        if not self.name or any(not part.isidentifier() for part in self.name.split(".")):
            raise SettingError(
                f"setting name {self.name!r} must be dotted identifiers like 'optim.lr'"
            )
        object.__setattr__(self, "when", {k: tuple(v) for k, v in self.when.items()})
        self.validate(self.default)

    # --- values -----------------------------------------------------------------
    def validate(self, value: Any) -> Any:
        """Return ``value`` in canonical Python form, or raise :class:`SettingError`."""
        raise NotImplementedError

    def describe(self) -> str:
        """The allowed values, in words."""
        raise NotImplementedError

    def _reject(self, value: Any, why: str) -> SettingError:
        if isinstance(value, np.generic):  # show np.int64(7) as 7
            value = value.item()
        return SettingError(
            f"{self.name}={shorten(value)} {why}; pass {self.describe()} or omit it for the "
            f"default {self.default!r}"
        )

    # --- flat encoding -------------------------------------------------------------
    def encode(self, value: Any) -> float:
        """Map a valid value to a number in ``[-1, 1]``."""
        raise NotImplementedError

    def decode(self, x: float) -> Any:
        """Map any number to a valid value (clipped to ``[-1, 1]`` first)."""
        raise NotImplementedError

    # --- gymnasium ---------------------------------------------------------------
    def space(self) -> spaces.Space:
        """The gymnasium space of this setting's values in the ``dict`` interface."""
        raise NotImplementedError

    def from_space(self, sample: Any) -> Any:
        """Convert an element of :meth:`space` to the canonical value."""
        return self.validate(sample)

    def to_space(self, value: Any) -> Any:
        """Convert a canonical value to an element of :meth:`space`."""
        return value

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready description (used in prompts, docs and stored schemas)."""
        out: dict[str, Any] = {"name": self.name, "type": self.kind, "default": self.default}
        out.update(self._json_fields())
        if self.when:
            out["when"] = {k: list(v) for k, v in self.when.items()}
        if self.help:
            out["help"] = self.help
        return out

    def _json_fields(self) -> dict[str, Any]:
        return {}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _scalar(value: Any) -> Any:
    """Plain Python values of numpy scalars and single-element arrays (spaces' samples,
    values read from numpy, pandas or Arrow)."""
    if isinstance(value, np.ndarray) and value.size == 1:
        return value.reshape(()).item()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _clip_unit(x: float) -> float:
    x = float(x)
    if math.isnan(x):
        return 0.0
    return min(1.0, max(-1.0, x))


@dataclass(frozen=True)
class Float(Setting):
    """A real number in ``[low, high]``, optionally searched on a log scale."""

    low: float = 0.0
    high: float = 1.0
    log: bool = False

    kind = "float"

    def __post_init__(self) -> None:
        if not (_is_number(self.low) and _is_number(self.high)) or not self.low < self.high:
            raise SettingError(f"{self.name}: low={self.low!r} must be < high={self.high!r}")
        if self.log and self.low <= 0:
            raise SettingError(f"{self.name}: log scale needs low > 0, got low={self.low!r}")
        super().__post_init__()

    def describe(self) -> str:
        return f"a number in [{self.low:g}, {self.high:g}]" + (" (log scale)" if self.log else "")

    def validate(self, value: Any) -> float:
        value = _scalar(value)
        if not _is_number(value):
            raise self._reject(value, "is not a number")
        outside = f"is outside [{self.low:g}, {self.high:g}]"
        try:
            number = float(value)
        except OverflowError:  # an int beyond the float range
            raise self._reject(value, outside) from None
        if not math.isfinite(number):
            raise self._reject(number, "is not a finite number")
        if not self.low <= number <= self.high:
            raise self._reject(number, outside)
        return number

    def _transform(self, value: float) -> float:
        return math.log(value) if self.log else value

    def encode(self, value: Any) -> float:
        lo, hi = self._transform(self.low), self._transform(self.high)
        return 2.0 * (self._transform(float(value)) - lo) / (hi - lo) - 1.0

    def decode(self, x: float) -> float:
        lo, hi = self._transform(self.low), self._transform(self.high)
        y = lo + (_clip_unit(x) + 1.0) / 2.0 * (hi - lo)
        value = math.exp(y) if self.log else y
        return min(self.high, max(self.low, value))

    def space(self) -> spaces.Box:
        return spaces.Box(low=self.low, high=self.high, shape=(), dtype=np.float64)

    def to_space(self, value: Any) -> np.ndarray:
        return np.asarray(value, dtype=np.float64)

    def _json_fields(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "log": self.log}


@dataclass(frozen=True)
class Int(Setting):
    """An integer in ``[low, high]``, optionally searched on a log scale."""

    low: int = 0
    high: int = 1
    log: bool = False

    kind = "int"

    def __post_init__(self) -> None:
        if (
            not (isinstance(self.low, int) and isinstance(self.high, int))
            or not self.low < self.high
        ):
            raise SettingError(f"{self.name}: low={self.low!r} must be an int < high={self.high!r}")
        if self.log and self.low <= 0:
            raise SettingError(f"{self.name}: log scale needs low > 0, got low={self.low!r}")
        super().__post_init__()

    def describe(self) -> str:
        return f"an integer in [{self.low}, {self.high}]" + (" (log scale)" if self.log else "")

    def validate(self, value: Any) -> int:
        value = _scalar(value)
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            value = int(value)
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise self._reject(value, "is not an integer")
        value = int(value)
        if not self.low <= value <= self.high:
            raise self._reject(value, f"is outside [{self.low}, {self.high}]")
        return value

    # Integers are encoded through a float on [low - 0.5, high + 0.5] so that each
    # integer owns an interval of the same width (in the log domain when log=True),
    # and decoding rounds back to exactly the encoded integer.
    def _bounds(self) -> tuple[float, float]:
        if self.log:
            return math.log(self.low - 0.5), math.log(self.high + 0.5)
        return self.low - 0.5, self.high + 0.5

    def encode(self, value: Any) -> float:
        lo, hi = self._bounds()
        y = math.log(value) if self.log else float(value)
        return 2.0 * (y - lo) / (hi - lo) - 1.0

    def decode(self, x: float) -> int:
        lo, hi = self._bounds()
        y = lo + (_clip_unit(x) + 1.0) / 2.0 * (hi - lo)
        value = round(math.exp(y)) if self.log else round(y)
        return int(min(self.high, max(self.low, value)))

    def space(self) -> spaces.Discrete:
        return spaces.Discrete(self.high - self.low + 1, start=self.low)

    def to_space(self, value: Any) -> np.int64:
        return np.int64(value)

    def _json_fields(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "log": self.log}


@dataclass(frozen=True)
class Categorical(Setting):
    """One of a fixed tuple of choices (strings, numbers or booleans)."""

    choices: tuple[Any, ...] = ()

    kind = "categorical"

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", tuple(self.choices))
        if len(self.choices) < 2 or len(set(self.choices)) != len(self.choices):
            raise SettingError(f"{self.name}: choices={self.choices!r} must be 2+ distinct values")
        super().__post_init__()

    def describe(self) -> str:
        return "one of " + ", ".join(repr(c) for c in self.choices)

    def validate(self, value: Any) -> Any:
        value = _scalar(value)
        for choice in self.choices:
            if type(choice) is type(value) and choice == value:
                return choice
        # numbers given as other numeric types (e.g. 3.0 for 3, np.int64 for int)
        for choice in self.choices:
            if _is_number(choice) and _is_number(value) and choice == value:
                return choice
        raise self._reject(value, "is not an allowed choice")

    def index(self, value: Any) -> int:
        return self.choices.index(self.validate(value))

    def encode(self, value: Any) -> float:
        n = len(self.choices)
        return 2.0 * (self.index(value) + 0.5) / n - 1.0

    def decode(self, x: float) -> Any:
        n = len(self.choices)
        i = int((_clip_unit(x) + 1.0) / 2.0 * n)
        return self.choices[min(n - 1, i)]

    def space(self) -> spaces.Discrete:
        return spaces.Discrete(len(self.choices))

    def from_space(self, sample: Any) -> Any:
        """A numpy integer (what the ``Discrete`` space holds) is a choice's index;
        any other value is the choice itself, so plain dicts such as
        ``{"model.family": "cnn"}`` are actions too."""
        if not isinstance(sample, (np.integer, np.ndarray)):
            return self.validate(sample)
        if isinstance(sample, np.ndarray) and sample.size == 1:
            sample = sample.reshape(())[()]  # the numpy scalar
        if not isinstance(sample, np.integer) or not 0 <= sample < len(self.choices):
            raise self._reject(
                sample, f"is not a choice index in [0, {len(self.choices) - 1}] (a numpy integer)"
            )
        return self.choices[int(sample)]

    def to_space(self, value: Any) -> np.int64:
        return np.int64(self.index(value))

    def _json_fields(self) -> dict[str, Any]:
        return {"choices": list(self.choices)}


@dataclass(frozen=True)
class Bool(Categorical):
    """A switch: ``False`` or ``True``."""

    choices: tuple[Any, ...] = (False, True)

    kind = "bool"

    def validate(self, value: Any) -> bool:
        value = _scalar(value)
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        raise self._reject(value, "is not a boolean")

    def describe(self) -> str:
        return "true or false"

    def _json_fields(self) -> dict[str, Any]:
        return {}
