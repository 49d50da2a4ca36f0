"""Recording: the one place that turns an env step into a row of the trajectory store.

A :class:`StepRecorder` belongs to a :class:`~researchgym.envs.research_env.ResearchEnv`:
the env starts a campaign on it at every reset and records every step. It
builds the row the store's schema describes (``researchgym.store.schema``), plus
the task's features, the env whose training produced the metrics and the env's
arguments that define the campaign (so the env can be made again), and keeps
every text column bounded: an action or an error longer than
:data:`MAX_STORED_CHARS` is stored cut, saying how long it was.

A recorder given no store records in the default one (``$RESEARCHGYM_STORE``, else
``datasets_store/`` of the working directory), resolved when the recorder is made
and announced once per process and directory on the ``researchgym`` logger.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from researchgym.envs.interfaces import CampaignView
from researchgym.errors import ConfigError, StateError, shorten

if TYPE_CHECKING:
    from researchgym.engine import Result

__all__ = [
    "MAX_CAMPAIGN_ID_CHARS",
    "MAX_STORED_CHARS",
    "StepRecorder",
    "check_campaign_id",
    "recorded_horizon",
]

#: Longest action (as JSON) or error a row stores; longer ones are cut to about this
#: length, with their original length noted.
MAX_STORED_CHARS = 10_000

logger = logging.getLogger(__name__)

#: Default store directories already announced by this process.
_ANNOUNCED: set[Path] = set()

#: Longest campaign id a caller may choose (``reset(options={"campaign_id": ...})``).
MAX_CAMPAIGN_ID_CHARS = 128
_CAMPAIGN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")


def check_campaign_id(campaign_id: Any) -> str:
    """``campaign_id`` if it is a usable id: 1 to 128 letters, digits and ``._:-``.

    Raises:
        ConfigError: another value, saying what an id may hold.
    """
    if (
        not isinstance(campaign_id, str)
        or len(campaign_id) > MAX_CAMPAIGN_ID_CHARS
        or not _CAMPAIGN_ID.fullmatch(campaign_id)
    ):
        raise ConfigError(
            f"campaign_id={shorten(campaign_id)} is not a usable id; give a string of 1 to "
            f"{MAX_CAMPAIGN_ID_CHARS} letters, digits and '._:-' starting with a letter or a "
            "digit, or leave it out for a fresh random id"
        )
    return campaign_id


def recorded_horizon(row: Mapping[str, Any]) -> int | None:
    """The ``max_epochs`` of the forkable env that recorded a store row, the horizon of
    its run's learning-rate schedule; ``None`` for a row of an env that is not forkable
    (a run's schedule then spans its own ``train.epochs``)."""
    kwargs = json.loads(row.get("env_kwargs") or "{}")
    return kwargs.get("max_epochs") if kwargs.get("forkable") else None


class StepRecorder:
    """Appends one store row per env step.

    Args:
        store: where rows go: a path, ``None`` for the default location
            (``RESEARCHGYM_STORE`` or ``datasets_store/``, resolved now and logged once
            per process and directory), or ``False`` for nowhere. Opened on first use.
        env_id: the env recorded with every row.
        source_env_id: the env whose training produced the metrics (Replay-v0 and
            Surrogate-v0 answer from another env's runs); defaults to ``env_id``.
        observe: the flat observation of a campaign, stored before and after each
            step (the same whatever the env's interface).
        env_kwargs: the env's arguments that define its campaigns (budget, reward,
            tasks, ...; no paths and no interface), stored with each step as JSON, so
            ``gymnasium.make(env_id, **env_kwargs)`` makes the same env.
    """

    def __init__(
        self,
        store: Any,
        *,
        env_id: str,
        source_env_id: str | None = None,
        observe: Callable[[CampaignView], np.ndarray],
        env_kwargs: Mapping[str, Any] | None = None,
    ):
        self.env_id = env_id
        self.source_env_id = source_env_id or env_id
        self.agent = ""
        self.campaign_id = ""
        self.episode_seed: int | None = None
        #: ``run_id`` of the latest recorded step (``None`` before one, or with ``store=False``).
        self.last_run_id: str | None = None
        self._store_arg = _default_store() if store is None else store
        self._store: Any = None
        self._observe = observe
        self._env_kwargs = json.dumps(_plain(dict(env_kwargs or {})), sort_keys=True)
        self._view: CampaignView | None = None
        self._task_features = "{}"
        self._obs_before: list[float] | None = None

    @property
    def enabled(self) -> bool:
        """Whether steps are recorded (``False`` with ``store=False``)."""
        return self._store_arg is not False

    @property
    def store(self) -> Any:
        """The store rows go to (opened on first use), or ``None`` with ``store=False``."""
        if not self.enabled:
            return None
        if self._store is None:
            from researchgym.store import open_store

            self._store = open_store(self._store_arg)
        return self._store

    def start_campaign(
        self, view: CampaignView, *, campaign_id: str, agent: str, episode_seed: int | None
    ) -> None:
        """Record the following steps as steps of a new campaign.

        Args:
            view: the campaign's state; the env updates it before each :meth:`record`.
            campaign_id: the campaign's id (checked by the env: see :func:`check_campaign_id`).
            agent: who acts in this campaign (recorded with every step).
            episode_seed: the seed ``reset`` was given (``None`` when none), recorded
                with every step beside the step's training seed.
        """
        self._view, self.campaign_id, self.agent = view, campaign_id, agent
        self.episode_seed = episode_seed
        if self.enabled:
            self._task_features = json.dumps(view.task_features)
            self._obs_before = self._observe(view).tolist()

    def record(
        self,
        *,
        action: Any,
        metaprogram: dict[str, Any] | None,
        action_flat: np.ndarray | None,
        result: Result,
        reward: float,
        terminated: bool,
        truncated: bool = False,
        seed: int,
        started_at: datetime,
        verb: str | None = None,
        parent_run_id: str | None = None,
    ) -> None:
        """Append the row of the campaign's latest step (already counted in its view).

        Args:
            action: the action as given.
            metaprogram: the settings it stood for (``None`` for a malformed action).
            action_flat: the metaprogram's flat encoding (``None`` for a malformed action).
            result: the step's :class:`~researchgym.engine.Result`.
            reward: the step's reward.
            terminated: whether the step ended the campaign.
            truncated: whether the step cut the campaign short (its cost budget is spent).
            seed: the step's training seed.
            started_at: when the step began.
            verb: what the step did (``"new"``, ``"continue"``, ``"fork"``, ``"stop"``;
                ``None`` for a malformed action).
            parent_run_id: ``run_id`` of the run a continue or fork started from.
        """
        if not self.enabled:
            return
        view = self._view
        if view is None:
            raise StateError("start_campaign() must come before record()")
        obs_after = self._observe(view).tolist()
        run_id = uuid.uuid4().hex
        self.store.append(
            {
                "campaign_id": self.campaign_id,
                "step": view.steps_done - 1,
                "run_id": run_id,
                "env_id": self.env_id,
                "env_version": _version_of(self.env_id),
                "source_env_id": self.source_env_id,
                "task": view.task,
                "task_features": self._task_features,
                "env_kwargs": self._env_kwargs,
                "agent": self.agent,
                "seed": seed,
                "episode_seed": self.episode_seed,
                "metaprogram": json.dumps(metaprogram),
                "action": _action_json(action),
                "obs": self._obs_before,
                "next_obs": obs_after,
                "action_flat": None if action_flat is None else action_flat.tolist(),
                "val_score": result.score,
                "val_metrics": json.dumps(result.val_metrics),
                "test_metrics": json.dumps(result.test_metrics),
                "curve": json.dumps(result.curve),
                "reward": reward,
                "terminated": terminated,
                "truncated": truncated,
                "cost_seconds": result.seconds,
                "cost_samples": result.samples,
                "n_params": result.n_params or None,
                "status": result.status,
                "error": None if result.error is None else _cut(result.error),
                "answered_by": None
                if result.answered_by is None
                else json.dumps(result.answered_by),
                "verb": verb,
                "parent_run_id": parent_run_id,
                "fidelity": result.epochs,
                "started_at": started_at,
                "finished_at": datetime.now(UTC),
            }
        )
        self.last_run_id = run_id
        self._obs_before = obs_after

    def close(self) -> None:
        """Close the store if this recorder opened it (a store passed in stays open)."""
        if self._store is not None and self._store is not self._store_arg:
            self._store.close()
        self._store = None


def _default_store() -> Path:
    """The default store directory, announced on the logger the first time this process uses it."""
    from researchgym.store import ENV_VAR, resolve_store_path

    path = resolve_store_path(None)
    if path not in _ANNOUNCED:
        _ANNOUNCED.add(path)
        source = f"${ENV_VAR}" if os.environ.get(ENV_VAR) else "the working directory's default"
        logger.warning(
            "recording every step in %s (%s); record elsewhere with store=PATH (--store PATH) "
            "or $%s, or nothing with store=False (--store none)",
            path,
            source,
            ENV_VAR,
        )
    return path


def _version_of(env_id: str) -> int:
    _, _, version = env_id.rpartition("-v")
    return int(version) if version.isdigit() else 0


def _cut(text: str) -> str:
    """``text``, or its start and its length when longer than :data:`MAX_STORED_CHARS`."""
    if len(text) <= MAX_STORED_CHARS:
        return text
    return f"{text[: MAX_STORED_CHARS - 40]}... ({len(text):,} characters)"


def _json_string(text: str) -> str:
    """``text`` as a JSON string of at most :data:`MAX_STORED_CHARS` characters.

    Escapes (``\\"``, ``\\u0000``) lengthen the JSON, so the text is cut until it fits.
    """
    keep = MAX_STORED_CHARS - 40
    out = json.dumps(text)
    while len(out) > MAX_STORED_CHARS:
        out = json.dumps(f"{text[:keep]}... ({len(text):,} characters)")
        keep //= 2
    return out


def _plain(x: Any) -> Any:
    """``x`` with numpy arrays and scalars made Python lists and numbers."""
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    return x


def _action_json(action: Any) -> str:
    """The action as given, as JSON (anything else as its repr), bounded in length.

    A text action longer than :data:`MAX_STORED_CHARS` is stored cut; any other
    action whose JSON is that long is stored as a JSON string of its JSON, cut.
    """
    if isinstance(action, str):
        return _json_string(action)
    try:
        text = json.dumps(_plain(action))
    except (TypeError, ValueError, RecursionError):  # not JSON, or nested too deep for it
        return _json_string(shorten(action, MAX_STORED_CHARS))
    return text if len(text) <= MAX_STORED_CHARS else _json_string(text)
