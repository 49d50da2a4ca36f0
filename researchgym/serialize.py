"""Campaigns as token sequences, for planners that learn autoregressively.

A campaign (one task, a list of steps) becomes one line of whitespace-separated
tokens from a fixed vocabulary that depends only on the settings schema, the
env ids and the quantization::

    [BOS] env:researchgym/Tabular-v0 f:n_train=9 ... @data.scaling @model.family ... [SEP]
    [STEP] data.scaling="standard" model.family="mlp" model.depth=2 model.width#17 +3 ... score#40
    [STEP] ... score#fail
    [EOS]

* the header names the env, the task features (``log1p`` of each, as in the
  ``dict`` observation, in steps of ``1 / FEATURE_RESOLUTION``) and the schema's
  settings (``@name``);
* a step lists the value of every *active* setting in declaration order
  (inactive ones are left out, as :meth:`Schema.validate` leaves them out),
  then the validation score;
* categorical and boolean values are their own tokens (``name=json``);
* integers with at most ``n_bins`` values are their own tokens too
  (``name=3``); other integers and floats are quantized into ``n_bins`` equal
  bins of the setting's flat ``[-1, 1]`` encoding (``name#bin``), so log scales
  are binned in the log domain. Integers with more values than bins add an
  offset token (``+k``: the ``k``-th integer of that bin), so they round-trip
  exactly; floats come back at the centre of their bin;
* the score is binned into ``score_bins`` equal bins of ``[-1, 1]``
  (``score#b``), or ``score#fail`` for a step that did not finish ``"ok"``.

:class:`Serializer` turns metaprograms and campaigns into tokens and back and
says which tokens may come next (for constrained decoding);
:func:`build_tokenizer` makes the matching ``transformers`` tokenizer (a
``tokenizers`` word-level model over the vocabulary, built locally).
:func:`load_campaigns` reads stored steps into :class:`Campaign` objects.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from researchgym.envs.interfaces import TASK_FEATURES, flat_task_features
from researchgym.errors import ResearchGymError
from researchgym.spaces import Categorical, Float, Int, Schema, Setting, SettingError

__all__ = [
    "BOS",
    "EOS",
    "PAD",
    "SEP",
    "STEP",
    "UNK",
    "Campaign",
    "SerializeError",
    "Serializer",
    "Step",
    "build_tokenizer",
    "load_campaigns",
]

PAD, BOS, EOS, SEP, STEP, UNK = "[PAD]", "[BOS]", "[EOS]", "[SEP]", "[STEP]", "[UNK]"
SPECIAL_TOKENS = (PAD, BOS, EOS, SEP, STEP, UNK)
FEATURE_RESOLUTION = 2  # feature tokens per unit of log1p(feature)
FEATURE_MAX = 20.0  # log1p features are clipped to [0, FEATURE_MAX], as in the dict observation
FAIL = "score#fail"
CONFIG_NAME = "serializer.json"


class SerializeError(ResearchGymError, ValueError):
    """Tokens or values that do not fit the serializer's schema or vocabulary."""


@dataclass
class Step:
    """One experiment of a campaign: what was trained and how it scored."""

    metaprogram: dict[str, Any]
    score: float | None  # validation score; None when the step failed
    status: str = "ok"


@dataclass
class Campaign:
    """Steps on one task, with the task's features (``log1p`` values by name)."""

    env_id: str
    task: str
    features: dict[str, float]
    steps: list[Step] = field(default_factory=list)


def _bin(x: float, n: int) -> int:
    """Index of the bin of ``x`` among ``n`` equal bins of ``[-1, 1]``."""
    if not math.isfinite(x):
        return 0
    return min(n - 1, max(0, int((x + 1.0) / 2.0 * n)))


def _centre(b: int, n: int) -> float:
    return -1.0 + (2.0 * b + 1.0) / n


def _word(value: Any) -> str:
    text = json.dumps(value)
    if any(c.isspace() for c in text):
        text = "".join("\u2581" if c.isspace() else c for c in text)
    return text


