"""Interfaces: the same campaign seen through dict, flat or text spaces.

An interface owns the action and observation spaces, turns an action into a
:class:`Command` (a verb, the run it names and a metaprogram) and renders the
campaign's state as an observation. Any malformed action, however large, deep or
oddly typed, raises :class:`SettingError` with a message of at most
:data:`~researchgym.errors.MAX_ERROR_CHARS` characters.

Interfaces of a forkable env (given a :class:`Forking`) also read the verbs of
:data:`VERBS` and show each recent run's fidelity and learning curve: in
``"dict"`` the action gains ``"verb"`` (``Discrete(4)``, or the verb's name) and
``"run"`` (``Discrete(budget)``), in ``"flat"`` two leading entries (verb, run) and in
``"text"`` the keys ``"verb"`` and ``"run"``, e.g. ``{"verb": "continue", "run": 3,
"train.epochs": 20}``.
"""

from __future__ import annotations

import json
import math
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium import spaces

from researchgym.errors import ConfigError, did_you_mean, shorten
from researchgym.spaces import Categorical, Int, Schema, SettingError

__all__ = [
    "INTERFACES",
    "VERBS",
    "CampaignView",
    "Command",
    "Forking",
    "Interface",
    "make_interface",
]

#: What a step of a forkable env may do: train a ``new`` run, ``continue`` a run to a
#: higher fidelity, ``fork`` a run (its weights, other pipeline settings) or ``stop``
#: the campaign. A step without a verb trains a new run.
VERBS = ("new", "continue", "fork", "stop")
#: The verbs that start from an earlier run, named by ``"run"``.
RUN_VERBS = ("continue", "fork")
EPOCHS = "train.epochs"
_VERB = Categorical("verb", "new", choices=VERBS, help="what the step does")

TASK_FEATURES = ("n_train", "n_features", "n_classes", "is_regression", "is_image")
OBSERVATION_KEYS = (
    "task",
    "history_settings",
    "history_scores",
    "history_mask",
    "best_score",
    "budget_left",
)
#: Observation keys a forkable env adds.
FORKING_KEYS = ("history_curves", "history_epochs")
TEXT_CHARSET = frozenset(string.printable) - frozenset("\t\r\x0b\x0c")


@dataclass
class CampaignView:
    """What an observation is made from: the task and the steps so far.

    Each step of ``history`` holds ``settings``, ``encoded``, ``score`` and
    ``status``; a forkable env's steps (its runs, indexed by position) also hold
    ``verb``, ``parent`` (the index of the run it started from, or ``None``),
    ``epochs`` (the fidelity reached) and ``curve`` (the validation score per epoch).
    """

    task: str
    task_description: str
    task_features: dict[str, float]
    budget: int
    steps_done: int = 0
    best_score: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped: bool = False

    @property
    def budget_left(self) -> int:
        return self.budget - self.steps_done


@dataclass(frozen=True)
class Forking:
    """What the interfaces of a forkable env show and read beyond settings.

    Attributes:
        budget: runs per campaign (run indices lie in ``[0, budget)``).
        max_epochs: the highest fidelity; observed fidelities are fractions of it.
        curve_length: validation scores shown per run (the last ones).
    """

    budget: int
    max_epochs: int
    curve_length: int


@dataclass(frozen=True)
class Command:
    """What an action asks for.

    Attributes:
        verb: one of :data:`VERBS`.
        run: the run a ``continue`` or ``fork`` starts from (``None`` for the others).
        settings: for ``new``, the validated metaprogram (defaults filled); for
            ``continue`` and ``fork``, only the settings the action gives, each
            checked (the others come from the run); empty for ``stop``.
    """

    verb: str = "new"
    run: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)


