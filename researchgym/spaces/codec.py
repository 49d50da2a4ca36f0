"""The flat encoding of a schema, compiled into arrays.

:func:`flat_codec` turns a schema's settings into a codec that maps a vector of
the flat space to the metaprogram :meth:`Schema.decode` gives, and knows that
metaprogram's canonical flat encoding (:meth:`Schema.encode_valid` of it), in a
few vectorized steps over all settings instead of Python calls per setting.
Results are identical to decoding and encoding setting by setting
(``Setting.decode``, the schema's conditions, ``Setting.encode``).

A codec remembers the encoding of the metaprogram it decoded last, so encoding
that same, unchanged dict again (an env step does it for its history, a replay
executor for its look-up) costs a dict comparison. Schemas declared alike share
one codec, and so that memory.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterable, Mapping
from itertools import compress
from typing import Any

import numpy as np

from researchgym.spaces.settings import Bool, Categorical, Float, Int, Setting

__all__ = ["FlatCodec", "SettingwiseCodec", "flat_codec"]

_EXACT_INT = 2**53  # integers a float64 holds exactly
_TABLE_LIMIT = 1 << 16  # an Int with more values is decoded by its own methods


class SettingwiseCodec:
    """Decodes and encodes one setting at a time, with the settings' own methods.

    The reference behaviour, and the codec of schemas :class:`FlatCodec` does not
    compile (settings of other types).
    """

    def __init__(self, settings: Iterable[Setting]):
        self.settings: tuple[Setting, ...] = tuple(settings)
        self._last: tuple[dict[str, Any], dict[str, Any], np.ndarray] | None = None

    def __reduce__(self):
        return flat_codec, (self.settings,)

    def decode(self, vector: np.ndarray) -> dict[str, Any]:
        """The metaprogram of a float64 vector with one entry per setting.

        Entries are clipped to ``[-1, 1]`` (NaN reads as 0); inactive settings are
        left out. The metaprogram's encoding is remembered for :meth:`encode_valid`.
        """
        metaprogram: dict[str, Any] = {}
        for setting, x in zip(self.settings, vector):
            if all(metaprogram.get(p) in allowed for p, allowed in setting.when.items()):
                metaprogram[setting.name] = setting.decode(x)
        self._remember(metaprogram, self._encode(metaprogram))
        return metaprogram

    def encode_valid(self, metaprogram: Mapping[str, Any]) -> np.ndarray:
        """The float32 flat encoding of a valid metaprogram (inactive settings: their default's)."""
        last = self._last
        if last is not None and last[0] is metaprogram and metaprogram == last[1]:
            return last[2].copy()
        return self._encode(metaprogram)

    def _encode(self, metaprogram: Mapping[str, Any]) -> np.ndarray:
        return np.array(
            [s.encode(metaprogram.get(s.name, s.default)) for s in self.settings],
            dtype=np.float32,
        )

    def _remember(self, metaprogram: dict[str, Any], encoding: np.ndarray) -> None:
        # The dict itself (decode's caller holds it) and a copy, to notice changes.
        self._last = (metaprogram, dict(metaprogram), encoding)


class _Unsupported(Exception):
    """A schema :class:`FlatCodec` does not compile."""


def _plain_bound(bound: Any) -> bool:
    """A float bound that ``min``/``max`` and numpy clamp to alike (no -0.0, no int type)."""
    return type(bound) is float and not (bound == 0.0 and math.copysign(1.0, bound) < 0)


def _object_array(items: Iterable[Any]) -> np.ndarray:
    """A 1-d object array of exactly these objects (numpy would convert a list's numbers)."""
    items = list(items)
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


class FlatCodec(SettingwiseCodec):
    """A schema's flat encoding compiled into arrays (see the module docstring).

    Decoding computes, for all settings at once, the transformed value
    ``lo + (x + 1) / 2 * (hi - lo)`` of the clipped entry ``x`` (for a categorical,
    ``lo = 0`` and ``hi`` its number of choices), rounds it (ints: half to even;
    categoricals: down to the choice's index) and clamps it to the setting's
    range. That number is the setting's *key*: the value of a float or an int,
    the index of a categorical's choice. Ints and categoricals then read their
    value and its encoding from tables made with their own methods; floats encode
    as ``2 (value - lo) / (hi - lo) - 1``. Log-scale settings are finished one by
    one with ``math.exp``/``math.log`` (numpy's may differ in the last bit), as
    are the few settings whose own methods are used (floats whose bounds are not
    plain floats, whose ``min``/``max`` return the bound's own object; ints with
    more than 65,536 values).

    A condition is a (child, parent) pair with the keys the parent may take.
    All conditions are tested at once, then combined level by level (a setting's
    level is one more than its deepest parent's), since a condition holds only
    when its parent is active (or, where it allows None, inactive).

    Raises:
        _Unsupported: a setting type other than Float, Int, Categorical and Bool,
            an int bound a float64 does not hold exactly, or a range too narrow
            to halve exactly or too wide to double.
    """

    def __init__(self, settings: Iterable[Setting]):
        super().__init__(settings)
        settings = self.settings
        n = len(settings)
        lo, span, vmin, vmax = np.zeros(n), np.ones(n), np.zeros(n), np.zeros(n)
        rounded, floored = [], []  # ints rounded half to even; categoricals rounded down
        # ints and categoricals: their positions, table rows, values and codes
        tabled: list[int] = []
        table_start: list[float] = []
        table_values: list[Any] = []
        table_codes: list[float] = []
        logs = []  # (index, is an int, lo, hi - lo, low, high)
        self._generic: list[tuple[int, Setting]] = []  # decoded by the setting's own methods
        for i, s in enumerate(settings):
            values: list[Any]
            if type(s) is Float:
                a, b = s._transform(s.low), s._transform(s.high)
                lo[i], span[i], vmin[i], vmax[i] = a, b - a, s.low, s.high
                if not (_plain_bound(s.low) and _plain_bound(s.high)):
                    self._generic.append((i, s))
                elif s.log:
                    logs.append((i, False, a, b - a, s.low, s.high))
                continue
            if type(s) is Int:
                if max(abs(s.low), abs(s.high)) >= _EXACT_INT:
                    raise _Unsupported(f"{s.name}: a bound beyond 2**53")
                a, b = s._bounds()
                lo[i], span[i], vmin[i], vmax[i] = a, b - a, s.low, s.high
                if s.high - s.low >= _TABLE_LIMIT:
                    self._generic.append((i, s))
                    continue
                if s.log:
                    logs.append((i, True, a, b - a, s.low, s.high))
                else:
                    rounded.append(i)
                values = list(range(s.low, s.high + 1))
            elif isinstance(s, Categorical) and type(s) in (Categorical, Bool):
                k = len(s.choices)
                if any(s.index(c) != j for j, c in enumerate(s.choices)):
                    raise _Unsupported(f"{s.name}: a choice that does not encode as its own index")
                lo[i], span[i], vmin[i], vmax[i] = 0.0, float(k), 0.0, float(k - 1)
                floored.append(i)
                values = list(s.choices)
            else:
                raise _Unsupported(f"{s.name}: setting type {type(s).__name__}")
            tabled.append(i)
            table_start.append(len(table_values) - vmin[i])  # a key's row: start + key
            table_values += values
            table_codes += [s.encode(value) for value in values]
        half = span / 2.0
        if not np.all(
            (half * 2.0 == span) & (half >= np.finfo(np.float64).tiny) & np.isfinite(span * 2.0)
        ):
            raise _Unsupported("a range too narrow to halve exactly, or too wide to double")
        # (x + 1) / 2 * span == (x + 1) * (span / 2), and 2 t / span == t / (span / 2):
        # each side rounds the same exact number once.
        self._numeric = (lo, half, vmin, vmax, np.full(n, -1.0), np.ones(n))
        self._rounded = np.array(rounded, dtype=np.intp) if rounded else None
        self._floored = np.array(floored, dtype=np.intp) if floored else None
        self._table = (
            (
                np.array(tabled, dtype=np.intp),
                np.array(table_start, dtype=np.float64),
                _object_array(table_values),
                np.array(table_codes, dtype=np.float64),
            )
            if tabled
            else None
        )
        self._logs = (
            (np.array([row[0] for row in logs], dtype=np.intp), tuple(logs)) if logs else None
        )
        self._names = tuple(s.name for s in settings)
        self._defaults = np.array([s.encode(s.default) for s in settings], dtype=np.float32)
        self._all_active = np.ones(n, dtype=bool)
        self._compile_conditions()

    def _compile_conditions(self) -> None:
        settings = self.settings
        position = {s.name: i for i, s in enumerate(settings)}
        level = [0] * len(settings)
        conditions: list[
            tuple[int, int, int, tuple[Any, ...]]
        ] = []  # level, child, parent, allowed
        for i, s in enumerate(settings):
            parents = [(position[name], allowed) for name, allowed in s.when.items()]
            level[i] = max((level[p] + 1 for p, _ in parents), default=0)
            conditions += [(level[i], i, p, allowed) for p, allowed in parents]
        conditions.sort(key=lambda condition: condition[0])  # stable: by level, then order
        pair_parent: list[int] = []
        pair_key: list[float] = []
        pair_start: list[int] = []
        for _, _, p, allowed in conditions:
            parent = settings[p]
            if isinstance(parent, Categorical):
                keys = [float(j) for j, choice in enumerate(parent.choices) if choice in allowed]
            else:  # Python compares ints and floats exactly: keep keys equal to their value
                keys = [float(a) for a in allowed if a is not None and float(a) == a]
            pair_start.append(len(pair_key))
            pair_parent += [p] * max(1, len(keys))
            pair_key += keys or [math.nan]  # NaN matches no key
        self._pairs = (
            np.array(pair_parent, dtype=np.intp),
            np.array(pair_key, dtype=np.float64),
            # where each condition's pairs start; None when each has one pair
            None if len(pair_key) == len(pair_start) else np.array(pair_start, dtype=np.intp),
        )
        # Per level: its conditions, their children, their parents (None when all are
        # unconditional, so always active), whether they allow None, one condition per child.
        self._levels = []
        for lvl in range(1, max(level, default=0) + 1):
            ks = [k for k, condition in enumerate(conditions) if condition[0] == lvl]
            if not ks:
                continue
            children = [conditions[k][1] for k in ks]
            parent_ids = [conditions[k][2] for k in ks]
            none_ok = np.array([None in conditions[k][3] for k in ks], dtype=bool)
            self._levels.append(
                (
                    slice(ks[0], ks[-1] + 1),
                    np.array(children, dtype=np.intp),
                    None
                    if all(level[p] == 0 for p in parent_ids)
                    else np.array(parent_ids, dtype=np.intp),
                    none_ok if none_ok.any() else None,
                    len(set(children)) == len(children),
                )
            )

    def decode(self, vector: np.ndarray) -> dict[str, Any]:
        lo, half_span, vmin, vmax, minus_one, one = self._numeric
        # Clip as Setting.decode does (NaN reads as 0), then lo + (x + 1) / 2 * (hi - lo).
        y = np.maximum(vector, minus_one)
        np.minimum(y, one, out=y)
        y[np.isnan(y)] = 0.0
        np.add(y, one, out=y)
        np.multiply(y, half_span, out=y)
        np.add(y, lo, out=y)
        logs = self._logs
        if logs is not None:
            transformed = y[logs[0]].tolist()
        key = y  # from here on, the keys
        rounded, floored = self._rounded, self._floored
        if rounded is not None:
            key[rounded] = np.rint(y[rounded])  # round(): half to even
        if floored is not None:
            key[floored] = np.floor(y[floored])  # int() of a number >= 0
        np.maximum(key, vmin, out=key)
        np.minimum(key, vmax, out=key)
        # Floats' encodings: 2 (value - lo) / (hi - lo) - 1.
        enc = np.subtract(key, lo)
        np.divide(enc, half_span, out=enc)
        np.subtract(enc, one, out=enc)
        if logs is not None:
            for (i, is_int, lo_i, span, low, high), t in zip(logs[1], transformed):
                if is_int:  # its encoding comes from the table
                    key[i] = int(min(high, max(low, round(math.exp(t)))))
                else:  # a float: its key is its value
                    value = min(high, max(low, math.exp(t)))
                    key[i], enc[i] = value, 2.0 * (math.log(value) - lo_i) / span - 1.0
        special = []  # (position, value) of the settings decoded by their own methods
        for i, setting in self._generic:
            value = setting.decode(vector[i])
            key[i], enc[i] = float(value), setting.encode(value)
            special.append((i, value))

        # A setting is active when each of its conditions holds: its parent is active
        # with an allowed key (or inactive, where the condition allows None).
        active = self._all_active.copy()
        if self._levels:
            pair_parent, pair_key, pair_start = self._pairs
            holds = key[pair_parent] == pair_key
            if pair_start is not None:
                holds = np.logical_or.reduceat(holds, pair_start)
            for conditions, children, parents, none_ok, one_per_child in self._levels:
                ok = holds[conditions]
                if parents is not None:
                    parent_active = active[parents]
                    if none_ok is None:
                        ok = ok & parent_active
                    else:
                        ok = np.where(parent_active, ok, none_ok)
                if one_per_child:
                    active[children] = ok
                else:
                    active[children[~ok]] = False

        values = key.astype(object)  # floats as Python floats
        if self._table is not None:
            tabled, table_start, table_values, table_codes = self._table
            rows = np.add(key[tabled], table_start).astype(np.intp)
            values[tabled] = table_values[rows]
            enc[tabled] = table_codes[rows]
        for i, value in special:
            values[i] = value
        metaprogram = dict(compress(zip(self._names, values.tolist()), active.tolist()))
        encoding = self._defaults.copy()  # inactive settings encode their default
        np.copyto(encoding, enc, where=active)
        self._last = (metaprogram, dict(metaprogram), encoding)
        return metaprogram


_SHARED: weakref.WeakValueDictionary[tuple, SettingwiseCodec] = weakref.WeakValueDictionary()


def flat_codec(settings: Iterable[Setting]) -> SettingwiseCodec:
    """The codec of a schema's settings: compiled where possible, shared by alike schemas."""
    settings = tuple(settings)
    signature = tuple((type(s), repr(s)) for s in settings)
    codec = _SHARED.get(signature)
    if codec is not None and codec.settings == settings:
        return codec
    try:
        codec = FlatCodec(settings)
    except _Unsupported:
        codec = SettingwiseCodec(settings)
    _SHARED.setdefault(signature, codec)
    return codec
