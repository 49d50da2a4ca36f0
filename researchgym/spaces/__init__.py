"""Settings schema: one declaration per setting, every derived form."""

from researchgym.spaces.schema import NestedForm, Schema, flatten_dotted
from researchgym.spaces.settings import Bool, Categorical, Float, Int, Setting, SettingError
from researchgym.spaces.units import Slot, Unit, UnitTree

__all__ = [
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
