"""ResearchGym: machine-learning research as a Gymnasium environment.

Importing the package registers its envs, e.g. ``gymnasium.make("researchgym/Digits-v0")``
(``gymnasium.register_envs(researchgym)`` makes that import explicit). ``ENV_IDS`` lists
the envs that work out of the box, ``FILE_ENV_IDS`` those that read dataset files from a
directory you give (``data_dir=...``) and ``FAST_ENV_IDS`` those answered from recorded runs.

The nouns users need are attributes of the package, imported on first use so that
``import researchgym`` stays cheap (no torch, DuckDB or Optuna until needed)::

    import researchgym

    env = researchgym.ResearchEnv("digits", store=False)
    planner = researchgym.make_planner("tpe")
    result = researchgym.run_campaign(env, planner, seed=0)
    store = researchgym.open_store("runs/store")
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from researchgym.envs import ENV_IDS, FAST_ENV_IDS, FILE_ENV_IDS, register_envs
from researchgym.errors import ResearchGymError

if TYPE_CHECKING:
    from researchgym.envs.research_env import ResearchEnv
    from researchgym.planning import (
        CampaignResult,
        Planner,
        PlannerError,
        make_planner,
        optimize,
        planner_names,
        register_planner,
        run_campaign,
    )
    from researchgym.spaces import Schema, SettingError
    from researchgym.store import Store, open_store

try:
    __version__ = version("researchgym")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

register_envs()

# public name -> module that defines it, imported on first access
_LAZY = {
    "ResearchEnv": "researchgym.envs.research_env",
    "Schema": "researchgym.spaces",
    "SettingError": "researchgym.spaces",
    "Store": "researchgym.store",
    "open_store": "researchgym.store",
    "CampaignResult": "researchgym.planning",
    "Planner": "researchgym.planning",
    "PlannerError": "researchgym.planning",
    "make_planner": "researchgym.planning",
    "optimize": "researchgym.planning",
    "planner_names": "researchgym.planning",
    "register_planner": "researchgym.planning",
    "run_campaign": "researchgym.planning",
}

__all__ = [
    "ENV_IDS",
    "FAST_ENV_IDS",
    "FILE_ENV_IDS",
    "CampaignResult",
    "Planner",
    "PlannerError",
    "ResearchEnv",
    "ResearchGymError",
    "Schema",
    "SettingError",
    "Store",
    "__version__",
    "make_planner",
    "open_store",
    "optimize",
    "planner_names",
    "register_planner",
    "run_campaign",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'researchgym' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
