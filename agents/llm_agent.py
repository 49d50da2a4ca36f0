"""A language-model agent: the text interface's observation in, JSON settings out.

Any model that maps text to text can plan: the agent shows it the env's text
observation (task, settings schema, history, budget) with an instruction to
reply with a JSON object of settings, and validates the reply against the
schema. An invalid reply (not JSON, an unknown setting, a value out of range)
is sent back with the validation error, up to ``max_retries`` times; after
that the agent falls back to the defaults (pins applied). Every attempt —
prompt, reply, status, error — is kept in the :class:`Decision` of each step
(``agent.decisions``), with whether the fallback was used.

An endpoint that fails (HTTP 4xx/5xx, a timeout, a body that is not a chat
completion) is not an invalid reply: HTTP 429 and 5xx are retried, honouring
``Retry-After`` up to ``max_wait`` seconds, and what still fails is recorded
as the decision's status and raised as :class:`EndpointError`, so a campaign
never trains defaults that pass for the model's choice.

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

import email.utils
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from researchgym.errors import shorten
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


class EndpointError(PlannerError, ConnectionError):
    """The model's endpoint failed to give a reply.

    Attributes:
        status: ``"client_error"`` (HTTP 4xx other than 429), ``"rate_limited"``
            (429 after the retries), ``"server_error"`` (5xx after the retries),
            ``"timeout"``, ``"bad_response"`` (not a chat completion) or
            ``"unreachable"``.
    """

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Attempt:
    """One request to the model and what came of it.

    ``status`` is ``"ok"``, ``"invalid_reply"`` (the reply did not validate) or an
    :class:`EndpointError` status.
    """

    prompt: str
    reply: str | None
    error: str | None = None
    status: str = "ok"


@dataclass
class Decision:
    """How one proposal was reached.

    ``status`` is ``"ok"`` (a valid reply), ``"fallback"`` (no valid reply within the
    retries: the defaults were used) or the :class:`EndpointError` status that ended it.
    """

    metaprogram: dict[str, Any]
    attempts: list[Attempt] = field(default_factory=list)
    status: str = "ok"

    @property
    def fallback(self) -> bool:
        """Whether the defaults were used for want of a valid reply."""
        return self.status == "fallback"


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


def pipeline_backend(
    model: Any, max_new_tokens: int = 128, temperature: float = 0.7
) -> Callable[[list[dict[str, str]]], str]:
    """A local ``transformers`` text-generation pipeline (a model directory or a pipeline)."""
    if isinstance(model, (str, os.PathLike)):
        try:
            from transformers import pipeline
        except ModuleNotFoundError as exc:
            raise PlannerError(
                "model= needs transformers; `pip install 'researchgym[transformers]'`"
            ) from exc
        model = pipeline("text-generation", model=str(model), device="cpu")

    def generate(messages: list[dict[str, str]]) -> str:
        kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "return_full_text": False}
        kwargs |= (
            {"do_sample": True, "temperature": temperature}
            if temperature > 0
            else {"do_sample": False}
        )
        out = model(render(messages), **kwargs)
        return str(out[0]["generated_text"])

    return generate


def _retry_after(value: str | None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (seconds or an HTTP date), if any."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def http_backend(
    url: str,
    key: str | None = None,
    model_name: str = "default",
    temperature: float = 0.7,
    timeout: float = 60.0,
    retries: int = 3,
    max_wait: float = 30.0,
) -> Callable[[list[dict[str, str]]], str]:
    """An OpenAI-compatible ``/chat/completions`` endpoint, called with urllib.

    HTTP 429 and 5xx answers are retried up to ``retries`` times, after the
    ``Retry-After`` the server asks for (else 1, 2, 4, ... seconds); a wait longer
    than ``max_wait`` seconds is not made. Every failure raises :class:`EndpointError`.
    """
    endpoint = url.rstrip("/")
    if not endpoint.endswith("/chat/completions"):
        endpoint += "/chat/completions"

    def post(body: bytes) -> bytes:
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(endpoint, data=body, headers=headers, method="POST")
        attempt = 0
        while True:
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    return response.read()
            except urllib.error.HTTPError as exc:
                detail = shorten(exc.read().decode(errors="replace"), 200)
                answer = f"{endpoint} answered HTTP {exc.code} {exc.reason}: {detail}"
                if exc.code != 429 and exc.code < 500:
                    raise EndpointError(
                        "client_error", f"{answer}; check the url, key and model_name"
                    ) from None
                status = "rate_limited" if exc.code == 429 else "server_error"
                wait = _retry_after(exc.headers.get("Retry-After"))
                if wait is not None and wait > max_wait:
                    raise EndpointError(
                        status,
                        f"{answer}; it asks to retry after {wait:g}s, more than "
                        f"max_wait={max_wait:g}s: try again later or raise max_wait",
                    ) from None
                if attempt == retries:
                    raise EndpointError(
                        status, f"{answer} ({retries + 1} requests); try again later"
                    ) from None
                time.sleep(min(max_wait, 2.0**attempt) if wait is None else wait)
                attempt += 1
            except TimeoutError as exc:
                raise EndpointError(
                    "timeout",
                    f"{endpoint} sent no reply within {timeout:g}s ({exc}); "
                    "raise timeout= or check the server",
                ) from None
            except urllib.error.URLError as exc:
                status = "timeout" if isinstance(exc.reason, TimeoutError) else "unreachable"
                raise EndpointError(
                    status, f"request to {endpoint} failed: {exc.reason}; check the url"
                ) from None
            except OSError as exc:  # the connection broke mid-answer
                raise EndpointError(
                    "unreachable", f"request to {endpoint} failed: {exc}; check the server"
                ) from None

    def generate(messages: list[dict[str, str]]) -> str:
        body = json.dumps({"model": model_name, "messages": messages, "temperature": temperature})
        raw = post(body.encode())
        try:
            return str(json.loads(raw)["choices"][0]["message"]["content"])
        except (ValueError, KeyError, IndexError, TypeError):
            raise EndpointError(
                "bad_response",
                f"{endpoint} answered {shorten(raw.decode(errors='replace'), 200)}, not a chat "
                "completion with choices[0].message.content; check that the url is an "
                "OpenAI-compatible endpoint",
            ) from None

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
    retries: int = 3,
    max_wait: float = 30.0,
) -> tuple[Callable[[list[dict[str, str]]], str], str]:
    """The chat function ``ask(messages) -> reply`` of the first source given, and its kind.

    Sources, in order: ``generate`` (a text-to-text callable), ``model`` (a local
    ``transformers`` model directory or pipeline), ``url`` (an OpenAI-compatible
    endpoint; default ``$RESEARCHGYM_LLM_URL``, key ``$RESEARCHGYM_LLM_KEY``, with
    ``timeout``, ``retries`` and ``max_wait`` as in :func:`http_backend`).
    Returns ``(ask, "callable" | "transformers" | "http")``.
    """
    url = url or os.environ.get(URL_VAR)
    if generate is not None:
        return callable_backend(generate), "callable"
    if model is not None:
        return pipeline_backend(model, max_new_tokens, temperature), "transformers"
    if url:
        ask = http_backend(
            url,
            key or os.environ.get(KEY_VAR),
            model_name or os.environ.get(MODEL_VAR, "default"),
            temperature,
            timeout,
            retries,
            max_wait,
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
        retries: extra requests after an HTTP 429 or 5xx answer.
        max_wait: longest wait (seconds) before such a retry; a longer ``Retry-After`` fails.
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
        retries: int = 3,
        max_wait: float = 30.0,
    ):
        if max_retries < 0:
            raise PlannerError(f"max_retries={max_retries} must be >= 0")
        self.max_retries = int(max_retries)
        self._ask, self.backend = make_backend(
            generate,
            model,
            url,
            key,
            model_name,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            timeout=timeout,
            retries=retries,
            max_wait=max_wait,
        )

    def reset(
        self, schema: Schema, *, seed: int | None = None, fixed: Mapping[str, Any] | None = None
    ) -> None:
        super().reset(schema, seed=seed, fixed=fixed)
        self.decisions: list[Decision] = []

    def _prompt(self, observation: Any) -> str:
        text = (
            observation
            if isinstance(observation, str)
            else json.dumps(
                {
                    "settings_schema": self.schema.to_json(),
                    "reply_with": "a JSON object of settings",
                }
            )
        )
        if self.fixed:
            text += "\nThese settings are pinned and will be overridden: " + json.dumps(
                self.fixed, default=str
            )
        return text

    def decide(self, observation: Any) -> Decision:
        """Ask the model until it replies valid settings, or fall back to the defaults.

        An endpoint failure ends the decision with that failure's status (no fallback).
        """
        messages = [
            {"role": "system", "content": INSTRUCTION},
            {"role": "user", "content": self._prompt(observation)},
        ]
        decision = Decision(metaprogram={})
        for _ in range(self.max_retries + 1):
            prompt = messages[-1]["content"]
            try:
                reply = self._ask(messages)
            except EndpointError as exc:
                decision.attempts.append(Attempt(prompt, None, str(exc), exc.status))
                decision.status = exc.status
                return decision
            try:
                values = self.schema.flatten(json.loads(extract_json(reply)))
                decision.metaprogram = self.schema.validate({**values, **self.fixed})
            except json.JSONDecodeError as exc:
                error = f"the reply is not a JSON object ({exc.msg}); reply with only a JSON object of settings"
            except (SettingError, AttributeError) as exc:
                error = (
                    str(exc)
                    if isinstance(exc, SettingError)
                    else "the reply must be a JSON object of settings"
                )
            else:
                decision.attempts.append(Attempt(prompt, reply))
                return decision
            decision.attempts.append(Attempt(prompt, reply, error, "invalid_reply"))
            messages += [
                {"role": "assistant", "content": reply},
                {
                    "role": "user",
                    "content": f"That reply was invalid: {error}. Reply again with only the JSON object.",
                },
            ]
        decision.metaprogram = self.schema.validate(dict(self.fixed))
        decision.status = "fallback"
        return decision

    def propose(self, observation: Any) -> dict[str, Any]:
        """The model's settings; raises :class:`EndpointError` when its endpoint failed."""
        decision = self.decide(observation)
        self.decisions.append(decision)
        if decision.status not in ("ok", "fallback"):
            raise EndpointError(decision.status, decision.attempts[-1].error or decision.status)
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
