"""Trees of units: an architecture declared once, seen flat by RL agents and as a tree by LLMs.

A :class:`UnitTree` is a model described as global items followed by a stack of
layers. An item is either a plain :class:`~researchgym.spaces.Setting` or a
:class:`Slot`: a place filled by one of several :class:`Unit` choices, each with
its own settings. From that one declaration come

* the flat settings of a :class:`~researchgym.spaces.Schema` (a fixed maximum
  depth with per-layer slots, inactive beyond ``depth`` through conditions), used by
  the ``dict`` and ``flat`` interfaces;
* the tree form, a nested JSON object that language-model agents read and write::

      {"width": 64, "norm": {"type": "rmsnorm", "placement": "pre"},
       "layers": [{"mixer": {"type": "attention", "heads": 2}, "ffn": "swiglu"}, ...]}

Flat names are mechanical: ``arch.width``, ``arch.norm`` (the unit chosen),
``arch.norm_placement`` (a unit's setting), ``arch.depth``, ``arch.layer0.mixer``,
``arch.layer0.mixer_heads``, ... A schema built with ``Schema(settings, forms=[tree])``
accepts both forms everywhere (dicts, JSON, YAML).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from researchgym.errors import did_you_mean, shorten
from researchgym.spaces.schema import flatten_dotted
from researchgym.spaces.settings import Categorical, Int, Setting, SettingError

__all__ = ["Slot", "Unit", "UnitTree"]


def _check_identifier(name: str, what: str) -> None:
    if not isinstance(name, str) or not name.isidentifier():
        raise SettingError(f"{what} name {name!r} must be an identifier like 'mixer'")


@dataclass(frozen=True)
class Unit:
    """One choice for a :class:`Slot`, with its own settings.

    Attributes:
        name: the unit's name, e.g. ``"attention"``.
        settings: the unit's settings, named relative to the unit (``"heads"``),
            without conditions.
        help: one line for prompts and docs.
    """

    name: str
    settings: tuple[Setting, ...] = ()
    help: str = ""

    def __post_init__(self) -> None:
        _check_identifier(self.name, "unit")
        object.__setattr__(self, "settings", tuple(self.settings))
        names = [s.name for s in self.settings]
        for setting in self.settings:
            _check_identifier(setting.name, f"setting of unit {self.name!r}:")
            if setting.when:
                raise SettingError(
                    f"unit {self.name!r}: setting {setting.name!r} may not have conditions; "
                    "a unit's settings are active exactly when the unit is chosen"
                )
        if len(set(names)) != len(names):
            raise SettingError(f"unit {self.name!r} declares a setting twice: {names}")


@dataclass(frozen=True)
class Slot:
    """A place in the tree filled by one of several units.

    Attributes:
        name: the slot's name, e.g. ``"mixer"``.
        units: the units that may fill it (2 or more).
        default: the name of the unit used when the slot is not given.
        help: one line for prompts and docs.
    """

    name: str
    units: tuple[Unit, ...]
    default: str
    help: str = ""

    def __post_init__(self) -> None:
        _check_identifier(self.name, "slot")
        object.__setattr__(self, "units", tuple(self.units))
        names = [u.name for u in self.units]
        if len(names) < 2 or len(set(names)) != len(names):
            raise SettingError(f"slot {self.name!r}: units {names} must be 2+ distinct units")
        if self.default not in names:
            raise SettingError(
                f"slot {self.name!r}: default {self.default!r} is not one of {names}"
            )
        # Units sharing a setting name must declare it identically: it is one flat setting.
        seen: dict[str, Setting] = {}
        for unit in self.units:
            for setting in unit.settings:
                if setting.name in seen and seen[setting.name] != setting:
                    raise SettingError(
                        f"slot {self.name!r}: units declare setting {setting.name!r} differently "
                        f"({seen[setting.name]!r} vs {setting!r}); give them one declaration"
                    )
                seen.setdefault(setting.name, setting)

    @property
    def unit_names(self) -> tuple[str, ...]:
        return tuple(u.name for u in self.units)

    def unit(self, name: str) -> Unit:
        return self.units[self.unit_names.index(name)]

    def setting_names(self) -> list[str]:
        """Every unit setting name, each once, in declaration order."""
        out: list[str] = []
        for unit in self.units:
            out += [s.name for s in unit.settings if s.name not in out]
        return out


Item = Setting | Slot


class UnitTree:
    """A model as a tree: global items, then ``depth`` layers of per-layer items.

    Args:
        prefix: the settings' common prefix and the key of the tree in nested
            forms, e.g. ``"arch"``.
        top: items of the whole model (plain settings or slots), named relative
            to the prefix.
        layer: items of every layer; each layer chooses its own.
        max_depth: the most layers a tree may have (the flat form has this many
            per-layer slots).
        default_depth: layers when the depth is not given.
        help: one line for prompts and docs.
    """

    LAYERS_KEY = "layers"
    DEPTH_KEY = "depth"
    TYPE_KEY = "type"

    def __init__(
        self,
        prefix: str,
        *,
        top: Sequence[Item],
        layer: Sequence[Item],
        max_depth: int,
        default_depth: int = 1,
        help: str = "",
    ):
        if not prefix or any(not p.isidentifier() for p in prefix.split(".")):
            raise SettingError(
                f"unit tree prefix {prefix!r} must be dotted identifiers like 'arch'"
            )
        if not isinstance(max_depth, int) or max_depth < 2:
            raise SettingError(f"unit tree {prefix!r}: max_depth={max_depth!r} must be an int >= 2")
        self.prefix = prefix
        self.top = tuple(top)
        self.layer = tuple(layer)
        self.max_depth = max_depth
        self.help = help
        reserved = {self.LAYERS_KEY, self.DEPTH_KEY}
        for where, items in (("top", self.top), ("layer", self.layer)):
            names = [item.name for item in items]
            if len(set(names)) != len(names) or reserved & set(names):
                raise SettingError(
                    f"unit tree {prefix!r}: {where} items {names} must be distinct and not "
                    f"named {sorted(reserved)}"
                )
            for item in items:
                _check_identifier(item.name, "item")
                if isinstance(item, Setting) and item.when:
                    raise SettingError(
                        f"unit tree {prefix!r}: item {item.name!r} may not have conditions"
                    )
        self._depth = Int(
            f"{prefix}.{self.DEPTH_KEY}",
            default_depth,
            low=1,
            high=max_depth,
            help="number of layers",
        )
        self._settings = self._declare()
        self._by_name = {s.name: s for s in self._settings}

    # --- flat settings ---------------------------------------------------------------
    def _item_settings(
        self, item: Item, base: str, when: dict[str, tuple[Any, ...]]
    ) -> list[Setting]:
        """Flat settings of one item whose flat name is ``base``."""
        if isinstance(item, Setting):
            return [replace(item, name=base, when=dict(when))]
        units = ", ".join(item.unit_names)
        out: list[Setting] = [
            Categorical(
                base,
                item.default,
                choices=item.unit_names,
                help=f"{item.help} (units: {units})".strip(),
                when=dict(when),
            )
        ]
        for name in item.setting_names():
            users = tuple(u.name for u in item.units if name in {s.name for s in u.settings})
            declared = next(s for u in item.units for s in u.settings if s.name == name)
            out.append(
                replace(
                    declared,
                    name=f"{base}_{name}",
                    when={base: users},
                    help=f"{declared.help} ({item.name} unit {' / '.join(users)})".strip(),
                )
            )
        return out

    def _declare(self) -> list[Setting]:
        settings: list[Setting] = []
        for item in self.top:
            settings += self._item_settings(item, f"{self.prefix}.{item.name}", {})
        settings.append(self._depth)
        for i in range(self.max_depth):
            when = {self._depth.name: tuple(range(i + 1, self.max_depth + 1))} if i else {}
            for item in self.layer:
                settings += self._item_settings(item, self.layer_base(i, item.name), when)
        return settings

    def settings(self) -> list[Setting]:
        """The flat settings, in order (global items, depth, then layer by layer)."""
        return list(self._settings)

    @property
    def names(self) -> tuple[str, ...]:
        """Flat names of every setting this tree owns."""
        return tuple(self._by_name)

    def layer_base(self, index: int, item: str) -> str:
        """Flat name of a layer item, e.g. ``arch.layer0.mixer``."""
        return f"{self.prefix}.layer{index}.{item}"

    # --- tree -> flat ----------------------------------------------------------------
    def _validated(self, flat_name: str, value: Any, path: str) -> Any:
        try:
            return self._by_name[flat_name].validate(value)
        except SettingError as exc:
            raise SettingError(f"{path}: {exc}") from None

    def _expand_item(self, item: Item, value: Any, base: str, path: str) -> dict[str, Any]:
        if isinstance(item, Setting):
            return {base: self._validated(base, value, path)}
        if isinstance(value, str):
            unit_name, given = value, {}
        elif isinstance(value, Mapping):
            if self.TYPE_KEY not in value:
                raise SettingError(
                    f"{path}: the unit object has no {self.TYPE_KEY!r}; give the unit as "
                    f'{{"{self.TYPE_KEY}": "{item.default}", ...}} or just "{item.default}" '
                    f"(units: {', '.join(item.unit_names)})"
                )
            unit_name = value[self.TYPE_KEY]
            given = {k: v for k, v in value.items() if k != self.TYPE_KEY}
        else:
            raise SettingError(
                f"{path}={shorten(value)} is not a unit; give a unit name like {item.default!r} or "
                f'an object like {{"{self.TYPE_KEY}": "{item.default}", ...}} '
                f"(units: {', '.join(item.unit_names)})"
            )
        if unit_name not in item.unit_names:
            raise SettingError(
                f"{path}: unknown {item.name} unit {shorten(unit_name)}; "
                f"{did_you_mean(unit_name, item.unit_names)}"
                f"the known {item.name} units are {', '.join(item.unit_names)}"
            )
        unit = item.unit(unit_name)
        own = [s.name for s in unit.settings]
        out: dict[str, Any] = {base: unit_name}
        for key, setting_value in given.items():
            if key not in own:
                what = f"its settings are {', '.join(own)}" if own else "it has no settings"
                raise SettingError(
                    f"{path}: {item.name} unit {unit_name!r} has no setting {shorten(key)}; "
                    f"{did_you_mean(key, own)}{what}"
                )
            out[f"{base}_{key}"] = self._validated(f"{base}_{key}", setting_value, f"{path}.{key}")
        return out

    def _expand_layer(self, index: int, layer: Any) -> dict[str, Any]:
        path = f"{self.prefix}.{self.LAYERS_KEY}[{index}]"
        if not isinstance(layer, Mapping):
            raise SettingError(
                f"{path}={shorten(layer)} is not a layer; give an object of "
                f"{', '.join(item.name for item in self.layer)}"
            )
        items = {item.name: item for item in self.layer}
        out: dict[str, Any] = {}
        for key, value in layer.items():
            if key not in items:
                raise SettingError(
                    f"{path}: unknown layer item {shorten(key)}; {did_you_mean(key, items)}"
                    f"a layer has {', '.join(items)}"
                )
            out.update(
                self._expand_item(items[key], value, self.layer_base(index, key), f"{path}.{key}")
            )
        return out

    def expand(self, tree: Mapping[str, Any]) -> dict[str, Any]:
        """Flat settings of a (partial) tree; omitted items keep their defaults.

        Keys that are not items of the tree are read as nested flat settings
        (``{"layer0": {"mixer": "conv"}}`` is ``arch.layer0.mixer``), so the
        plain nested form of every schema still works.

        Raises:
            SettingError: naming the unit or item (by its path in the tree) and the rule broken.
        """
        if not isinstance(tree, Mapping):
            raise SettingError(
                f"{self.prefix}={shorten(tree)} is not a tree; give an object of its items "
                f"and {self.LAYERS_KEY!r}"
            )
        top = {item.name: item for item in self.top}
        out: dict[str, Any] = {}
        depth = None
        for key, value in tree.items():
            path = f"{self.prefix}.{key}"
            if key == self.LAYERS_KEY:
                if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
                    raise SettingError(
                        f"{path}={shorten(value)} is not a list; give a list of 1 to "
                        f"{self.max_depth} layer objects"
                    )
                if not 1 <= len(value) <= self.max_depth:
                    raise SettingError(
                        f"{path} has {len(value)} layers; a tree has 1 to {self.max_depth} "
                        "layers (rule: depth range); remove layers or add one"
                    )
                for i, layer in enumerate(value):
                    _merge(out, self._expand_layer(i, layer), self.prefix)
                if depth is not None and depth != len(value):
                    raise SettingError(
                        f"{self.prefix}.{self.DEPTH_KEY}={depth} disagrees with the {len(value)} "
                        f"layers given; omit {self.DEPTH_KEY} when giving {self.LAYERS_KEY}"
                    )
                depth = len(value)
                out[self._depth.name] = depth
            elif key == self.DEPTH_KEY:
                given = self._validated(self._depth.name, value, path)
                if depth is not None and depth != given:
                    raise SettingError(
                        f"{path}={given} disagrees with the {depth} layers given; omit "
                        f"{self.DEPTH_KEY} when giving {self.LAYERS_KEY}"
                    )
                depth = given
                out[self._depth.name] = depth
            elif key in top:
                _merge(out, self._expand_item(top[key], value, path, path), self.prefix)
            else:
                _merge(out, flatten_dotted({key: value}, prefix=f"{self.prefix}."), self.prefix)
        return out

    # --- flat -> tree ----------------------------------------------------------------
    def _collapse_item(
        self, item: Item, base: str, values: Mapping[str, Any], compact: bool
    ) -> Any:
        if isinstance(item, Setting):
            return values.get(base, self._by_name[base].default)
        unit_name = values.get(base, item.default)
        unit = item.unit(unit_name)
        if compact and not unit.settings:
            return unit_name
        out: dict[str, Any] = {self.TYPE_KEY: unit_name}
        for setting in unit.settings:
            flat = f"{base}_{setting.name}"
            out[setting.name] = values.get(flat, self._by_name[flat].default)
        return out

    def collapse(self, values: Mapping[str, Any], compact: bool = True) -> dict[str, Any]:
        """The tree of a metaprogram (missing settings read as defaults).

        Args:
            values: flat settings, e.g. a validated metaprogram.
            compact: write units without settings as their bare name (``"none"``)
                rather than ``{"type": "none"}``.
        """
        tree: dict[str, Any] = {}
        for item in self.top:
            base = f"{self.prefix}.{item.name}"
            tree[item.name] = self._collapse_item(item, base, values, compact)
        depth = values.get(self._depth.name, self._depth.default)
        tree[self.LAYERS_KEY] = [
            {
                item.name: self._collapse_item(item, self.layer_base(i, item.name), values, compact)
                for item in self.layer
            }
            for i in range(depth)
        ]
        return tree

    # --- description -------------------------------------------------------------------
    def _item_json(self, item: Item) -> dict[str, Any]:
        if isinstance(item, Setting):
            out = item.to_json()
            out.pop("name")
            return out
        return {
            "type": "unit",
            "default": item.default,
            "help": item.help,
            "units": {
                unit.name: {
                    "help": unit.help,
                    "settings": {
                        s.name: {k: v for k, v in s.to_json().items() if k != "name"}
                        for s in unit.settings
                    },
                }
                for unit in item.units
            },
        }

    def to_json(self) -> dict[str, Any]:
        """JSON-ready description of the tree form, for prompts and docs."""
        defaults = {s.name: s.default for s in self._settings}
        return {
            "key": self.prefix,
            "form": "unit_tree",
            "help": self.help,
            "top": {item.name: self._item_json(item) for item in self.top},
            "layers": {
                "min": 1,
                "max": self.max_depth,
                "default": self._depth.default,
                "items": {item.name: self._item_json(item) for item in self.layer},
            },
            "example": self.collapse(defaults),
            "rules": [
                "a unit is a name or an object with 'type' and that unit's settings only",
                (
                    f"'{self.LAYERS_KEY}' is a list of 1 to {self.max_depth} layers; "
                    "its length is the depth"
                ),
                "omitted items take their defaults",
            ],
        }


def _merge(out: dict[str, Any], new: Mapping[str, Any], prefix: str) -> None:
    for name, value in new.items():
        if name in out:
            raise SettingError(
                f"{name} is given twice in the {prefix!r} tree; give each setting once"
            )
        out[name] = value
