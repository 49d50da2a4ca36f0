"""Designer-reviewer loop for unit-tree architectures (``researchgym/SeqArch-v0``, ``CharLM-v0``).

Every step of a campaign runs an inner loop until one design is accepted:

1. a **designer** proposes a change to the current best unit tree (the tree
   form of :mod:`researchgym.spaces.units`): the built-in :class:`MutationDesigner`
   (one seeded edit, no network) or :class:`LLMDesigner` (any text-to-text model,
   shown the current tree, the unit catalogue and the designs tried so far, and
   replying with a JSON tree);
2. the **checker** (:func:`check_design`) validates the tree against the schema,
   rejects it when its estimated cost is over the parameter or compute budget,
   then builds the model and runs one forward and backward pass on a small batch
   of the task's training data (:func:`researchgym.engine.check_trainable`),
   rejecting it on any exception or a non-finite loss or gradient;
3. the **reviewer** trains the design briefly (``review_epochs`` epochs instead of
   ``train.epochs``) and accepts it when its review score comes within ``margin``
   of the best review score so far (the first reviewed design is accepted).

Only the accepted design goes back to the harness, which trains it in full with
``env.step`` (so the store records it like any step, under agent ``"designer"``).
When ``max_attempts`` proposals pass without one being accepted, the best
reviewed design of the round is accepted as a fallback, or, when none passed the
checker and the reviewer, the current best design is trained again; the reason
is recorded either way.

The current best design is the accepted one with the best full-run validation
score; the first design of a campaign is ``start`` (default: the schema's
defaults with the pins applied).

Every proposal, check and review is a :class:`DesignRecord`. The records of a
campaign are published atomically (temporary file, then rename) as
``<store>/designs/<campaign_id>.parquet`` after every change, so DuckDB reads them
in place; with ``store=False`` they are kept in memory only (``planner.records``)::

    SELECT design_id, round, change, check_status, review_score, accepted, full_score
    FROM read_parquet('datasets_store/designs/*.parquet') ORDER BY campaign_id, design_id

:func:`researchgym.planning.run_campaign` binds the planner to each campaign
(:meth:`DesignerPlanner.bind`, given a :class:`~researchgym.planning.CampaignContext`):
it checks against the env's budgets, reviews with the env's executor and records
into the env's store under the env's campaign ids, so accepted designs join the
``steps`` view on ``campaign_id`` and ``step``.
Unbound, it reads the task from the text observation and uses its own
``max_params``, ``max_train_flops``, ``max_train_steps``, ``device`` and ``store``,
and its own campaign ids; accepted designs then join ``steps`` on ``run_seed = steps.seed``.

    python -m agents.designer --env researchgym/SeqArch-v0 --steps 10 --set train.epochs=2
    researchgym rollout --agent designer --env researchgym/SeqArch-v0 --store runs/designs_store
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
import types
import typing
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa

from agents.llm_agent import extract_json, make_backend
from researchgym.engine import (
    BudgetError,
    Executor,
    InProcessExecutor,
    TaskRef,
    check_budget,
    check_trainable,
    estimate,
)
from researchgym.planning import (
    CampaignArgs,
    CampaignContext,
    PlannerError,
    SearchPlanner,
    arg,
    parse_args,
    run_from_args,
)
from researchgym.spaces import Categorical, Int, Schema, Setting, Slot, UnitTree
from researchgym.store import open_store

__all__ = [
    "DESIGNS_DIR",
    "RECORD_SCHEMA",
    "CheckResult",
    "DesignRecord",
    "Designer",
    "DesignerPlanner",
    "LLMDesigner",
    "MutationDesigner",
    "Proposal",
    "check_design",
    "describe_change",
]

#: Folder of the design records inside a store directory.
DESIGNS_DIR = "designs"


# --- records --------------------------------------------------------------------------------
@dataclass
class DesignRecord:
    """One proposal and what became of it: its check, its review and its full run.

    Attributes:
        campaign_id: the campaign (the env's when the planner is bound to it).
        task: the campaign's task.
        design_id: index of the record in its campaign.
        round: the env step the proposal was made for.
        attempt: index of the proposal within its round.
        parent_id: the design it changes (``None`` for the start design).
        designer: ``"start"``, ``"fallback"`` or the designer's name.
        change: what changed, e.g. ``"layers[1].mixer: attention -> conv"``.
        tree: the proposed tree (canonical, compact form once it validated).
        reply: a language model's raw reply.
        metaprogram: the settings it stands for (pins applied), once it validated.
        check_status: ``"ok"``, ``"malformed"`` (unreadable or against the schema),
            ``"duplicate"`` (proposed before), ``"over_budget"``, ``"error"`` (building
            or the forward/backward pass raised) or ``"non_finite"`` (loss or gradient).
        check_reason: why the check failed.
        estimated_params: parameters estimated before building.
        params: parameters of the built model.
        check_seconds: time the check took.
        review_status: status of the short run (``"ok"``, ``"diverged"``, ...).
        review_score: validation score of the short run.
        review_seconds: time the short run took.
        accepted: whether it was sent to the env for full training.
        decision: why it was accepted or rejected.
        step: the env step that trained it in full.
        run_seed: the training seed of that step (``steps.seed`` in the store).
        full_status: status of the full run.
        full_score: validation score of the full run.
    """

    campaign_id: str
    task: str
    design_id: int
    round: int
    attempt: int
    parent_id: int | None
    designer: str
    change: str
    tree: dict[str, Any] | None = None
    reply: str | None = None
    metaprogram: dict[str, Any] | None = None
    check_status: str = "malformed"
    check_reason: str | None = None
    estimated_params: int | None = None
    params: int | None = None
    check_seconds: float = 0.0
    review_status: str | None = None
    review_score: float | None = None
    review_seconds: float | None = None
    accepted: bool = False
    decision: str = ""
    step: int | None = None
    run_seed: int | None = None
    full_status: str | None = None
    full_score: float | None = None

    def to_row(self) -> dict[str, Any]:
        """The record as a row of :data:`RECORD_SCHEMA` (trees and settings as JSON text)."""
        row = dataclasses.asdict(self)
        for key in ("tree", "metaprogram"):
            row[key] = None if row[key] is None else json.dumps(row[key], default=str)
        return row


def _record_schema() -> pa.Schema:
    """One column per :class:`DesignRecord` field; dicts are stored as JSON text."""
    arrow = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}
    hints = typing.get_type_hints(DesignRecord)
    fields = []
    for f in dataclasses.fields(DesignRecord):
        kind = hints[f.name]
        if isinstance(kind, types.UnionType):  # X | None
            kind = next(k for k in typing.get_args(kind) if k is not type(None))
        fields.append(pa.field(f.name, arrow.get(kind, pa.string())))
    return pa.schema(fields)


#: Columns of ``<store>/designs/<campaign_id>.parquet``.
RECORD_SCHEMA = _record_schema()


def describe_change(before: Any, after: Any) -> str:
    """The differences of two JSON trees as ``path: old -> new`` items joined by ``"; "``.

    A unit replaced by another reads as one item (``layers[0].ffn: swiglu -> mlp``);
    items that ``after`` omits are not listed (an omitted item takes its default).
    """
    parts: list[str] = []
    _diff(before, after, "", parts)
    return "; ".join(parts) or "no change"


def _diff(a: Any, b: Any, path: str, out: list[str]) -> None:
    kind = UnitTree.TYPE_KEY
    if isinstance(a, Mapping) and isinstance(b, Mapping) and a.get(kind) == b.get(kind):
        for key in b:
            sub = f"{path}.{key}" if path else str(key)
            if key in a:
                _diff(a[key], b[key], sub, out)
            else:
                out.append(f"{sub} added: {_short(b[key])}")
    elif isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            if i >= len(a) or i >= len(b):
                out.append(f"{path}[{i}] {'removed' if i >= len(b) else 'added'}")
            else:
                _diff(a[i], b[i], f"{path}[{i}]", out)
    elif a != b:
        out.append(f"{path}: {_short(a)} -> {_short(b)}")


def _short(value: Any) -> str:
    if isinstance(value, Mapping) and UnitTree.TYPE_KEY in value:
        return str(value[UnitTree.TYPE_KEY])
    return json.dumps(value, default=str) if isinstance(value, (Mapping, list)) else str(value)


# --- the checker --------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckResult:
    """What the checker found (see :class:`DesignRecord` for the statuses)."""

    status: str
    reason: str | None = None
    estimated_params: int | None = None
    params: int | None = None
    seconds: float = 0.0


def check_design(
    metaprogram: Mapping[str, Any],
    *,
    task: TaskRef | str,
    limits: Mapping[str, float] | None = None,
    batch: int = 8,
    seed: int = 0,
) -> CheckResult:
    """Check that a validated unit-tree metaprogram fits the budget and trains one step.

    The cost is estimated first (no model built) and compared with ``limits``
    (``max_params``, ``max_train_flops``, ``max_train_steps``, as
    :func:`researchgym.engine.check_budget` takes them); then
    :func:`researchgym.engine.check_trainable` builds the model on the CPU and runs
    one forward and backward pass on the first ``batch`` training examples of ``task``
    (the task as the executor runs it).

    Returns:
        A :class:`CheckResult`: ``"ok"``, ``"over_budget"``, ``"error"`` or ``"non_finite"``.
    """
    started = time.perf_counter()
    try:
        cost = estimate(metaprogram, task=task)
        check_budget(cost, **(limits or {}))
    except BudgetError as exc:
        return CheckResult(
            "over_budget", str(exc), cost.params, seconds=time.perf_counter() - started
        )
    except Exception as exc:  # noqa: BLE001 - any failure rejects the design
        reason = f"estimating the design failed: {type(exc).__name__}: {exc}"
        return CheckResult("error", reason, seconds=time.perf_counter() - started)
    check = check_trainable(metaprogram, task=task, batch=batch, seed=seed)
    return CheckResult(
        check.status, check.error, cost.params, check.n_params, time.perf_counter() - started
    )


# --- designers --------------------------------------------------------------------------------
@dataclass
class Proposal:
    """A designer's answer.

    Attributes:
        tree: the proposed tree (a JSON object), or ``None`` when none could be read.
        change: what it changes; empty to have it described from the trees.
        reply: a language model's raw reply.
        error: why no tree could be read.
    """

    tree: dict[str, Any] | None
    change: str = ""
    reply: str | None = None
    error: str | None = None


@runtime_checkable
class Designer(Protocol):
    """What proposes design changes to :class:`DesignerPlanner`."""

    name: str

    def reset(
        self, arch: UnitTree, *, task: str, seed: int | None, fixed: Mapping[str, Any]
    ) -> None:
        """Start a campaign on ``task``; ``fixed`` settings are pinned (never worth editing)."""

    def propose(self, parent: Mapping[str, Any], history: Sequence[DesignRecord]) -> Proposal:
        """A change of ``parent`` (a full tree), knowing the campaign's records so far."""


def _neighbours(setting: Setting, value: Any) -> list[Any]:
    """Values one edit away: adjacent values of ordered numeric choices or integers,
    every other choice otherwise; other kinds of settings are not edited."""
    if isinstance(setting, Categorical):
        choices = list(setting.choices)
        ordered = all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices)
        if ordered and choices == sorted(choices):
            i = choices.index(value)
            return [choices[j] for j in (i - 1, i + 1) if 0 <= j < len(choices)]
        return [c for c in choices if c != value]
    if isinstance(setting, Int):
        return [v for v in (value - 1, value + 1) if setting.low <= v <= setting.high]
    return []


