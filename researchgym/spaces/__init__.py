"""Settings schema: one declaration per setting, every derived form."""

from researchgym.spaces.schema import Schema, flatten_dotted
from researchgym.spaces.settings import Bool, Categorical, Float, Int, Setting, SettingError

__all__ = [
    "Bool",
    "Categorical",
    "Float",
    "Int",
    "Schema",
    "Setting",
    "SettingError",
    "flatten_dotted",
]