class Interface:
    """Base class; see :class:`DictInterface`, :class:`FlatInterface`, :class:`TextInterface`.

    Args:
        schema: the settings schema.
        history: past steps shown in observations.
        forking: for a forkable env, what its actions and observations add.
    """

    name = ""

    def __init__(self, schema: Schema, history: int, forking: Forking | None = None):
        self.schema = schema
        self.history = history
        self.forking = forking
        if forking is not None:
            self._run = Int("run", 0, low=0, high=forking.budget - 1, help="an earlier run")

    action_space: spaces.Space
    observation_space: spaces.Space

    def parse_command(self, action: Any) -> Command:
        """The command of an action.

        Raises:
            SettingError: the action is malformed; the message names the problem,
                quotes the value shortened and says what to send instead.
        """
        raise NotImplementedError

    def parse_action(self, action: Any) -> dict[str, Any]:
        """The validated metaprogram of an action that trains a new run.

        Raises:
            SettingError: the action is malformed or has another verb.
        """
        command = self.parse_command(action)
        if command.verb != "new":
            raise SettingError(
                f"verb={command.verb!r} does not train a new run from settings alone; send "
                "settings without a verb"
            )
        return command.settings

    def to_action(self, metaprogram: dict[str, Any], parent: dict[str, Any] | None = None) -> Any:
        """The action of this interface that stands for a metaprogram, or for a command
        given as a metaprogram with ``"verb"`` and ``"run"`` keys, e.g. ``{"verb":
        "continue", "run": 3, "train.epochs": 20}``.

        ``parent`` is the metaprogram of the run a fork starts from: the settings a
        fork leaves out are its, which an action that gives every setting (flat) repeats.

        Raises:
            SettingError: settings or a verb this env does not take.
        """
        raise NotImplementedError

    def as_recorded(self, action: Any) -> Any:
        """The action as given, in a form whose JSON reads back the same way (never raises)."""
        return action

    def observe(self, view: CampaignView) -> Any:
        raise NotImplementedError

    # --- verbs -----------------------------------------------------------------------
    def _command(self, values: dict[str, Any], check: Callable[..., dict[str, Any]]) -> Command:
        """The command of an action's entries (popped from ``values``): ``"verb"`` and
        ``"run"`` read here, the settings by ``check(values, new)``, which validates and
        fills defaults when ``new``."""
        verb, run = self._pop_verb(values)
        if verb == "stop":
            return Command("stop")
        if verb == "new":
            return Command("new", None, check(values, True))
        return Command(verb, run, check(values, False))

    def _pop_verb(self, values: dict[str, Any]) -> tuple[str, int | None]:
        """The verb and the run index popped from an action's entries."""
        given, run = values.pop("verb", "new"), values.pop("run", None)
        if self.forking is None:
            if run is not None or not self._is_new(given):
                raise SettingError(
                    f"verb={shorten(given)}, run={shorten(run)}: verbs and runs need an env that "
                    "keeps its runs; make it with gym.make(..., forkable=True), or send settings "
                    "alone to train a new run"
                )
            return "new", None
        verb = self._verb(given)
        if run is None and verb not in RUN_VERBS:
            return verb, None
        if run is None:
            raise SettingError(
                f"verb={verb!r} needs the run it starts from; send its index, e.g. "
                f'{{"verb": "{verb}", "run": 0, "train.epochs": 20}}'
            )
        return verb, self._run_index(run)

    @staticmethod
    def _verb(value: Any) -> str:
        """A verb given by name or by index (as the dict interface's ``Discrete`` space holds it)."""
        is_index = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
        if is_index and 0 <= value < len(VERBS):
            return VERBS[value]
        try:
            return str(_VERB.from_space(value))
        except SettingError:
            raise SettingError(
                f"verb={shorten(value)} is not one of {VERBS} or its index; leave it out to "
                "train a new run"
            ) from None

    @classmethod
    def _is_new(cls, value: Any) -> bool:
        try:
            return cls._verb(value) == "new"
        except SettingError:
            return False

    def _run_index(self, value: Any) -> int:
        try:
            return int(self._run.from_space(value))
        except SettingError:
            raise SettingError(
                f"run={shorten(value)} is not a run index; pass an integer in "
                f"[0, {self._run.high}], the index of an earlier run as observed"
            ) from None

    def _planned(self, command: dict[str, Any]) -> tuple[str, int | None, dict[str, Any]]:
        """A planner's command (a metaprogram with ``"verb"`` and ``"run"`` keys) split
        into its verb, its run and its settings (checked unless the verb is ``new``)."""
        settings = dict(command)
        verb, run = self._pop_verb(settings)
        return verb, run, settings if verb == "new" else self.schema.check(settings)