class Serializer:
    """Tokens of one settings schema (see the module docstring for the format).

    Args:
        schema: the settings schema of the env(s).
        env_ids: env ids that get a header token (the first is the default).
        n_bins: bins of the flat encoding per number.
        score_bins: bins of the validation score over ``[-1, 1]``.
    """

    def __init__(
        self, schema: Schema, env_ids: Sequence[str], n_bins: int = 32, score_bins: int = 64
    ):
        if n_bins < 2 or score_bins < 2:
            raise SerializeError(f"n_bins={n_bins} and score_bins={score_bins} must both be >= 2")
        if not env_ids:
            raise SerializeError(
                "env_ids is empty; pass at least one env id, e.g. ['researchgym/Tabular-v0']"
            )
        self.schema = schema
        self.env_ids = list(env_ids)
        self.n_bins = n_bins
        self.score_bins = score_bins
        # per setting: the tokens of its values (in order) and how to read them
        self._values: dict[str, list[str]] = {}
        self._exact: dict[str, list[Any]] = {}  # token index -> value, for exact tokens
        self._int_bins: dict[str, list[list[int]]] = {}  # bin -> ints in it, for binned ints
        max_offsets = 0
        for s in schema:
            if isinstance(s, Categorical):  # Bool included
                self._exact[s.name] = list(s.choices)
                self._values[s.name] = [f"{s.name}={_word(c)}" for c in s.choices]
            elif isinstance(s, Int) and s.high - s.low + 1 <= n_bins:
                self._exact[s.name] = list(range(s.low, s.high + 1))
                self._values[s.name] = [f"{s.name}={v}" for v in range(s.low, s.high + 1)]
            elif isinstance(s, (Int, Float)):
                self._values[s.name] = [f"{s.name}#{b}" for b in range(n_bins)]
                if isinstance(s, Int):
                    groups: list[list[int]] = [[] for _ in range(n_bins)]
                    for v in range(s.low, s.high + 1):
                        groups[_bin(s.encode(v), n_bins)].append(v)
                    self._int_bins[s.name] = groups
                    max_offsets = max(max_offsets, max(len(g) for g in groups))
            else:
                raise SerializeError(f"{s.name}: settings of kind {s.kind!r} cannot be serialized")
        self.offset_tokens = [f"+{k}" for k in range(max_offsets)]
        self.score_tokens = [f"score#{b}" for b in range(score_bins)] + [FAIL]
        self.env_tokens = [f"env:{e}" for e in self.env_ids]
        self.feature_tokens = [
            f"f:{name}={q}"
            for name in TASK_FEATURES
            for q in range(int(FEATURE_MAX * FEATURE_RESOLUTION) + 1)
        ]
        self.name_tokens = [f"@{name}" for name in schema.names]
        vocab = list(SPECIAL_TOKENS) + self.env_tokens + self.feature_tokens + self.name_tokens
        for name in schema.names:
            vocab += self._values[name]
        vocab += self.offset_tokens + self.score_tokens
        if len(set(vocab)) != len(vocab):
            dupes = sorted({t for t in vocab if vocab.count(t) > 1})
            raise SerializeError(
                f"the schema's values give clashing tokens {dupes[:5]}; rename the choices"
            )
        self.vocab: dict[str, int] = {tok: i for i, tok in enumerate(vocab)}
        self._lookup: dict[str, dict[str, int]] = {
            name: {tok: i for i, tok in enumerate(toks)} for name, toks in self._values.items()
        }

    # --- persistence -------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """What :meth:`from_config` needs, with the schema for a compatibility check."""
        return {
            "env_ids": self.env_ids,
            "n_bins": self.n_bins,
            "score_bins": self.score_bins,
            "schema": self.schema.to_json(),
        }

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / CONFIG_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.config(), indent=1, default=str))
        return path

    @classmethod
    def from_config(cls, config: Mapping[str, Any], schema: Schema) -> Serializer:
        """Rebuild a serializer; raises :class:`SerializeError` if ``schema`` differs from the saved one."""
        saved = [s["name"] for s in config["schema"]]
        if saved != schema.names:
            raise SerializeError(
                f"the saved serializer was built for settings {saved}, but this schema has "
                f"{schema.names}; train a planner on this env's runs"
            )
        out = cls(schema, config["env_ids"], config["n_bins"], config["score_bins"])
        if json.loads(json.dumps(out.config()["schema"], default=str)) != json.loads(
            json.dumps(config["schema"], default=str)
        ):
            raise SerializeError(
                "the saved serializer's settings have other ranges or choices than this schema's; "
                "train a planner on this env's runs"
            )
        return out

    @classmethod
    def load(cls, directory: str | Path, schema: Schema) -> Serializer:
        path = Path(directory) / CONFIG_NAME
        if not path.exists():
            raise SerializeError(f"{path} does not exist; is {directory} a planner checkpoint?")
        return cls.from_config(json.loads(path.read_text()), schema)

    # --- values -----------------------------------------------------------------------
    def value_tokens(self, setting: Setting, value: Any) -> list[str]:
        """The tokens of one valid value of ``setting``."""
        name = setting.name
        if name in self._exact:
            try:
                index = self._exact[name].index(setting.validate(value))
            except (ValueError, SettingError) as exc:
                raise SerializeError(f"{name}={value!r} cannot be serialized: {exc}") from None
            return [self._values[name][index]]
        b = _bin(setting.encode(setting.validate(value)), self.n_bins)
        tokens = [self._values[name][b]]
        if name in self._int_bins:
            tokens.append(self.offset_tokens[self._int_bins[name][b].index(int(value))])
        return tokens

    def allowed_values(self, setting: Setting) -> list[str]:
        """Tokens that may stand first for a value of ``setting`` (bins holding no integer excluded)."""
        name = setting.name
        if name in self._int_bins:
            return [t for t, g in zip(self._values[name], self._int_bins[name]) if g]
        return list(self._values[name])

    def allowed_offsets(self, setting: Setting, value_token: str) -> list[str]:
        """Offset tokens that may follow ``value_token`` (empty when none follows)."""
        name = setting.name
        if name not in self._int_bins:
            return []
        group = self._int_bins[name][self._lookup[name][value_token]]
        return self.offset_tokens[: len(group)]

    def read_value(
        self, setting: Setting, value_token: str, offset_token: str | None = None
    ) -> Any:
        """The value of a setting's token(s): exact for choices and integers, bin centre for floats."""
        name = setting.name
        index = self._lookup[name].get(value_token)
        if index is None:
            raise SerializeError(f"{value_token!r} is not a value token of {name}")
        if name in self._exact:
            return self._exact[name][index]
        if name in self._int_bins:
            group = self._int_bins[name][index]
            k = self.offset_tokens.index(offset_token) if offset_token in self.offset_tokens else -1
            if not 0 <= k < len(group):
                raise SerializeError(
                    f"{name}: {value_token} needs an offset in +0..+{len(group) - 1}, got {offset_token!r}"
                )
            return group[k]
        return setting.decode(_centre(index, self.n_bins))

    # --- steps ------------------------------------------------------------------------
    def score_token(self, score: float | None, status: str = "ok") -> str:
        if status != "ok" or score is None or not math.isfinite(score):
            return FAIL
        return self.score_tokens[_bin(float(score), self.score_bins)]

    def score_values(self) -> np.ndarray:
        """Score of each score token (bin centres; ``score#fail`` counts as -1)."""
        centres = [_centre(b, self.score_bins) for b in range(self.score_bins)]
        return np.array(centres + [-1.0])

    def metaprogram_tokens(self, metaprogram: Mapping[str, Any]) -> list[str]:
        """Tokens of the active settings of a metaprogram (validated, defaults filled)."""
        full = self.schema.validate(metaprogram)
        out: list[str] = []
        for name, value in full.items():
            out += self.value_tokens(self.schema[name], value)
        return out

    def parse_metaprogram(self, tokens: Sequence[str]) -> dict[str, Any]:
        """The metaprogram of :meth:`metaprogram_tokens`' output (floats at bin centres)."""
        values: dict[str, Any] = {}
        i = 0
        for s in self.schema:
            if not all(values.get(p) in allowed for p, allowed in s.when.items()):
                continue
            if i >= len(tokens):
                raise SerializeError(f"tokens end before a value of {s.name}")
            offset = None
            if s.name in self._int_bins:
                offset = tokens[i + 1] if i + 1 < len(tokens) else None
                values[s.name] = self.read_value(s, tokens[i], offset)
                i += 2
            else:
                values[s.name] = self.read_value(s, tokens[i])
                i += 1
        if i != len(tokens):
            raise SerializeError(
                f"{len(tokens) - i} tokens left after the last setting: {list(tokens[i:])}"
            )
        return self.schema.validate(values)

    def step_tokens(self, step: Step) -> list[str]:
        return [
            STEP,
            *self.metaprogram_tokens(step.metaprogram),
            self.score_token(step.score, step.status),
        ]

    # --- campaigns ----------------------------------------------------------------------
    def env_token(self, env_id: str | None) -> str:
        token = f"env:{env_id}"
        return token if token in self.vocab else self.env_tokens[0]

    def feature_tokens_of(
        self, features: Mapping[str, float] | Sequence[float] | None
    ) -> list[str]:
        """Quantized ``log1p`` task features (a mapping by name, or values in TASK_FEATURES order)."""
        if features is None:
            values = [0.0] * len(TASK_FEATURES)
        elif isinstance(features, Mapping):
            values = [float(features.get(name, 0.0)) for name in TASK_FEATURES]
        else:
            values = [float(v) for v in features]
        top = int(FEATURE_MAX * FEATURE_RESOLUTION)
        out = []
        for name, v in zip(TASK_FEATURES, values):
            q = 0 if not math.isfinite(v) else min(top, max(0, round(v * FEATURE_RESOLUTION)))
            out.append(f"f:{name}={q}")
        return out

    def header_tokens(self, env_id: str | None, features: Any) -> list[str]:
        return [
            BOS,
            self.env_token(env_id),
            *self.feature_tokens_of(features),
            *self.name_tokens,
            SEP,
        ]

    def campaign_tokens(self, campaign: Campaign, *, end: bool = True) -> list[str]:
        """Header, every step in order, then ``[EOS]`` when ``end``."""
        out = self.header_tokens(campaign.env_id, campaign.features)
        for step in campaign.steps:
            out += self.step_tokens(step)
        return out + ([EOS] if end else [])

    def parse_campaign(self, tokens: Sequence[str]) -> Campaign:
        """The campaign of :meth:`campaign_tokens`' output (task name unknown: ``""``)."""
        tokens = list(tokens)
        if len(tokens) < 3 or tokens[0] != BOS or SEP not in tokens:
            raise SerializeError(
                "a campaign starts with [BOS], the env token, features, names and [SEP]"
            )
        sep = tokens.index(SEP)
        env_id = tokens[1].removeprefix("env:")
        features: dict[str, float] = {}
        for tok in tokens[2:sep]:
            if tok.startswith("f:"):
                name, _, q = tok[2:].partition("=")
                features[name] = int(q) / FEATURE_RESOLUTION
        body = tokens[sep + 1 :]
        if body and body[-1] == EOS:
            body = body[:-1]
        steps: list[Step] = []
        chunk: list[str] = []
        for tok in [*body, STEP]:
            if tok == STEP:
                if chunk:
                    score_tok = chunk[-1]
                    if score_tok not in self.score_tokens:
                        raise SerializeError(f"a step ends with a score token, got {score_tok!r}")
                    if score_tok == FAIL:
                        score, status = None, "error"
                    else:
                        score, status = (
                            float(_centre(self.score_tokens.index(score_tok), self.score_bins)),
                            "ok",
                        )
                    steps.append(Step(self.parse_metaprogram(chunk[:-1]), score, status))
                chunk = []
            else:
                chunk.append(tok)
        return Campaign(env_id, "", features, steps)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Token ids (unknown tokens raise :class:`SerializeError`)."""
        try:
            return [self.vocab[t] for t in tokens]
        except KeyError as exc:
            raise SerializeError(f"token {exc.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids: Iterable[int]) -> list[str]:
        inverse = self.inverse_vocab
        return [inverse[int(i)] for i in ids]

    @functools.cached_property
    def inverse_vocab(self) -> list[str]:
        """The tokens in id order."""
        return sorted(self.vocab, key=self.vocab.__getitem__)


def build_tokenizer(serializer: Serializer) -> Any:
    """A ``transformers`` fast tokenizer over the serializer's vocabulary (word level, local).

    Text is the tokens joined by single spaces; ids equal :meth:`Serializer.encode`'s.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel(vocab=dict(serializer.vocab), unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="\u0000", cleanup=False)  # joins tokens with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        sep_token=SEP,
        additional_special_tokens=[STEP],
    )


