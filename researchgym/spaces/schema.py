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

import difflib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import yaml
from gymnasium import spaces

from researchgym.spaces.settings import Setting, SettingError

__all__ = ["NestedForm", "Schema", "flatten_dotted"]


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
    """Turn nested mappings ``{"model": {"width": 8}}`` into ``{"model.width": 8}``."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_dotted(value, prefix=f"{name}."))
        else:
            out[name] = value
    return out


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
                raise SettingError(f"nested form {form.prefix!r} clashes with another form or setting")
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

    def _unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown setting {name!r}; {hint}known settings: {', '.join(self.names)}"

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
        plain = {k: v for k, v in values.items() if not (k in self._forms and isinstance(v, Mapping))}
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
            SettingError: an unknown name or a value outside its setting's range.
        """
        given = self.flatten(values or {})
        for name in given:
            if name not in self._settings:
                raise SettingError(self._unknown_message(name))
        out: dict[str, Any] = {}
        for name, setting in self._settings.items():
            if not self._active(setting, out):
                continue
            out[name] = setting.validate(given[name]) if name in given else setting.default
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
        given: dict[str, Any] = {}
        for name, value in sample.items():
            given[name] = self[name].from_space(value)
        return self.validate(given)

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
        try:
            codec = self._codec
        except AttributeError:
            from researchgym.spaces.codec import flat_codec

            codec = self._codec = flat_codec(self)
        return codec.encode_valid(metaprogram)

    def decode(self, vector: Any) -> dict[str, Any]:
        """Metaprogram of any vector of the flat space's shape (values are clipped)."""
        vector = np.asarray(vector, dtype=np.float64).reshape(-1)
        if vector.shape != (len(self),):
            raise SettingError(
                f"flat action has shape {vector.shape}, expected ({len(self)},); "
                f"pass one number in [-1, 1] per setting in the order {self.names}"
            )
        try:
            codec = self._codec
        except AttributeError:
            from researchgym.spaces.codec import flat_codec

            codec = self._codec = flat_codec(self)
        return codec.decode(vector)

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
                cond = " (only when " + ", ".join(
                    f"{k} in {list(v)}" for k, v in s.when.items()
                ) + ")"
            lines.append(f"{s.name}: {s.describe()}, default {s.default!r}{cond}")
        return "\n".join(lines)

    def parse_json(self, text: str) -> dict[str, Any]:
        """Validate a JSON object of settings (the text interface's action)."""
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SettingError(
                f"action is not valid JSON ({exc.msg} at position {exc.pos}); "
                'send an object like {"optim.lr": 0.001}'
            ) from None
        if not isinstance(values, dict):
            raise SettingError(
                f"action JSON must be an object of settings, got {type(values).__name__}; "
                'send an object like {"optim.lr": 0.001}'
            )
        return self.validate(values)

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
                    f"override {item!r} is not of the form name=value, e.g. optim.lr=0.01"
                )
            self[name]  # unknown names fail here, with a suggestion
            try:
                value = _safe_load(raw) if raw.strip() else raw
            except yaml.YAMLError:
                value = raw
            if isinstance(value, (dict, list)):
                raise SettingError(f"override {item!r}: the value must be a single scalar")
            out[name] = value
        return out
