"""Settings schema: one declaration per setting, every derived form."""

from researchgym.spaces.schema import (
    MAX_JSON_CHARS,
    MAX_NESTING,
    NestedForm,
    Schema,
    flatten_dotted,
)
from researchgym.spaces.settings import Bool, Categorical, Float, Int, Setting, SettingError
from researchgym.spaces.units import Slot, Unit, UnitTree

__all__ = [
    "MAX_JSON_CHARS",
    "MAX_NESTING",
    "Bool",
    "Categorical",
    "Float",
    "Int",
    "NestedForm",
    "Schema",
    "Setting",
    "SettingError",
    "Slot",
    "Unit",
    "UnitTree",
    "flatten_dotted",
]
