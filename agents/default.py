"""The "default settings" baseline: every setting at its declared default, every step.

What a researcher gets without searching at all. Steps differ only by their
training seed, so a campaign measures the defaults' seed-to-seed spread.

    python -m agents.default --env researchgym/Tabular-v0 --steps 3
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from researchgym.planning import CampaignArgs, SearchPlanner, parse_args, run_from_args


@dataclass
class Args(CampaignArgs):
    """Train the default metaprogram of a ResearchGym env (plus any pinned settings)."""


class DefaultPlanner(SearchPlanner):
    """Proposes the schema's defaults (with ``settings`` on top, if given) at every step.

    Args:
        settings: settings to use instead of their defaults, e.g. a published recipe.
    """

    name = "default"

    def __init__(self, settings: Mapping[str, Any] | None = None):
        self.settings = dict(settings or {})

    def propose(self, observation: Any) -> dict[str, Any]:
        return self.schema.validate({**self.settings, **self.fixed})


if __name__ == "__main__":
    args = parse_args(Args)
    run_from_args(DefaultPlanner(), args)
