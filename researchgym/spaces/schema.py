"""A schema: the ordered settings of a metaprogram and every form derived from them.

One declaration gives validation with clear errors, the gymnasium ``Dict``
action space, a flat ``[-1, 1]`` encoding for RL libraries, a JSON form for
language-model agents, YAML files and ``name=value`` command-line overrides.

A schema may also carry *nested forms* (see :class:`NestedForm`): a group of
settings under one prefix that can be given as one nested value, such as a
model's tree of units (:class:`~researchgym.spaces.units.UnitTree`). Every
entry point (``validate``, JSON, YAML) accepts the nested form as well as the
flat settings.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import yaml
from gymnasium import spaces

from researchgym.errors import did_you_mean, shorten
from researchgym.spaces.codec import SettingwiseCodec, flat_codec
from researchgym.spaces.settings import Setting, SettingError

__all__ = ["MAX_JSON_CHARS", "MAX_NESTING", "NestedForm", "Schema", "flatten_dotted"]

#: Longest JSON action (characters, or bytes of UTF-8) read; longer ones are rejected unread.
MAX_JSON_CHARS = 65_536
#: Deepest nesting of objects and lists accepted in settings (a tree of units needs 5).
MAX_NESTING = 32

# A JSON string (one left open runs to the end of the text) or a bracket.
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*(?:"|\\?\Z)|[\[\]{}]', re.DOTALL)


class _SafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader, also reading ``1e-4`` and ``1.0e5`` as floats.

    YAML 1.1 (PyYAML) needs a dot and a signed exponent, so ``lr: 1e-4`` would
    otherwise load as the string ``"1e-4"``.
    """


_SafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _safe_load(text: str) -> Any:
    return yaml.load(text, Loader=_SafeLoader)


