"""Interfaces: the same campaign seen through dict, flat or text spaces.

An interface owns the action and observation spaces, turns an action into a
metaprogram and renders the campaign's state as an observation. Any malformed
action, however large, deep or oddly typed, raises :class:`SettingError` with a
message of at most :data:`~researchgym.errors.MAX_ERROR_CHARS` characters.
"""

from __future__ import annotations

import json
import math
import string
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium import spaces

from researchgym.errors import ConfigError, did_you_mean, shorten
from researchgym.spaces import Categorical, Schema, SettingError

__all__ = ["INTERFACES", "CampaignView", "Interface", "make_interface"]

TASK_FEATURES = ("n_train", "n_features", "n_classes", "is_regression", "is_image")
OBSERVATION_KEYS = (
    "task",
    "history_settings",
    "history_scores",
    "history_mask",
    "best_score",
    "budget_left",
)
TEXT_CHARSET = frozenset(string.printable) - frozenset("\t\r\x0b\x0c")


@dataclass
class CampaignView:
    """What an observation is made from: the task and the steps so far."""

    task: str
    task_description: str
    task_features: dict[str, float]
    budget: int
    steps_done: int = 0
    best_score: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # settings, score, status

    @property
    def budget_left(self) -> int:
        return self.budget - self.steps_done


class Interface:
    """Base class; see :class:`DictInterface`, :class:`FlatInterface`, :class:`TextInterface`."""

    name = ""

    def __init__(self, schema: Schema, history: int):
        self.schema = schema
        self.history = history

    action_space: spaces.Space
    observation_space: spaces.Space

    def parse_action(self, action: Any) -> dict[str, Any]:
        """The validated metaprogram of an action.

        Raises:
            SettingError: the action is malformed; the message names the problem,
                quotes the value shortened and says what to send instead.
        """
        raise NotImplementedError

    def to_action(self, metaprogram: dict[str, Any]) -> Any:
        """The action of this interface that stands for a metaprogram."""
        raise NotImplementedError

    def as_recorded(self, action: Any) -> Any:
        """The action as given, in a form whose JSON reads back the same way (never raises)."""
        return action

    def observe(self, view: CampaignView) -> Any:
        raise NotImplementedError


class DictInterface(Interface):
    """Canonical gymnasium ``Dict`` spaces: one entry per setting."""

    name = "dict"

    def __init__(self, schema: Schema, history: int):
        super().__init__(schema, history)
        n = len(schema)
        self.action_space = schema.space()
        # In the dict space's key order (sorted), which spaces.flatten follows.
        boxes = sorted(
            {
                "task": spaces.Box(0.0, 20.0, shape=(len(TASK_FEATURES),), dtype=np.float32),
                "history_settings": spaces.Box(-1.0, 1.0, shape=(history, n), dtype=np.float32),
                "history_scores": spaces.Box(-1.0, 1.0, shape=(history,), dtype=np.float32),
                "history_mask": spaces.Box(0.0, 1.0, shape=(history,), dtype=np.float32),
                "best_score": spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32),
                "budget_left": spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32),
            }.items()
        )
        self.observation_space = spaces.Dict(boxes)
        # Where each part lies in the flat observation.
        self._parts: dict[str, tuple[int, int, tuple[int, ...]]] = {}
        start = 0
        for key, box in boxes:
            size = int(np.prod(box.shape))
            self._parts[key] = (start, start + size, box.shape)
            start += size
        self._flat_size = start
        self._at = {key: start for key, (start, _, _) in self._parts.items()}
        self._task_cache: tuple[dict[str, float], dict[str, float], np.ndarray] | None = None

    def parse_action(self, action: Any) -> dict[str, Any]:
        if not isinstance(action, dict):
            raise SettingError(
                f"action must be a dict of settings, got {shorten(action)}; pass an element "
                "of env.action_space or a partial dict like {'optim.lr': 0.001}"
            )
        return self.schema.from_space(action)

    def to_action(self, metaprogram: dict[str, Any]) -> dict[str, Any]:
        return self.schema.to_space(metaprogram)

    def as_recorded(self, action: Any) -> Any:
        """Choice indices (numpy integers, as the space holds them) replaced by their
        choices: in JSON an index and a plain value could not be told apart."""
        if not isinstance(action, dict):
            return action
        return {key: self._choice_of(key, value) for key, value in action.items()}

    def _choice_of(self, key: Any, value: Any) -> Any:
        setting = self.schema[key] if isinstance(key, str) and key in self.schema else None
        if isinstance(setting, Categorical) and isinstance(value, (np.integer, np.ndarray)):
            try:
                return setting.from_space(value)
            except SettingError:  # an invalid index is recorded as given
                return value
        return value

    def observe(self, view: CampaignView) -> dict[str, np.ndarray]:
        flat = self._observe_flat(view)
        parts = {key: self._parts[key] for key in OBSERVATION_KEYS}
        return {key: flat[a:b].reshape(shape).copy() for key, (a, b, shape) in parts.items()}

    def _observe_flat(self, view: CampaignView) -> np.ndarray:
        """The observation's parts laid end to end (what spaces.flatten makes of it)."""
        at = self._at
        out = np.zeros(self._flat_size, dtype=np.float32)
        recent = view.history[-self.history :] if self.history else []
        if recent:
            k = len(recent)
            start = at["history_settings"]
            rows = [step["encoded"] for step in recent]
            out[start : start + k * len(self.schema)] = np.concatenate(rows)
            start = at["history_scores"]
            out[start : start + k] = [
                -1.0 if (x := step["score"]) is None else x if -1.0 <= x <= 1.0 else _clip(x)
                for step in recent
            ]
            start = at["history_mask"]
            out[start : start + k] = 1.0
        start = at["task"]
        out[start : start + len(TASK_FEATURES)] = self._task_part(view.task_features)
        out[at["best_score"]] = -1.0 if view.best_score is None else _clip(view.best_score)
        out[at["budget_left"]] = view.budget_left / view.budget
        return out

    def _task_part(self, features: dict[str, float]) -> np.ndarray:
        cached = self._task_cache
        if cached is None or cached[0] is not features or cached[1] != features:
            part = np.log1p(np.array([features[k] for k in TASK_FEATURES], dtype=np.float32))
            cached = self._task_cache = (features, dict(features), np.clip(part, 0.0, 20.0))
        return cached[2]