class MutationDesigner:
    """One seeded random edit of the parent tree per proposal.

    The kind of edit is drawn first, each kind equally likely among those
    possible: ``swap`` a layer's unit (mixer or ffn) for another, ``tune`` a
    setting of a layer's unit (heads, kernel, mult, ...), ``global`` (a model-wide
    item: width, position, residual, the norm unit or its placement), ``add`` a
    layer (a copy of one, after it) or ``remove`` one; then one edit of that kind.
    Ordered numeric values move to a neighbouring value (width 32 -> 48), other
    choices to any other; a unit swapped in keeps the settings it shares with the
    unit it replaces. Pinned settings are never edited.
    """

    name = "mutation"

    def reset(
        self, arch: UnitTree, *, task: str, seed: int | None, fixed: Mapping[str, Any]
    ) -> None:
        self.arch = arch
        self.rng = np.random.default_rng(seed)
        self.pinned = set(fixed)

    def propose(self, parent: Mapping[str, Any], history: Sequence[DesignRecord]) -> Proposal:
        edits = self.edits(parent)
        kinds = [kind for kind, options in edits.items() if options]
        if not kinds:
            return Proposal(None, error="every item of the tree is pinned; nothing is left to edit")
        options = edits[kinds[int(self.rng.integers(len(kinds)))]]
        change, tree = options[int(self.rng.integers(len(options)))]
        return Proposal(tree, change)

    def edits(self, tree: Mapping[str, Any]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
        """Every single edit of a full tree, by kind: ``(change, new tree)``, each tree once."""
        arch = self.arch
        layers = list(tree[arch.LAYERS_KEY])
        out: dict[str, list[tuple[str, dict[str, Any]]]] = {
            kind: [] for kind in ("swap", "tune", "global", "add", "remove")
        }
        for item in arch.top:
            for _, change, value in self._item_edits(
                item, tree[item.name], item.name, f"{arch.prefix}.{item.name}"
            ):
                out["global"].append((change, {**tree, item.name: value}))
        for i, layer in enumerate(layers):
            for item in arch.layer:
                path, base = f"{arch.LAYERS_KEY}[{i}].{item.name}", arch.layer_base(i, item.name)
                for kind, change, value in self._item_edits(item, layer[item.name], path, base):
                    new = [*layers[:i], {**layer, item.name: value}, *layers[i + 1 :]]
                    out[kind].append((change, {**tree, arch.LAYERS_KEY: new}))
        depth_pinned = any(
            name == f"{arch.prefix}.{arch.DEPTH_KEY}" or name.startswith(f"{arch.prefix}.layer")
            for name in self.pinned
        )
        if not depth_pinned:
            for i in range(len(layers)):
                if len(layers) < arch.max_depth:
                    new = [*layers[: i + 1], copy.deepcopy(layers[i]), *layers[i + 1 :]]
                    out["add"].append(
                        (
                            f"add a layer: a copy of layers[{i}] after it",
                            {**tree, arch.LAYERS_KEY: new},
                        )
                    )
                if len(layers) > 1:
                    new = [*layers[:i], *layers[i + 1 :]]
                    out["remove"].append((f"remove layers[{i}]", {**tree, arch.LAYERS_KEY: new}))
        seen: set[str] = set()  # equal layers give equal trees: keep the first edit of each
        for kind, options in out.items():
            unique = []
            for change, new in options:
                key = json.dumps(new, sort_keys=True, default=str)
                if key not in seen:
                    seen.add(key)
                    unique.append((change, new))
            out[kind] = unique
        return out

    def _item_edits(
        self, item: Setting | Slot, value: Any, path: str, base: str
    ) -> Iterator[tuple[str, str, Any]]:
        """``(kind, change, new value)`` of one item whose flat name is ``base``."""
        if isinstance(item, Setting):
            if base not in self.pinned:
                for new in _neighbours(item, value):
                    yield "tune", f"{path}: {value} -> {new}", new
            return
        unit = item.unit(value[UnitTree.TYPE_KEY])
        if base not in self.pinned:
            for other in item.units:
                if other.name != unit.name:
                    settings = {s.name: value.get(s.name, s.default) for s in other.settings}
                    yield (
                        "swap",
                        f"{path}: {unit.name} -> {other.name}",
                        {UnitTree.TYPE_KEY: other.name, **settings},
                    )
        for setting in unit.settings:
            if f"{base}_{setting.name}" not in self.pinned:
                for new in _neighbours(setting, value[setting.name]):
                    change = f"{path}.{setting.name}: {value[setting.name]} -> {new}"
                    yield "tune", change, {**value, setting.name: new}


DESIGN_INSTRUCTION = (
    "You are designing the architecture of a small causal sequence model. Below, as JSON: the "
    "task, the current best design (current_design, a tree of units), the catalogue of units and "
    "their settings (unit_catalogue), settings pinned by the user, and the designs tried so far "
    "with their check results, short-run review scores and full-run validation scores (higher is "
    "better). Propose one change to the current design that you expect to score higher; designs "
    "over the parameter budget are rejected. Reply with only the complete new tree as one JSON "
    "object, in the same form as current_design."
)


class LLMDesigner:
    """Asks a language model for a changed tree; unreadable replies become rejected proposals.

    The backend is chosen as :class:`agents.llm_agent.LLMAgent` chooses it (first match):
    ``generate`` (a callable ``prompt -> reply``), ``model`` (a local ``transformers``
    model directory or pipeline), ``url`` (an OpenAI-compatible endpoint; default
    ``$RESEARCHGYM_LLM_URL``, with ``key`` and ``model_name`` or their variables).

    Args:
        history: most recent records shown in the prompt.
        temperature, max_new_tokens, timeout: as for :class:`~agents.llm_agent.LLMAgent`.
    """

    name = "llm"

    def __init__(
        self,
        generate: Any = None,
        model: Any = None,
        url: str | None = None,
        key: str | None = None,
        model_name: str | None = None,
        history: int = 12,
        temperature: float = 0.7,
        max_new_tokens: int = 512,
        timeout: float = 60.0,
    ):
        if history < 0:
            raise PlannerError(f"history={history} must be the number of records shown (0 or more)")
        self._ask, self.backend = make_backend(
            generate, model, url, key, model_name,
            temperature=temperature, max_new_tokens=max_new_tokens, timeout=timeout,
        )  # fmt: skip
        self.history = history

    def reset(
        self, arch: UnitTree, *, task: str, seed: int | None, fixed: Mapping[str, Any]
    ) -> None:
        self.arch, self.task = arch, task
        self.pinned = {name: value for name, value in fixed.items() if name in arch.names}

    def prompt(self, parent: Mapping[str, Any], history: Sequence[DesignRecord]) -> str:
        """The user message: the task, the current tree, the catalogue and the records."""
        shown = history[-self.history :] if self.history else []
        payload = {
            "task": self.task,
            "current_design": parent,
            "unit_catalogue": self.arch.to_json(),
            "pinned_settings": self.pinned,
            "designs_so_far": [
                {
                    "design": r.design_id,
                    "parent": r.parent_id,
                    "change": r.change,
                    "check": r.check_status,
                    "check_reason": None if r.check_reason is None else r.check_reason[:300],
                    "params": r.params,
                    "review_score": r.review_score,
                    "accepted": r.accepted,
                    "full_score": r.full_score,
                }
                for r in shown
            ],
        }
        return json.dumps(payload, default=str)

    def propose(self, parent: Mapping[str, Any], history: Sequence[DesignRecord]) -> Proposal:
        messages = [
            {"role": "system", "content": DESIGN_INSTRUCTION},
            {"role": "user", "content": self.prompt(parent, history)},
        ]
        reply = self._ask(
            messages
        )  # an endpoint that fails raises EndpointError: no silent fallback
        try:
            value = json.loads(extract_json(reply))
        except json.JSONDecodeError as exc:
            return Proposal(
                None,
                reply=reply,
                error=f"the reply is not JSON ({exc.msg}); reply with only the tree",
            )
        if isinstance(value, dict) and isinstance(value.get(self.arch.prefix), dict):
            value = value[self.arch.prefix]  # {"arch": tree}
        if not isinstance(value, dict):
            return Proposal(
                None, reply=reply, error="the reply is not a JSON object; reply with only the tree"
            )
        return Proposal(value, reply=reply)


# --- the planner --------------------------------------------------------------------------------
def _unit_tree(schema: Schema) -> UnitTree:
    trees = [form for form in schema.forms if isinstance(form, UnitTree)]
    if not trees:
        raise PlannerError(
            "the designer edits unit-tree models, but this env's schema has none; "
            "use researchgym/SeqArch-v0 or researchgym/CharLM-v0"
        )
    return trees[0]


def _task_of(observation: Any) -> str:
    try:
        task = json.loads(observation)["task"]
    except (TypeError, ValueError, KeyError):
        raise PlannerError(
            "the designer reads the task from the text observation, got "
            f"{str(observation)[:80]!r}; make the env with interface='text'"
        ) from None
    return str(task)


class DesignerPlanner(SearchPlanner):
    """Proposes only designs that a designer made, the checker passed and the reviewer accepted.

    Args:
        designer: ``"mutation"`` (:class:`MutationDesigner`), ``"llm"``
            (:class:`LLMDesigner` with ``generate``/``model``/``url``/``key``/``model_name``)
            or any :class:`Designer`.
        max_attempts: proposals per step before falling back.
        review_epochs: epochs of the review run (at most the design's ``train.epochs``).
        margin: a review score this far below the best so far is still accepted.
        check_batch: training examples in the checker's forward/backward pass.
        start: the campaign's first tree (default: the schema's defaults).
        max_params, max_train_flops, max_train_steps: budgets of the checker when
            the planner is not bound to a campaign (bound, it takes the env's).
        store: where the records go when not bound (as the env's ``store=``:
            a directory, ``None`` for the default location, ``False`` for nowhere).
        device: device of the review runs when not bound.
        generate, model, url, key, model_name: the language model of ``designer="llm"``.

    Attributes:
        records: the :class:`DesignRecord` of every proposal of the current campaign.
        records_path: where they are published (``None`` when the store is off).
    """

    name = "designer"
    interface = "text"

    def __init__(
        self,
        designer: str | Designer = "mutation",
        *,
        max_attempts: int = 4,
        review_epochs: int = 1,
        margin: float = 0.01,
        check_batch: int = 8,
        start: Mapping[str, Any] | None = None,
        max_params: int | None = None,
        max_train_flops: float | None = None,
        max_train_steps: int | None = None,
        store: Any = None,
        device: str = "auto",
        generate: Any = None,
        model: Any = None,
        url: str | None = None,
        key: str | None = None,
        model_name: str | None = None,
    ):
        counts = {
            "max_attempts": max_attempts,
            "review_epochs": review_epochs,
            "check_batch": check_batch,
        }
        for name, value in counts.items():
            if not isinstance(value, int) or value < 1:
                raise PlannerError(f"{name}={value!r} must be an integer >= 1")
        if not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin >= 0):
            raise PlannerError(
                f"margin={margin!r} must be a number >= 0 (0: only reviews as good as the best)"
            )
        llm = {
            "generate": generate,
            "model": model,
            "url": url,
            "key": key,
            "model_name": model_name,
        }
        if designer == "llm":
            designer = LLMDesigner(**llm)
        elif designer == "mutation":
            given = [name for name, value in llm.items() if value is not None]
            if given:
                raise PlannerError(
                    f"{', '.join(given)} configure designer='llm'; pass designer='llm' too"
                )
            designer = MutationDesigner()
        elif not isinstance(designer, Designer):
            raise PlannerError(
                f"designer={designer!r} is not 'mutation', 'llm' or an object with name, "
                "reset() and propose() (see Designer)"
            )
        if start is not None and not isinstance(start, Mapping):
            raise PlannerError(
                f"start={start!r} must be a tree: a JSON object like the unit tree's example"
            )
        self.designer: Designer = designer
        self.max_attempts, self.review_epochs = max_attempts, review_epochs
        self.margin, self.check_batch = float(margin), check_batch
        self.start = None if start is None else dict(start)
        limits = {
            "max_params": max_params,
            "max_train_flops": max_train_flops,
            "max_train_steps": max_train_steps,
        }
        self.own_limits = {name: value for name, value in limits.items() if value is not None}
        self.own_store = store
        self.own_executor: Executor = InProcessExecutor(device=device)
        self.context: CampaignContext | None = None
        self.task: str | None = None  # the campaign's task, by name
        self.task_ref: TaskRef | None = None  # the task as the checker and the executor take it
        self.records: list[DesignRecord] = []
        self.records_path: Path | None = None

    def bind(self, context: CampaignContext) -> None:
        """Design for the campaign of ``context``: check against its budgets, review with its
        executor and record into its store under its campaign id (instead of this planner's
        own settings)."""
        self.context = context

    def reset(
        self, schema: Schema, *, seed: int | None = None, fixed: Mapping[str, Any] | None = None
    ) -> None:
        super().reset(schema, seed=seed, fixed=fixed)
        self.arch = _unit_tree(schema)
        self.start_tree = (
            self.start
            if self.start is not None
            else self.arch.collapse(schema.validate(self.fixed))
        )
        try:
            self._design(self.start_tree)
        except (ValueError, TypeError) as exc:
            raise PlannerError(f"start tree: {exc}") from None
        context = self.context
        if context is not None:
            self.limits, self.executor = dict(context.limits), context.executor
            self.campaign_id, self.store = context.campaign_id, context.store
            self.task, self.task_ref = context.task, context.task_ref
        else:
            self.limits, self.executor = dict(self.own_limits), self.own_executor
            self.campaign_id = uuid.uuid4().hex
            self.store = None if self.own_store is False else open_store(self.own_store)
            self.task, self.task_ref = None, None
        self.records_path = (
            None
            if self.store is None
            else self.store.path / DESIGNS_DIR / f"{self.campaign_id}.parquet"
        )
        self.records = []
        self._rounds = 0
        self._seen: dict[str, int] = {}
        self._pending: DesignRecord | None = None

    # --- the inner loop ---------------------------------------------------------------------
    def propose(self, observation: Any) -> dict[str, Any]:
        round_, self._rounds = self._rounds, self._rounds + 1
        if round_ == 0:
            if self.task is None:  # not bound: the task named by the observation
                self.task = _task_of(observation)
                self.task_ref = TaskRef(self.task)
            self.designer.reset(self.arch, task=self.task, seed=self.seed, fixed=self.fixed)
        base = self._best() or (self.records[0] if self.records else None)
        for attempt in range(self.max_attempts):
            if base is None:  # the campaign's first proposal
                origin = "the given tree" if self.start is not None else "the schema's defaults"
                start = Proposal(self.start_tree, f"start: {origin}")
                record = base = self._consider(start, round_, attempt, None, "start")
            else:
                tree = self.arch.collapse(base.metaprogram, compact=False)
                proposal = self.designer.propose(tree, list(self.records))
                record = self._consider(proposal, round_, attempt, base, self.designer.name, tree)
            if record.accepted:
                break
        else:
            record = self._fall_back(round_, base)
        self._pending = record
        self._save()
        return dict(record.metaprogram)

    def observe(
        self, metaprogram: dict[str, Any] | None, reward: float, info: Mapping[str, Any]
    ) -> None:
        record, self._pending = self._pending, None
        if record is None:
            return
        record.step, record.run_seed = record.round, info.get("seed")
        record.full_status = info.get("status")
        if record.full_status == "ok":
            record.full_score = info["metrics"].get("score")
        self._save()

    def _best(self) -> DesignRecord | None:
        """The accepted design with the best full-run score (``None`` before any)."""
        scored = [r for r in self.records if r.full_score is not None]
        return max(scored, key=lambda r: r.full_score) if scored else None

    def _design(self, tree: Mapping[str, Any]) -> dict[str, Any]:
        """The metaprogram of a tree, pins applied; raises ``SettingError`` or ``TypeError``."""
        return self.schema.validate({**self.schema.flatten({self.arch.prefix: tree}), **self.fixed})

    def _consider(
        self,
        proposal: Proposal,
        round_: int,
        attempt: int,
        parent: DesignRecord | None,
        designer: str,
        parent_tree: Mapping[str, Any] | None = None,
    ) -> DesignRecord:
        """Record a proposal, check it, and review it when it passed the check."""
        record = DesignRecord(
            self.campaign_id, self.task, len(self.records), round_, attempt,
            None if parent is None else parent.design_id, designer, proposal.change,
            tree=proposal.tree, reply=proposal.reply,
        )  # fmt: skip
        self.records.append(record)
        self._check(record, proposal)
        if record.check_status == "ok":
            self._review(record)
        if not record.change:
            after = proposal.tree
            if record.metaprogram is not None:
                after = self.arch.collapse(record.metaprogram, compact=False)
            record.change = "no tree" if after is None else describe_change(parent_tree, after)
        self._save()
        return record

    def _check(self, record: DesignRecord, proposal: Proposal) -> None:
        if proposal.tree is None:
            record.check_reason = proposal.error or "the designer gave no tree"
            record.decision = "rejected: no tree could be read from the proposal"
            return
        try:
            metaprogram = self._design(proposal.tree)
        except (ValueError, TypeError) as exc:  # SettingError is a ValueError
            record.check_reason = str(exc)
            record.decision = "rejected by the checker: the tree does not fit the schema"
            return
        record.metaprogram, record.tree = metaprogram, self.arch.collapse(metaprogram)
        key = json.dumps(metaprogram, sort_keys=True, default=str)
        if key in self._seen:
            record.check_status = "duplicate"
            record.check_reason = f"the same design as design {self._seen[key]}"
            record.decision = "rejected: proposed before"
            return
        self._seen[key] = record.design_id
        check = check_design(
            metaprogram, task=self.task_ref, limits=self.limits, batch=self.check_batch,
            seed=int(self.rng.integers(2**31 - 1)),
        )  # fmt: skip
        record.check_status, record.check_reason = check.status, check.reason
        record.estimated_params, record.params = check.estimated_params, check.params
        record.check_seconds = check.seconds
        if check.status != "ok":
            record.decision = f"rejected by the checker: {check.status}"

    def _review(self, record: DesignRecord) -> None:
        """Train briefly; accept when the score comes within ``margin`` of the best review."""
        best = max(
            (r.review_score for r in self.records if r.review_score is not None), default=None
        )
        full = record.metaprogram
        short = {**full, "train.epochs": min(self.review_epochs, full["train.epochs"])}
        seed = int(self.rng.integers(2**31 - 1))
        result = self.executor.run(short, task=self.task_ref, seed=seed)
        record.review_status, record.review_score = result.status, result.score
        record.review_seconds = result.seconds
        score = result.score
        if score is None:
            error = (result.error or "").partition("\n")[0]
            record.decision = (
                f"rejected by the reviewer: the short run ended {result.status!r} {error}".strip()
            )
        elif best is None:
            record.accepted = True
            record.decision = "accepted: the campaign's first reviewed design"
        elif score >= best - self.margin:
            record.accepted = True
            record.decision = (
                f"accepted: review score {score:.4f} is within {self.margin:g} of the best so far "
                f"({best:.4f})"
            )
        else:
            record.decision = (
                f"rejected by the reviewer: review score {score:.4f} is below the best so far "
                f"({best:.4f}) minus the margin {self.margin:g}"
            )

    def _fall_back(self, round_: int, base: DesignRecord) -> DesignRecord:
        """No proposal of the round was accepted: take the round's best review, else train
        ``base`` (the current best design) again."""
        tried = f"none of the {self.max_attempts} proposals of this round was accepted"
        reviewed = [r for r in self.records if r.round == round_ and r.review_score is not None]
        if reviewed:
            chosen = max(reviewed, key=lambda r: r.review_score)
            chosen.accepted = True
            chosen.decision = (
                f"accepted as fallback: {tried}; it has the round's best review score "
                f"({chosen.review_score:.4f})"
            )
            return chosen
        if base.check_status != "ok":
            reasons = "; ".join(
                f"design {r.design_id}: {r.check_status} ({r.check_reason or r.decision})"
                for r in self.records
            )
            raise PlannerError(
                f"no design passed the checker and the reviewer, and none did before: {reasons}; "
                "start from a smaller or simpler tree (start=...) or raise the env's budgets"
            )
        record = dataclasses.replace(
            base, design_id=len(self.records), round=round_, attempt=self.max_attempts,
            parent_id=base.design_id, designer="fallback", reply=None,
            change=f"repeat of design {base.design_id}",
            check_reason=f"checked as design {base.design_id}", check_seconds=0.0,
            review_status=None, review_score=None, review_seconds=None, accepted=True,
            decision=f"accepted as fallback: {tried}, and none passed the checker and the "
            "reviewer; the current best design trains again",
            step=None, run_seed=None, full_status=None, full_score=None,
        )  # fmt: skip
        self.records.append(record)
        return record

    def _save(self) -> None:
        """Publish the campaign's records atomically (nothing when the store is off)."""
        if self.store is None:
            return
        table = pa.Table.from_pylist([r.to_row() for r in self.records], schema=RECORD_SCHEMA)
        self.store.write_table(DESIGNS_DIR, self.campaign_id, table)


@dataclass
class Args(CampaignArgs):
    """Designer-reviewer loop over the unit-tree architectures of a ResearchGym env."""

    env: str = arg(
        "researchgym/SeqArch-v0",
        "env to run campaigns on (a unit-tree env: SeqArch-v0 or CharLM-v0)",
    )
    designer: str = arg(
        "mutation",
        "who proposes changes: mutation (seeded edits) or llm ($RESEARCHGYM_LLM_URL or --model)",
    )
    max_attempts: int = arg(4, "proposals per step before falling back to the round's best review")
    review_epochs: int = arg(1, "epochs of the short review run")
    margin: float = arg(0.01, "accept a review score this far below the best so far")
    model: str | None = arg(None, "local transformers model directory for --designer llm")


if __name__ == "__main__":
    args = parse_args(Args)
    planner = DesignerPlanner(  # bound to each campaign: the env's budgets, executor and store
        args.designer, max_attempts=args.max_attempts, review_epochs=args.review_epochs,
        margin=args.margin, model=args.model,
    )  # fmt: skip
    run_from_args(planner, args)