class DictInterface(Interface):
    """Canonical gymnasium ``Dict`` spaces: one entry per setting."""

    name = "dict"

    def __init__(self, schema: Schema, history: int, forking: Forking | None = None):
        super().__init__(schema, history, forking)
        n = len(schema)
        self.action_space = schema.space()
        parts = {
            "task": spaces.Box(0.0, 20.0, shape=(len(TASK_FEATURES),), dtype=np.float32),
            "history_settings": spaces.Box(-1.0, 1.0, shape=(history, n), dtype=np.float32),
            "history_scores": spaces.Box(-1.0, 1.0, shape=(history,), dtype=np.float32),
            "history_mask": spaces.Box(0.0, 1.0, shape=(history,), dtype=np.float32),
            "best_score": spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32),
            "budget_left": spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32),
        }
        self._keys: tuple[str, ...] = OBSERVATION_KEYS
        if forking is not None:
            self.action_space = spaces.Dict(
                {"verb": _VERB.space(), "run": self._run.space(), **self.action_space.spaces}
            )
            shape = (history, forking.curve_length)
            parts["history_curves"] = spaces.Box(-1.0, 1.0, shape=shape, dtype=np.float32)
            parts["history_epochs"] = spaces.Box(0.0, 1.0, shape=(history,), dtype=np.float32)
            self._keys += FORKING_KEYS
        # In the dict space's key order (sorted), which spaces.flatten follows.
        boxes = sorted(parts.items())
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

    def parse_command(self, action: Any) -> Command:
        if not isinstance(action, dict):
            raise SettingError(
                f"action must be a dict of settings, got {shorten(action)}; pass an element "
                "of env.action_space or a partial dict like {'optim.lr': 0.001}"
            )
        return self._command(dict(action), self._from_space)

    def _from_space(self, sample: dict[str, Any], new: bool) -> dict[str, Any]:
        if new:
            return self.schema.from_space(sample)
        return {name: self.schema[name].from_space(value) for name, value in sample.items()}

    def to_action(
        self, metaprogram: dict[str, Any], parent: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        verb, run, settings = self._planned(metaprogram)
        if verb == "new":
            action = self.schema.to_space(settings)
        else:
            action = {name: self.schema[name].to_space(v) for name, v in settings.items()}
        if verb != "new" or "verb" in metaprogram:
            action["verb"] = _VERB.to_space(verb)
        if run is not None:
            action["run"] = self._run.to_space(run)
        return action

    def as_recorded(self, action: Any) -> Any:
        """Choice indices (numpy integers, as the space holds them) replaced by their
        choices: in JSON an index and a plain value could not be told apart."""
        if not isinstance(action, dict):
            return action
        return {key: self._choice_of(key, value) for key, value in action.items()}

    def _choice_of(self, key: Any, value: Any) -> Any:
        setting = self.schema[key] if isinstance(key, str) and key in self.schema else None
        if key == "verb" and self.forking is not None:
            setting = _VERB
        if isinstance(setting, Categorical) and isinstance(value, (np.integer, np.ndarray)):
            try:
                return setting.from_space(value)
            except SettingError:  # an invalid index is recorded as given
                return value
        return value

    def observe(self, view: CampaignView) -> dict[str, np.ndarray]:
        flat = self._observe_flat(view)
        parts = {key: self._parts[key] for key in self._keys}
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
            if self.forking is not None:
                self._observe_runs(recent, out)
        start = at["task"]
        out[start : start + len(TASK_FEATURES)] = self._task_part(view.task_features)
        out[at["best_score"]] = -1.0 if view.best_score is None else _clip(view.best_score)
        out[at["budget_left"]] = view.budget_left / view.budget
        return out

    def _observe_runs(self, recent: list[dict[str, Any]], out: np.ndarray) -> None:
        """Write the recent runs' curves (the last scores, -1 after them) and fidelities."""
        assert self.forking is not None
        length, at = self.forking.curve_length, self._at
        curves = np.full((len(recent), length), -1.0)
        for row, step in zip(curves, recent, strict=True):
            shown = step["curve"][-length:]
            row[: len(shown)] = shown
        curves = np.nan_to_num(np.clip(curves, -1.0, 1.0), nan=-1.0)
        start = at["history_curves"]
        out[start : start + curves.size] = curves.ravel()
        start = at["history_epochs"]
        epochs = [min(1.0, step["epochs"] / self.forking.max_epochs) for step in recent]
        out[start : start + len(recent)] = epochs

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
    ``Schema.encode``); observations are the dict observation flattened. A
    forkable env's actions have two more entries in front, the verb and the run
    (each value range split evenly among the verbs and the run indices); a
    ``continue`` reads only ``train.epochs`` from the settings, a ``fork`` all of them.
    """

    name = "flat"

    def __init__(self, schema: Schema, history: int, forking: Forking | None = None):
        super().__init__(schema, history, forking)
        self._dict = DictInterface(schema, history, forking)
        self.action_space = schema.flat_space()
        if forking is not None:
            self.action_space = spaces.Box(-1.0, 1.0, shape=(len(schema) + 2,), dtype=np.float32)
        self.observation_space = spaces.flatten_space(self._dict.observation_space)

    def parse_command(self, action: Any) -> Command:
        if self.forking is None:
            return Command("new", None, self.schema.decode(action))
        try:
            array = np.asarray(action)
        except (ValueError, TypeError):  # ragged or too deeply nested lists
            array = None
        size = len(self.schema) + 2
        if array is None or array.dtype.kind not in "biuf" or array.shape != (size,):
            raise SettingError(
                f"flat action {shorten(action)} is not a vector of {size} real numbers; pass the "
                "verb and the run, then one number per setting, each in [-1, 1]"
            )
        head = array[:2].astype(np.float64)
        if not np.isfinite(head).all():
            raise SettingError(
                f"flat action's verb and run entries {head.tolist()} are not finite; pass "
                "numbers in [-1, 1]"
            )
        settings = self.schema.decode(array[2:])
        verb = _VERB.decode(head[0])
        if verb == "new":
            return Command("new", None, settings)
        if verb == "stop":
            return Command("stop")
        run = self._run.decode(head[1])
        return Command(verb, run, {EPOCHS: settings[EPOCHS]} if verb == "continue" else settings)

    def to_action(
        self, metaprogram: dict[str, Any], parent: dict[str, Any] | None = None
    ) -> np.ndarray:
        verb, run, settings = self._planned(metaprogram)
        vector = self.schema.encode(settings)
        if self.forking is None:
            return vector
        if verb == "fork" and parent is not None:
            vector = self.schema.encode({**parent, **settings})
        head = [_VERB.encode(verb), self._run.encode(run or 0)]
        return np.concatenate([np.array(head, dtype=vector.dtype), vector])

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

    def __init__(self, schema: Schema, history: int, forking: Forking | None = None):
        super().__init__(schema, history, forking)
        self.action_space = spaces.Text(max_length=4096, min_length=2, charset=TEXT_CHARSET)
        self.observation_space = spaces.Text(
            max_length=self.max_observation_chars, min_length=2, charset=TEXT_CHARSET
        )
        self._schema_json = schema.to_json()
        self._forms_json = schema.forms_json()

    def parse_command(self, action: Any) -> Command:
        if not isinstance(action, (str, bytes)):
            raise SettingError(
                f"action must be a JSON string of settings, got {shorten(action)}; "
                """send text like '{"optim.lr": 0.001}'"""
            )
        return self._command(self.schema.read_json(action), self._check)

    def _check(self, values: dict[str, Any], new: bool) -> dict[str, Any]:
        return self.schema.validate(values) if new else self.schema.check(values)

    def to_action(self, metaprogram: dict[str, Any], parent: dict[str, Any] | None = None) -> str:
        verb, run, settings = self._planned(metaprogram)
        if verb == "new" and "verb" not in metaprogram:
            return json.dumps(self.schema.to_nested(settings))
        if verb == "new":
            settings = self.schema.to_nested(settings)
        head = {"verb": verb} if run is None else {"verb": verb, "run": run}
        return json.dumps({**head, **settings})

    def _step(self, run: int, step: dict[str, Any]) -> dict[str, Any]:
        shown = {
            "settings": self._shown(step["settings"]),
            "score": step["score"],
            "status": step["status"],
        }
        if self.forking is None:
            return shown
        curve = [round(x, 4) for x in step["curve"][-self.forking.curve_length :]]
        run_part = {"run": run, "verb": step["verb"], "parent": step["parent"]}
        return {**run_part, **shown, "epochs": step["epochs"], "curve": curve}

    def _shown(self, settings: dict[str, Any] | None) -> dict[str, Any] | None:
        if settings is None or not self._forms_json:
            return settings
        return self.schema.to_nested(settings)

    def observe(self, view: CampaignView) -> str:
        recent = view.history[-self.history :] if self.history else []
        first = len(view.history) - len(recent)
        payload: dict[str, Any] = {
            "task": view.task,
            "description": view.task_description,
            "budget_left": view.budget_left,
            "best_score": view.best_score,
            "history": [self._step(first + i, step) for i, step in enumerate(recent)],
            "settings_schema": self._schema_json,
            "reply_with": "a JSON object of settings; omitted settings take their defaults",
        }
        if self.forking is not None:
            payload["max_epochs"] = self.forking.max_epochs
            payload["reply_with"] += REPLY_WITH_VERBS
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


#: How a forkable env's text observation says to reply, after the settings.
REPLY_WITH_VERBS = (
    ' (a new run); or {"verb": "continue", "run": K, "train.epochs": E} to train run K '
    'on to E epochs in all; or {"verb": "fork", "run": K, ...settings} to start from run K\'s '
    "weights with other pipeline settings (those left out are run K's; train.epochs counts run "
    'K\'s epochs too); or {"verb": "stop"} to end the campaign'
)

INTERFACES: dict[str, type[Interface]] = {
    cls.name: cls for cls in (DictInterface, FlatInterface, TextInterface)
}


def make_interface(
    name: str, schema: Schema, history: int, forking: Forking | None = None
) -> Interface:
    """Build the interface called ``name`` (``"dict"``, ``"flat"`` or ``"text"``)."""
    if not isinstance(name, str) or name not in INTERFACES:
        raise ConfigError(
            f"unknown interface={shorten(name)}; {did_you_mean(name, INTERFACES)}"
            f"choose one of {sorted(INTERFACES)}"
        )
    return INTERFACES[name](schema, history, forking)
