"""A language-model agent: the text interface's observation in, JSON settings out.

Any model that maps text to text can plan: the agent shows it the env's text
observation (task, settings schema, history, budget) with an instruction to
reply with a JSON object of settings, and validates the reply against the
schema. An invalid reply (not JSON, an unknown setting, a value out of range)
is sent back with the validation error, up to ``max_retries`` times; after
that the agent falls back to the defaults (pins applied). Every attempt —
prompt, reply, error — is kept in the :class:`Decision` of each step
(``agent.decisions``), with whether the fallback was used.

Backends, chosen by what is given (first match):

* ``generate``: any callable ``prompt -> reply`` (Python API; the test seam);
* ``model``: a local ``transformers`` text-generation model directory (or a
  ready pipeline object), run with ``max_new_tokens``;
* ``url`` (or ``$RESEARCHGYM_LLM_URL``): an OpenAI-compatible chat-completions
  endpoint, called with urllib; the key comes from ``key`` or
  ``$RESEARCHGYM_LLM_KEY`` and the model name from ``model_name`` or
  ``$RESEARCHGYM_LLM_MODEL``.

    RESEARCHGYM_LLM_URL=http://127.0.0.1:8000/v1 researchgym rollout --agent llm --env researchgym/Replay-v0 --steps 5
    researchgym rollout --agent llm --agent-arg model=runs/my_lm --env researchgym/Replay-v0
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from researchgym.planning import (
    CampaignArgs,
    PlannerError,
    SearchPlanner,
    arg,
    parse_args,
    run_from_args,
)
from researchgym.spaces import Schema, SettingError

URL_VAR, KEY_VAR, MODEL_VAR = "RESEARCHGYM_LLM_URL", "RESEARCHGYM_LLM_KEY", "RESEARCHGYM_LLM_MODEL"

INSTRUCTION = (
    "You are planning machine-learning experiments. Below is the campaign so far as JSON: "
    "the task, the settings you may choose (settings_schema), past settings with their "
    "validation scores (higher is better) and the budget left. Choose the settings of the "
    "next experiment. Reply with only one JSON object mapping setting names to values, "
    'e.g. {"optim.lr": 0.001}.'
)


@dataclass
class Attempt:
    """One request to the model and what came of it."""

    prompt: str
    reply: str | None
    error: str | None = None


@dataclass
class Decision:
    """How one proposal was reached: the attempts and whether the defaults were used."""

    metaprogram: dict[str, Any]
    attempts: list[Attempt] = field(default_factory=list)
    fallback: bool = False


def extract_json(reply: str) -> str:
    """The first balanced ``{...}`` in a reply (code fences and chatter around it ignored)."""
    start = reply.find("{")
    while start != -1:
        depth, in_string, escaped = 0, False, False
        for i in range(start, len(reply)):
            c = reply[i]
            if in_string:
                if escaped:
                    escaped = False
                elif c == "\\":
                    escaped = True
                elif c == '"':
                    in_string = False
            elif c == '"':
                in_string = True
            elif c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    candidate = reply[start : i + 1]
                    try:
                        json.loads(candidate)
                    except json.JSONDecodeError:
                        break
                    return candidate
        start = reply.find("{", start + 1)
    return reply.strip()


# --- backends: messages -> reply ----------------------------------------------------------
def render(messages: list[dict[str, str]]) -> str:
    """A chat as one prompt, for text-to-text models."""
    parts = [f"{m['role'].upper()}:\n{m['content']}" for m in messages]
    return "\n\n".join(parts) + "\n\nASSISTANT:\n"


def callable_backend(generate: Callable[[str], str]) -> Callable[[list[dict[str, str]]], str]:
    return lambda messages: str(generate(render(messages)))


def pipeline_backend(model: Any, max_new_tokens: int = 128, temperature: float = 0.7) -> Callable[[list[dict[str, str]]], str]:
    """A local ``transformers`` text-generation pipeline (a model directory or a pipeline)."""
    if isinstance(model, (str, os.PathLike)):
        try:
            from transformers import pipeline
        except ModuleNotFoundError as exc:
            raise PlannerError("model= needs transformers; `pip install 'researchgym[transformers]'`") from exc
        model = pipeline("text-generation", model=str(model), device="cpu")

    def generate(messages: list[dict[str, str]]) -> str:
        kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "return_full_text": False}
        kwargs |= {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        out = model(render(messages), **kwargs)
        return str(out[0]["generated_text"])

    return generate


def http_backend(
    url: str, key: str | None = None, model_name: str = "default", temperature: float = 0.7, timeout: float = 60.0
) -> Callable[[list[dict[str, str]]], str]:
    """An OpenAI-compatible ``/chat/completions`` endpoint, called with urllib."""
    endpoint = url.rstrip("/")
    if not endpoint.endswith("/chat/completions"):
        endpoint += "/chat/completions"

    def generate(messages: list[dict[str, str]]) -> str:
        body = json.dumps({"model": model_name, "messages": messages, "temperature": temperature}).encode()
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(endpoint, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                payload = json.loads(response.read().decode())
        except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as exc:
            raise ConnectionError(f"request to {endpoint} failed: {exc}") from None
        try:
            return str(payload["choices"][0]["message"]["content"])
        except (KeyError, IndexError, TypeError):
            raise ConnectionError(f"{endpoint} answered without choices[0].message.content: {str(payload)[:200]}") from None

    return generate


# --- the agent ------------------------------------------------------------------------------
def make_backend(
    generate: Callable[[str], str] | None = None,
    model: Any = None,
    url: str | None = None,
    key: str | None = None,
    model_name: str | None = None,
    *,
    temperature: float = 0.7,
    max_new_tokens: int = 128,
    timeout: float = 60.0,
) -> tuple[Callable[[list[dict[str, str]]], str], str]:
    """The chat function ``ask(messages) -> reply`` of the first source given, and its kind.

    Sources, in order: ``generate`` (a text-to-text callable), ``model`` (a local
    ``transformers`` model directory or pipeline), ``url`` (an OpenAI-compatible
    endpoint; default ``$RESEARCHGYM_LLM_URL``, key ``$RESEARCHGYM_LLM_KEY``).
    Returns ``(ask, "callable" | "transformers" | "http")``.
    """
    url = url or os.environ.get(URL_VAR)
    if generate is not None:
        return callable_backend(generate), "callable"
    if model is not None:
        return pipeline_backend(model, max_new_tokens, temperature), "transformers"
    if url:
        ask = http_backend(
            url, key or os.environ.get(KEY_VAR), model_name or os.environ.get(MODEL_VAR, "default"), temperature, timeout
        )
        return ask, "http"
    raise PlannerError(
        f"the llm agent needs a model: pass generate= (a callable), model= (a local transformers "
        f"model directory, e.g. --agent-arg model=DIR) or url= (or set ${URL_VAR}, and ${KEY_VAR} for its key)"
    )


class LLMAgent(SearchPlanner):
    """Plans with a language model through the text interface.

    Args:
        generate: a callable ``prompt -> reply``.
        model: a local ``transformers`` model directory or text-generation pipeline.
        url: an OpenAI-compatible endpoint (default ``$RESEARCHGYM_LLM_URL``).
        key: its API key (default ``$RESEARCHGYM_LLM_KEY``).
        model_name: the model asked for at the endpoint (default ``$RESEARCHGYM_LLM_MODEL`` or ``"default"``).
        max_retries: invalid replies answered with the error before falling back to defaults.
        temperature: sampling temperature of the local or remote model.
        max_new_tokens: reply length of a local model.
        timeout: seconds per HTTP request.
    """

    name = "llm"
    interface = "text"

    def __init__(
        self,
        generate: Callable[[str], str] | None = None,
        model: Any = None,
        url: str | None = None,
        key: str | None = None,
        model_name: str | None = None,
        max_retries: int = 2,
        temperature: float = 0.7,
        max_new_tokens: int = 128,
        timeout: float = 60.0,
    ):
        if max_retries < 0:
            raise PlannerError(f"max_retries={max_retries} must be >= 0")
        self.max_retries = int(max_retries)
        self._ask, self.backend = make_backend(
            generate, model, url, key, model_name, temperature=temperature, max_new_tokens=max_new_tokens, timeout=timeout
        )

    def reset(self, schema: Schema, *, seed: int | None = None, fixed: Mapping[str, Any] | None = None) -> None:
        super().reset(schema, seed=seed, fixed=fixed)
        self.decisions: list[Decision] = []

    def _prompt(self, observation: Any) -> str:
        text = observation if isinstance(observation, str) else json.dumps(
            {"settings_schema": self.schema.to_json(), "reply_with": "a JSON object of settings"}
        )
        if self.fixed:
            text += "\nThese settings are pinned and will be overridden: " + json.dumps(self.fixed, default=str)
        return text

    def decide(self, observation: Any) -> Decision:
        """Ask the model until it replies valid settings, or fall back to the defaults."""
        messages = [{"role": "system", "content": INSTRUCTION}, {"role": "user", "content": self._prompt(observation)}]
        decision = Decision(metaprogram={})
        for _ in range(self.max_retries + 1):
            prompt = messages[-1]["content"]
            try:
                reply = self._ask(messages)
            except ConnectionError as exc:
                decision.attempts.append(Attempt(prompt, None, str(exc)))
                continue
            try:
                values = self.schema.flatten(json.loads(extract_json(reply)))
                decision.metaprogram = self.schema.validate({**values, **self.fixed})
            except json.JSONDecodeError as exc:
                error = f"the reply is not a JSON object ({exc.msg}); reply with only a JSON object of settings"
            except (SettingError, AttributeError) as exc:
                error = str(exc) if isinstance(exc, SettingError) else "the reply must be a JSON object of settings"
            else:
                decision.attempts.append(Attempt(prompt, reply))
                return decision
            decision.attempts.append(Attempt(prompt, reply, error))
            messages += [
                {"role": "assistant", "content": reply},
                {"role": "user", "content": f"That reply was invalid: {error}. Reply again with only the JSON object."},
            ]
        decision.metaprogram = self.schema.validate(dict(self.fixed))
        decision.fallback = True
        return decision

    def propose(self, observation: Any) -> dict[str, Any]:
        decision = self.decide(observation)
        self.decisions.append(decision)
        return decision.metaprogram


@dataclass
class Args(CampaignArgs):
    """A language model (OpenAI-compatible endpoint from $RESEARCHGYM_LLM_URL, or a local model) as planner."""

    model: str | None = arg(
        None,
        "local transformers model directory (default: the endpoint at $RESEARCHGYM_LLM_URL)",
    )
    max_retries: int = arg(
        2,
        "invalid replies answered with the error before falling back to defaults",
    )


if __name__ == "__main__":
    args = parse_args(Args)
    run_from_args(LLMAgent(model=args.model, max_retries=args.max_retries), args)
