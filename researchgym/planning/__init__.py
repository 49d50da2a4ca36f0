"""Planners and the campaign loop that runs them.

- :mod:`~researchgym.planning.protocol`: the :class:`Planner` protocol, the
  :class:`SearchPlanner` base, :class:`IndependentProposals`, :class:`FailedAsWorst`
  and :func:`validate_pins`;
- :mod:`~researchgym.planning.registry`: planners by name (:func:`make_planner`);
- :mod:`~researchgym.planning.context`: the :class:`CampaignContext` given to
  planners that define ``bind(context)``;
- :mod:`~researchgym.planning.campaign`: :func:`run_campaign`, :func:`rollout`
  and :func:`optimize`;
- :mod:`~researchgym.planning.args`: command lines of one-file agents.
"""

from researchgym.planning.args import (
    CampaignArgs,
    TrainArgs,
    arg,
    parse_args,
    run_from_args,
    training_kwargs,
)
from researchgym.planning.campaign import (
    CampaignResult,
    StepRecord,
    best_per_task,
    optimize,
    rollout,
    run_campaign,
    run_campaigns,
)
from researchgym.planning.context import CampaignContext, campaign_context
from researchgym.planning.protocol import (
    FailedAsWorst,
    IndependentProposals,
    Planner,
    PlannerError,
    SearchPlanner,
    validate_pins,
)
from researchgym.planning.registry import (
    PLANNERS,
    PlannerSpec,
    check_options,
    make_planner,
    make_trainer,
    planner_names,
    register_planner,
)

__all__ = [
    "PLANNERS",
    "CampaignArgs",
    "CampaignContext",
    "CampaignResult",
    "FailedAsWorst",
    "IndependentProposals",
    "Planner",
    "PlannerError",
    "PlannerSpec",
    "SearchPlanner",
    "StepRecord",
    "TrainArgs",
    "arg",
    "best_per_task",
    "campaign_context",
    "check_options",
    "make_planner",
    "make_trainer",
    "optimize",
    "parse_args",
    "planner_names",
    "register_planner",
    "rollout",
    "run_campaign",
    "run_campaigns",
    "run_from_args",
    "training_kwargs",
    "validate_pins",
]