def _clip(x: float) -> float:
    """``np.clip(x, -1, 1)`` of a number (NaN stays NaN)."""
    return x if -1.0 <= x <= 1.0 or math.isnan(x) else (1.0 if x > 1.0 else -1.0)


class FlatInterface(Interface):
    """``Box`` spaces that stable-baselines3 and RLlib accept unchanged.

    Actions are vectors in ``[-1, 1]`` with one entry per setting (see
    ``Schema.encode``); observations are the dict observation flattened.
    """

    name = "flat"

    def __init__(self, schema: Schema, history: int):
        super().__init__(schema, history)
        self._dict = DictInterface(schema, history)
        self.action_space = schema.flat_space()
        self.observation_space = spaces.flatten_space(self._dict.observation_space)

    def parse_action(self, action: Any) -> dict[str, Any]:
        return self.schema.decode(action)

    def to_action(self, metaprogram: dict[str, Any]) -> np.ndarray:
        return self.schema.encode(metaprogram)

    def observe(self, view: CampaignView) -> np.ndarray:
        # Same as gymnasium's spaces.flatten of the dict observation (all parts are
        # float32 boxes), built in place.
        return self._dict._observe_flat(view)


def flat_task_features(observation: Any) -> dict[str, float]:
    """The task features inside a flat observation, by name (``log1p``, as observed).

    The dict observation space orders its keys and ``"task"`` comes last, so the
    features are the flat observation's last entries, whatever the schema and history.
    """
    values = np.asarray(observation, dtype=np.float64)[-len(TASK_FEATURES) :]
    return {name: float(v) for name, v in zip(TASK_FEATURES, values, strict=True)}


class TextInterface(Interface):
    """JSON text in and out, for language-model agents.

    The observation is a JSON object with the task, the settings schema, the
    history so far and the budget; the action is a JSON object of settings
    (omitted ones take their defaults), as text or UTF-8 bytes of at most
    :data:`~researchgym.spaces.schema.MAX_JSON_CHARS` characters.

    Schemas with nested forms (a model as a tree of units) also describe each
    form under ``"nested_forms"``, show past settings in the nested form, and
    accept actions in either form, e.g. ``{"arch": {"layers": [...]}, "optim.lr": 0.003}``.
    """

    name = "text"
    max_observation_chars = 32_768

    def __init__(self, schema: Schema, history: int):
        super().__init__(schema, history)
        self.action_space = spaces.Text(max_length=4096, min_length=2, charset=TEXT_CHARSET)
        self.observation_space = spaces.Text(
            max_length=self.max_observation_chars, min_length=2, charset=TEXT_CHARSET
        )
        self._schema_json = schema.to_json()
        self._forms_json = schema.forms_json()

    def parse_action(self, action: Any) -> dict[str, Any]:
        if not isinstance(action, (str, bytes)):
            raise SettingError(
                f"action must be a JSON string of settings, got {shorten(action)}; "
                """send text like '{"optim.lr": 0.001}'"""
            )
        return self.schema.parse_json(action)

    def to_action(self, metaprogram: dict[str, Any]) -> str:
        return json.dumps(self.schema.to_nested(metaprogram))

    def _shown(self, settings: dict[str, Any] | None) -> dict[str, Any] | None:
        if settings is None or not self._forms_json:
            return settings
        return self.schema.to_nested(settings)

    def observe(self, view: CampaignView) -> str:
        recent = view.history[-self.history :] if self.history else []
        payload: dict[str, Any] = {
            "task": view.task,
            "description": view.task_description,
            "budget_left": view.budget_left,
            "best_score": view.best_score,
            "history": [
                {
                    "settings": self._shown(step["settings"]),
                    "score": step["score"],
                    "status": step["status"],
                }
                for step in recent
            ],
            "settings_schema": self._schema_json,
            "reply_with": "a JSON object of settings; omitted settings take their defaults",
        }
        if self._forms_json:
            payload["nested_forms"] = self._forms_json
            keys = ", ".join(repr(form["key"]) for form in self._forms_json)
            payload["reply_with"] += (
                f"; the settings under {keys} may instead be given as one nested object "
                "(see nested_forms, e.g. its example)"
            )
        text = json.dumps(payload, separators=(",", ":"))
        while len(text) > self.max_observation_chars and payload["history"]:
            payload["history"] = payload["history"][1:]
            text = json.dumps(payload, separators=(",", ":"))
        return text


INTERFACES: dict[str, type[Interface]] = {
    cls.name: cls for cls in (DictInterface, FlatInterface, TextInterface)
}


def make_interface(name: str, schema: Schema, history: int) -> Interface:
    """Build the interface called ``name`` (``"dict"``, ``"flat"`` or ``"text"``)."""
    if not isinstance(name, str) or name not in INTERFACES:
        raise ConfigError(
            f"unknown interface={shorten(name)}; {did_you_mean(name, INTERFACES)}"
            f"choose one of {sorted(INTERFACES)}"
        )
    return INTERFACES[name](schema, history)