# --- reading campaigns from a store ---------------------------------------------------
def _log1p_features(row: Mapping[str, Any]) -> dict[str, float]:
    """``log1p`` of a row's task features, as the observation holds them.

    Rows written before the ``task_features`` column have them only in their flat
    observation ``obs``.
    """
    if row["task_features"] is None:
        return {} if row["obs"] is None else flat_task_features(row["obs"])
    features = json.loads(row["task_features"])
    return {name: float(np.log1p(np.float32(v))) for name, v in features.items()}


def load_campaigns(
    store: Any,
    env_id: str,
    schema: Schema,
    *,
    agent: str | None = None,
    tasks: Sequence[str] | None = None,
) -> list[Campaign]:
    """Stored campaigns of ``env_id`` (steps in order; steps without a metaprogram skipped).

    Args:
        store: a :class:`~researchgym.store.Store`, or a path to one.
        env_id: whose steps to read.
        schema: the env's schema (recorded metaprograms are validated against it).
        agent: only campaigns of this agent.
        tasks: only campaigns on these tasks.
    """
    from researchgym.store import Store

    columns = ("campaign_id", "task", "task_features", "obs", "metaprogram", "val_score", "status")
    with contextlib.nullcontext(store) if hasattr(store, "runs") else Store(store) as opened:
        rows = opened.runs(env_id, agent=agent, tasks=tasks, trained=True, columns=columns)
    rows = rows.to_pylist()
    campaigns: dict[str, Campaign] = {}
    task_features: dict[str, dict[str, float]] = {}
    for row in rows:
        try:
            metaprogram = schema.validate(json.loads(row["metaprogram"]))
        except SettingError:
            continue
        campaign = campaigns.get(row["campaign_id"])
        if campaign is None:
            features = task_features.get(row["task"])
            if features is None:
                features = _log1p_features(row)
                task_features[row["task"]] = features
            campaign = campaigns[row["campaign_id"]] = Campaign(env_id, row["task"], features)
        score = row["val_score"]
        ok = row["status"] == "ok" and score is not None and math.isfinite(score)
        campaign.steps.append(
            Step(metaprogram, float(score) if ok else None, row["status"] or "error")
        )
    return list(campaigns.values())