def flatten_dotted(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Turn nested mappings ``{"model": {"width": 8}}`` into ``{"model.width": 8}``.

    An empty mapping stays the value of its name (so it is checked as one).

    Raises:
        SettingError: a key that is not a string, a name given twice (nested and
            dotted), or mappings nested more than :data:`MAX_NESTING` deep.
    """
    out: dict[str, Any] = {}
    _flatten_into(out, values, prefix, MAX_NESTING)
    return out


def _flatten_into(out: dict[str, Any], values: Mapping[Any, Any], prefix: str, levels: int) -> None:
    for key, value in values.items():
        if not isinstance(key, str):
            where = f" under {shorten(prefix)}" if prefix else ""
            raise SettingError(
                f"setting name {shorten(key)}{where} is not a string; name settings like 'optim.lr'"
            )
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            if levels <= 1:
                raise SettingError(
                    f"settings under {shorten(name)} are nested more than {MAX_NESTING} levels "
                    'deep; give settings by dotted name, e.g. {"optim.lr": 0.001}'
                )
            _flatten_into(out, value, f"{name}.", levels - 1)
        elif name in out:
            raise SettingError(f"{shorten(name)} is given twice; give each setting once")
        else:
            out[name] = value


@runtime_checkable
class NestedForm(Protocol):
    """A nested way to write the settings under one prefix (e.g. a tree of units).

    Attributes:
        prefix: the key the nested value is given under, e.g. ``"arch"``.
        names: the flat settings the form stands for (all under ``prefix``).
    """

    @property
    def prefix(self) -> str: ...

    @property
    def names(self) -> tuple[str, ...]: ...

    def expand(self, value: Any) -> dict[str, Any]:
        """Flat settings (dotted names) of a nested value; raises ``SettingError``."""

    def collapse(self, values: Mapping[str, Any]) -> Any:
        """The nested value of validated flat settings."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready description of the nested form, for prompts and docs."""


class Schema:
    """An ordered collection of settings; conditions may only refer to earlier ones.

    Args:
        settings: the settings, in the order an agent decides them.
        forms: nested forms of some of the settings (see :class:`NestedForm`);
            each form's settings must be among ``settings``.
    """

    def __init__(self, settings: Iterable[Setting], forms: Iterable[NestedForm] = ()):
        self._settings: dict[str, Setting] = {}
        for setting in settings:
            if setting.name in self._settings:
                raise SettingError(f"setting {setting.name!r} is declared twice")
            for parent, allowed in setting.when.items():
                if parent not in self._settings:
                    raise SettingError(
                        f"{setting.name}: condition on {parent!r}, which is not declared before it"
                    )
                for value in allowed:
                    self._settings[parent].validate(value)
            self._settings[setting.name] = setting
        self._forms: dict[str, NestedForm] = {}
        self._form_of: dict[str, NestedForm] = {}
        for form in forms:
            if form.prefix in self._forms or form.prefix in self._settings:
                raise SettingError(
                    f"nested form {form.prefix!r} clashes with another form or setting"
                )
            missing = [name for name in form.names if name not in self._settings]
            if missing:
                raise SettingError(
                    f"nested form {form.prefix!r} stands for settings the schema lacks: {missing}"
                )
            self._forms[form.prefix] = form
            self._form_of.update({name: form for name in form.names})

    # --- collection ----------------------------------------------------------------
    def __iter__(self) -> Iterator[Setting]:
        return iter(self._settings.values())

    def __len__(self) -> int:
        return len(self._settings)

    def __getitem__(self, name: str) -> Setting:
        if name not in self._settings:
            raise SettingError(self._unknown_message(name))
        return self._settings[name]

    def __contains__(self, name: object) -> bool:
        return name in self._settings

    @property
    def names(self) -> list[str]:
        return list(self._settings)

    @property
    def forms(self) -> tuple[NestedForm, ...]:
        """The schema's nested forms (empty for most schemas)."""
        return tuple(self._forms.values())

    def _unknown_message(self, name: object) -> str:
        if not isinstance(name, str):
            return f"setting name {shorten(name)} is not a string; name settings like 'optim.lr'"
        return (
            f"unknown setting {shorten(name)}; {did_you_mean(name, self.names)}"
            f"known settings: {self._names_shown()}"
        )

    def _names_shown(self, limit: int = 200) -> str:
        """The setting names, comma-separated, cut after about ``limit`` characters."""
        names = ", ".join(self.names)
        if len(names) <= limit:
            return names
        return f"{names[: names.rfind(', ', 0, limit)]}, ... ({len(self)} in all)"

    # --- validation ----------------------------------------------------------------
    @staticmethod
    def _active(setting: Setting, values: Mapping[str, Any]) -> bool:
        return all(values.get(parent) in allowed for parent, allowed in setting.when.items())

    def flatten(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Dotted settings of values given flat, nested, or in a nested form.

        A mapping under a form's prefix is read by that form (``{"arch": tree}``);
        other nested mappings are flattened (``{"model": {"width": 8}}`` is
        ``model.width``). Nothing is validated beyond what the forms check.
        """
        if not self._forms:
            return flatten_dotted(values)
        plain = {
            k: v for k, v in values.items() if not (k in self._forms and isinstance(v, Mapping))
        }
        out = flatten_dotted(plain)
        for prefix, form in self._forms.items():
            if isinstance(values.get(prefix), Mapping):
                for name, value in form.expand(values[prefix]).items():
                    if name in out:
                        raise SettingError(
                            f"{name} is given both in the {prefix!r} object and on its own; "
                            "give each setting once"
                        )
                    out[name] = value
        return out

    def to_nested(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """A validated metaprogram with each nested form's settings as one nested value.

        Schemas without forms give the same dict as :meth:`validate`.
        """
        full = self.validate(values)
        out: dict[str, Any] = {}
        for name, value in full.items():
            form = self._form_of.get(name)
            if form is None:
                out[name] = value
            elif form.prefix not in out:
                out[form.prefix] = form.collapse(full)
        return out

    def validate(self, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Check values and fill defaults.

        Args:
            values: setting values by dotted name (nested mappings are flattened,
                and nested forms such as a tree of units are expanded).
                Missing settings take their defaults; values of settings that are
                inactive under the other choices are dropped.

        Returns:
            Every active setting, in declaration order, in canonical Python form.

        Raises:
            SettingError: an unknown name or a value outside its setting's range
                (values of inactive settings are checked too).
        """
        return self._resolve(self.check(values))

    def check(self, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The given settings, flattened and checked one by one, without defaults.

        What :meth:`validate` reads before filling defaults and dropping inactive
        settings: the seam for actions that change only some settings of another
        metaprogram.

        Raises:
            SettingError: an unknown name or a value outside its setting's range.
        """
        given = self.flatten(values or {})
        return {name: self[name].validate(value) for name, value in given.items()}

    def _resolve(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The active settings of checked values, in order, with defaults filled in."""
        out: dict[str, Any] = {}
        for name, setting in self._settings.items():
            if self._active(setting, out):
                out[name] = given.get(name, setting.default)
        return out

    def defaults(self) -> dict[str, Any]:
        """The metaprogram made of every default."""
        return self.validate({})

    # --- gymnasium dict interface -----------------------------------------------------
    def space(self) -> spaces.Dict:
        """The canonical ``Dict`` action space (one entry per setting, inactive ones ignored)."""
        return spaces.Dict({name: s.space() for name, s in self._settings.items()})

    def from_space(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        """Validate an element of :meth:`space` (missing keys take defaults)."""
        return self._resolve({name: self[name].from_space(value) for name, value in sample.items()})

    def to_space(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The element of :meth:`space` for a metaprogram (inactive settings at defaults)."""
        full = {s.name: s.default for s in self} | self.validate(values)
        return {name: self._settings[name].to_space(v) for name, v in full.items()}

    # --- flat interface ------------------------------------------------------------------
    def flat_space(self) -> spaces.Box:
        """A ``Box`` in ``[-1, 1]`` with one dimension per setting."""
        return spaces.Box(-1.0, 1.0, shape=(len(self),), dtype=np.float32)

    def encode(self, values: Mapping[str, Any]) -> np.ndarray:
        """Flat vector of a metaprogram; inactive settings encode their default."""
        return self.encode_valid(self.validate(values))

    def encode_valid(self, metaprogram: Mapping[str, Any]) -> np.ndarray:
        """:meth:`encode` of a metaprogram that :meth:`validate` or :meth:`decode`
        returned, without validating it again (the fast path of env steps)."""
        return self._codec.encode_valid(metaprogram)

    @functools.cached_property
    def _codec(self) -> SettingwiseCodec:
        return flat_codec(self)

    def decode(self, vector: Any) -> dict[str, Any]:
        """Metaprogram of any finite vector of the flat space's size (values are clipped).

        Raises:
            SettingError: not an array of real numbers, of another size, or with
                NaN or infinite entries.
        """
        vector = self._flat_vector(vector)
        return self._codec.decode(vector)

    def _flat_vector(self, vector: Any) -> np.ndarray:
        try:
            array = np.asarray(vector)
        except (ValueError, TypeError):  # ragged or too deeply nested lists
            array = None
        if array is None or array.dtype.kind not in "biuf":
            what = "" if array is None else f" (dtype {array.dtype})"
            raise SettingError(
                f"flat action {shorten(vector)} is not an array of real numbers{what}; "
                f"{self._flat_fix()}"
            )
        if array.shape != (len(self),):
            raise SettingError(
                f"flat action has shape {array.shape}, expected ({len(self)},); {self._flat_fix()}"
            )
        array = array.astype(np.float64)
        if not np.isfinite(array).all():
            bad = np.flatnonzero(~np.isfinite(array))
            names = ", ".join(f"{self.names[i]}={array[i]}" for i in bad[:3])
            more = f" and {bad.size - 3} more" if bad.size > 3 else ""
            raise SettingError(
                f"flat action has non-finite entries: {names}{more}; {self._flat_fix()}"
            )
        return array

    def _flat_fix(self) -> str:
        return f"pass {len(self)} finite numbers in [-1, 1], one per setting: {self._names_shown()}"

    # --- text / JSON / YAML / CLI --------------------------------------------------------
    def to_json(self) -> list[dict[str, Any]]:
        """JSON-ready description of every setting."""
        return [s.to_json() for s in self]

    def forms_json(self) -> list[dict[str, Any]]:
        """JSON-ready description of every nested form (empty for most schemas)."""
        return [form.to_json() for form in self._forms.values()]

    def describe(self) -> str:
        """One line per setting, for prompts and the command line."""
        lines = []
        for s in self:
            cond = ""
            if s.when:
                cond = (
                    " (only when " + ", ".join(f"{k} in {list(v)}" for k, v in s.when.items()) + ")"
                )
            lines.append(f"{s.name}: {s.describe()}, default {s.default!r}{cond}")
        return "\n".join(lines)

    def parse_json(self, text: str | bytes) -> dict[str, Any]:
        """Validate a JSON object of settings (the text interface's action).

        The same as ``validate(read_json(text))``: see :meth:`read_json` for the
        limits on the text.

        Raises:
            SettingError: text :meth:`read_json` rejects, or settings :meth:`validate` rejects.
        """
        return self.validate(self.read_json(text))

    def read_json(self, text: str | bytes) -> dict[str, Any]:
        """Read a JSON object (of settings, and of whatever else an action holds), unvalidated.

        Args:
            text: the JSON, as text or UTF-8 bytes, at most :data:`MAX_JSON_CHARS`
                long and nested at most :data:`MAX_NESTING` deep.

        Raises:
            SettingError: text that is too long, too deep, not JSON, not an object,
                or has a key twice.
        """
        example = 'send an object like {"optim.lr": 0.001}'
        if len(text) > MAX_JSON_CHARS:
            raise SettingError(
                f"action is {len(text):,} characters long, over the limit of {MAX_JSON_CHARS:,}; "
                f"{example}"
            )
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise SettingError(
                    f"action bytes are not UTF-8 ({exc.reason} at byte {exc.start}); "
                    f"{example}, as text or UTF-8 bytes"
                ) from None
        depth = _json_depth(text) if text.count("[") + text.count("{") > MAX_NESTING else 0
        if depth > MAX_NESTING:
            raise SettingError(
                f"action JSON is nested {depth} levels deep, over the limit of {MAX_NESTING}; "
                f"{example}"
            )
        try:
            values = json.loads(text, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as exc:
            raise SettingError(
                f"action is not valid JSON ({exc.msg} at position {exc.pos}); {example}"
            ) from None
        except ValueError as exc:  # e.g. an integer too long to convert
            raise SettingError(
                f"action JSON cannot be read ({shorten(str(exc))}); {example}"
            ) from None
        if not isinstance(values, dict):
            raise SettingError(
                f"action JSON must be an object of settings, got {shorten(values)}; {example}"
            )
        return values

    def load_yaml(self, path: str | Path) -> dict[str, Any]:
        """Read settings from a YAML file (safe loader), nested or dotted keys."""
        path = Path(path)
        try:
            data = _safe_load(path.read_text())
        except FileNotFoundError:
            raise SettingError(f"settings file {str(path)!r} does not exist") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise SettingError(f"{path}: invalid YAML{where}: {problem}") from None
        if data is None:
            return {}
        if not isinstance(data, Mapping):
            raise SettingError(
                f"{path}: expected a mapping of settings like 'optim:\\n  lr: 0.001', "
                f"got {type(data).__name__}"
            )
        return self.flatten(data)

    def parse_overrides(self, overrides: Iterable[str]) -> dict[str, Any]:
        """Parse ``name=value`` strings (values read as YAML scalars) into settings."""
        out: dict[str, Any] = {}
        for item in overrides:
            name, sep, raw = item.partition("=")
            name = name.strip()
            if not sep or not name:
                raise SettingError(
                    f"override {shorten(item)} is not of the form name=value, e.g. optim.lr=0.01"
                )
            self[name]  # unknown names fail here, with a suggestion
            try:
                value = _safe_load(raw) if raw.strip() else raw
            except yaml.YAMLError:
                value = raw
            if isinstance(value, (dict, list)):
                raise SettingError(f"override {shorten(item)}: the value must be a single scalar")
            out[name] = value
        return out


def _json_depth(text: str) -> int:
    """How deep objects and lists nest in JSON text (brackets inside strings not counted)."""
    depth = deepest = 0
    for token in _JSON_TOKEN.findall(text):  # one pass: linear in the text's length
        if token in ("[", "{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in ("]", "}"):
            depth -= 1
    return deepest


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's dict; a key given twice raises ``SettingError``."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise SettingError(
                f"the action JSON gives {shorten(key)} twice in one object; give each setting once"
            )
        out[key] = value
    return out
