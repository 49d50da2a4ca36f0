"""The language-model agent: callables, a local transformers pipeline, an HTTP endpoint."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import gymnasium as gym
import pytest
from typer.testing import CliRunner

from agents.llm_agent import URL_VAR, EndpointError, LLMAgent, extract_json
from researchgym.cli import app
from researchgym.envs.suites import get_suite
from researchgym.planning import PlannerError, make_planner, run_campaign

SCHEMA = get_suite("tabular").make_schema()
GOOD = {"model.family": "linear", "optim.lr": 0.01}


def _replay(**kwargs):
    return gym.make(
        "researchgym/Replay-v0",
        source="researchgym/Tabular-v0",
        interface="text",
        missing="nearest",
        store=False,
        disable_env_checker=True,
        **kwargs,
    )


class Scripted:
    """Replies from a script, in order, and remembers the prompts."""

    def __init__(self, *replies: str):
        self.replies = list(replies)
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


def test_garbage_then_valid_json_recovers_with_the_error_fed_back():
    model = Scripted(
        "I think a big MLP!", '{"optim.lr": 5.0}', "Sure:\n```json\n" + json.dumps(GOOD) + "\n```"
    )
    agent = LLMAgent(model, max_retries=2)
    agent.reset(SCHEMA, fixed={"train.epochs": 3})
    proposal = agent.propose('{"task": "iris"}')
    assert proposal == SCHEMA.validate({**GOOD, "train.epochs": 3})
    decision = agent.decisions[-1]
    assert not decision.fallback and len(decision.attempts) == 3
    assert "not a JSON object" in decision.attempts[0].error
    assert "optim.lr=5.0 is outside" in decision.attempts[1].error
    assert decision.attempts[2].error is None
    assert "optim.lr=5.0 is outside" in model.prompts[2]  # the error went back to the model


def test_invalid_replies_fall_back_to_defaults_and_are_recorded():
    agent = LLMAgent(Scripted('{"no.such": 1}'), max_retries=1)
    agent.reset(SCHEMA, fixed={"train.epochs": 3})
    assert agent.propose("{}") == SCHEMA.validate({"train.epochs": 3})
    decision = agent.decisions[-1]
    assert decision.fallback and len(decision.attempts) == 2
    assert all("unknown setting 'no.such'" in a.error for a in decision.attempts)


def test_extract_json_skips_chatter_and_braces_in_strings():
    assert json.loads(extract_json('ok {"a": "}{", "b": {"c": 1}} bye')) == {
        "a": "}{",
        "b": {"c": 1},
    }
    assert extract_json("no json") == "no json"


def test_a_campaign_through_the_text_interface():
    result = run_campaign(
        _replay(budget=3), LLMAgent(Scripted(json.dumps(GOOD))), seed=0, options={"task": "wine"}
    )
    assert [s.status for s in result.steps] == ["ok"] * 3
    assert result.steps[0].metaprogram["model.family"] == "linear"


def test_needs_a_backend(monkeypatch):
    monkeypatch.delenv(URL_VAR, raising=False)
    with pytest.raises(PlannerError, match=URL_VAR):
        make_planner("llm")


class _Endpoint(BaseHTTPRequestHandler):
    requests: ClassVar[list[dict]] = []
    replies: ClassVar[list[str]] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(
            {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
        )
        reply = type(self).replies.pop(0) if len(type(self).replies) > 1 else type(self).replies[0]
        payload = json.dumps(
            {"choices": [{"message": {"role": "assistant", "content": reply}}]}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint(monkeypatch):
    """A fake chat-completions server on 127.0.0.1 answering at most 10 requests."""
    _Endpoint.requests, _Endpoint.replies = [], ["not json", json.dumps(GOOD)]
    server = HTTPServer(("127.0.0.1", 0), _Endpoint)
    server.timeout = 0.1
    stop = threading.Event()

    def serve():
        while not stop.is_set() and len(_Endpoint.requests) < 10:
            server.handle_request()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    monkeypatch.setenv(URL_VAR, f"http://127.0.0.1:{server.server_port}/v1")
    monkeypatch.setenv("RESEARCHGYM_LLM_KEY", "sk-test")
    yield _Endpoint
    stop.set()
    thread.join(timeout=5)
    server.server_close()


def test_http_endpoint_from_env_vars(endpoint):
    agent = make_planner("llm", timeout=5)
    assert agent.backend == "http"
    result = run_campaign(_replay(budget=2), agent, seed=0, options={"task": "iris"})
    assert [s.status for s in result.steps] == ["ok", "ok"]
    assert len(endpoint.requests) == 3  # garbage, then valid, then valid
    first, retry = endpoint.requests[0], endpoint.requests[1]
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer sk-test"
    assert retry["body"]["messages"][-2] == {"role": "assistant", "content": "not json"}
    assert "invalid" in retry["body"]["messages"][-1]["content"]
    assert agent.decisions[0].attempts[0].error and not agent.decisions[0].fallback


def test_unreachable_endpoint_fails_without_falling_back():
    agent = LLMAgent(url="http://127.0.0.1:9/v1", max_retries=1, timeout=2)
    agent.reset(SCHEMA)
    with pytest.raises(EndpointError, match="check the url") as caught:
        agent.propose("{}")
    assert caught.value.status == agent.decisions[0].status == "unreachable"
    assert not agent.decisions[0].fallback and len(agent.decisions[0].attempts) == 1


def test_rollout_cli_with_the_endpoint(endpoint):
    result = CliRunner().invoke(
        app,
        [
            "rollout",
            "--agent",
            "llm",
            "--env",
            "researchgym/Tabular-v0",
            "--steps",
            "1",
            "--store",
            "none",
            "--set",
            "train.epochs=1",
            "--set",
            "train.batch_size=256",
            "--agent-arg",
            "timeout=5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "best found" in result.output


def test_local_transformers_pipeline(tmp_path):
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    chars = sorted(set('{}[]":,.0123456789 abcdefghijklmnopqrstuvwxyz_-\n'))
    vocab = {"[UNK]": 0, "[EOS]": 1, **{c: i + 2 for i, c in enumerate(chars)}}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    core.decoder = decoders.Fuse()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="[UNK]", eos_token="[EOS]"
    )
    config = transformers.GPT2Config(
        vocab_size=len(vocab),
        n_positions=8192,
        n_embd=16,
        n_layer=1,
        n_head=2,
        eos_token_id=1,
        bos_token_id=1,
        pad_token_id=1,
    )
    model = transformers.GPT2LMHeadModel(config)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    agent = LLMAgent(model=str(tmp_path), max_retries=1, max_new_tokens=8, temperature=0)
    agent.reset(SCHEMA)
    proposal = agent.propose('{"task": "iris"}')
    assert SCHEMA.validate(proposal) == proposal
    decision = agent.decisions[0]
    assert 1 <= len(decision.attempts) <= 2 and decision.attempts[0].reply is not None
