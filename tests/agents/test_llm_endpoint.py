"""The LLM agent against a failing chat-completions endpoint on 127.0.0.1.

Every failure is recorded with its status in ``agent.decisions`` and raised as an
``EndpointError``: nothing falls back to default settings that pass for the model's choice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread

import gymnasium as gym
import pytest
from typer.testing import CliRunner

from agents.llm_agent import EndpointError, LLMAgent
from researchgym.cli import app
from researchgym.envs.suites import get_suite
from researchgym.planning import PlannerError, run_campaign
from researchgym.store import open_store

SCHEMA = get_suite("tabular").make_schema()
GOOD = {"model.family": "linear", "optim.lr": 0.01}
COMPLETION = json.dumps(
    {"choices": [{"message": {"role": "assistant", "content": json.dumps(GOOD)}}]}
)


@dataclass
class Answer:
    """One scripted HTTP answer."""

    code: int = 200
    body: str = COMPLETION
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class Script:
    """Answers in order (the last one repeats) and counts the requests."""

    def __init__(self) -> None:
        self.answers: list[Answer] = [Answer()]
        self.requests = 0

    def __call__(self, *answers: Answer) -> None:
        self.answers = list(answers)

    def next(self) -> Answer:
        self.requests += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    """A scripted endpoint: yields its URL and the script to set its answers."""
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            answer = script.next()
            time.sleep(answer.delay)
            payload = answer.body.encode()
            try:
                self.send_response(answer.code)
                for name, value in {"Content-Type": "application/json", **answer.headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:  # the client gave up (the timeout case)
                pass

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}/v1", script
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _agent(url: str, **kwargs) -> LLMAgent:
    agent = LLMAgent(url=url, **{"timeout": 5, "retries": 2, "max_wait": 5, **kwargs})
    agent.reset(SCHEMA)
    return agent


def _fails(agent: LLMAgent, status: str, match: str) -> EndpointError:
    """Propose once, expect an EndpointError, and check what the decision recorded."""
    with pytest.raises(EndpointError, match=match) as caught:
        agent.propose("{}")
    assert caught.value.status == status
    decision = agent.decisions[-1]
    assert decision.status == status and not decision.fallback and decision.metaprogram == {}
    assert [a.status for a in decision.attempts] == [status]
    assert decision.attempts[0].reply is None and decision.attempts[0].error == str(caught.value)
    return caught.value


def test_a_working_endpoint_is_ok(server) -> None:
    url, script = server
    agent = _agent(url)
    assert agent.propose("{}") == SCHEMA.validate(GOOD)
    assert agent.decisions[-1].status == "ok" and script.requests == 1


@pytest.mark.parametrize("code", [400, 401, 404, 422])
def test_a_client_error_fails_at_once(server, code: int) -> None:
    url, script = server
    script(Answer(code, body='{"error": "bad key or model"}'))
    error = _fails(_agent(url), "client_error", f"HTTP {code}")
    assert "bad key or model" in str(error) and "check the url, key and model_name" in str(error)
    assert script.requests == 1  # not retried
    assert isinstance(error, PlannerError)


def test_a_server_error_is_retried_then_succeeds(server) -> None:
    url, script = server
    script(
        Answer(503, headers={"Retry-After": "0"}),
        Answer(500, headers={"Retry-After": "0"}),
        Answer(),
    )
    agent = _agent(url)
    assert agent.propose("{}") == SCHEMA.validate(GOOD)
    assert agent.decisions[-1].status == "ok" and script.requests == 3


def test_a_lasting_server_error_fails_after_the_retries(server) -> None:
    url, script = server
    script(Answer(502, body="upstream down", headers={"Retry-After": "0"}))
    error = _fails(_agent(url, retries=2), "server_error", "HTTP 502")
    assert "upstream down" in str(error) and "(3 requests)" in str(error)
    assert script.requests == 3


def test_429_waits_as_long_as_retry_after_asks(server) -> None:
    url, script = server
    script(Answer(429, headers={"Retry-After": "1"}), Answer())
    agent = _agent(url)
    started = time.perf_counter()
    assert agent.propose("{}") == SCHEMA.validate(GOOD)
    assert time.perf_counter() - started >= 1.0
    assert agent.decisions[-1].status == "ok" and script.requests == 2


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_429_asking_for_more_than_max_wait_fails_at_once(server, form: str) -> None:
    url, script = server
    retry_after = "120" if form == "seconds" else formatdate(time.time() + 120, usegmt=True)
    script(Answer(429, body="slow down", headers={"Retry-After": retry_after}))
    started = time.perf_counter()
    error = _fails(_agent(url, max_wait=5), "rate_limited", "HTTP 429")
    assert time.perf_counter() - started < 5
    assert "more than max_wait=5s" in str(error)
    assert script.requests == 1


def test_a_lasting_429_fails_after_the_retries(server) -> None:
    url, script = server
    script(Answer(429, headers={"Retry-After": "0"}))
    error = _fails(_agent(url, retries=1), "rate_limited", "HTTP 429")
    assert "(2 requests)" in str(error) and script.requests == 2


def test_a_timeout_is_reported(server) -> None:
    url, script = server
    script(Answer(delay=2.0))
    started = time.perf_counter()
    error = _fails(_agent(url, timeout=0.5), "timeout", "no reply within 0.5s")
    assert time.perf_counter() - started < 2.0
    assert "raise timeout=" in str(error)


@pytest.mark.parametrize("body", ["<html>502 Bad Gateway</html>", '{"object": "error"}', ""])
def test_a_body_that_is_no_chat_completion_is_a_bad_response(server, body: str) -> None:
    url, script = server
    script(Answer(body=body))
    error = _fails(_agent(url), "bad_response", "not a chat completion")
    assert body[:20] in str(error)
    assert script.requests == 1


def test_a_campaign_stops_on_an_endpoint_failure(server, tmp_path) -> None:
    url, script = server
    script(Answer(), Answer(403, body="quota exhausted"))
    env = gym.make(
        "researchgym/Replay-v0",
        source="researchgym/Tabular-v0",
        interface="text",
        missing="nearest",
        store=tmp_path,
        budget=3,
        disable_env_checker=True,
    )
    agent = _agent(url)
    with pytest.raises(EndpointError, match="quota exhausted"):
        run_campaign(env, agent, seed=0, options={"task": "iris"})
    env.close()
    assert [d.status for d in agent.decisions] == ["ok", "client_error"]
    rows = open_store(tmp_path).sql("SELECT step, status FROM steps").to_pylist()
    assert rows == [{"step": 0, "status": "ok"}]  # nothing was trained for the failed request


def test_rollout_cli_fails_clearly_on_an_endpoint_failure(server) -> None:
    url, script = server
    script(Answer(401, body="invalid api key"))
    result = CliRunner().invoke(
        app,
        [
            "rollout",
            "--agent",
            "llm",
            "--env",
            "researchgym/Replay-v0",
            "--steps",
            "1",
            "--store",
            "none",
            "--agent-arg",
            f"url={url}",
            "--agent-arg",
            "timeout=5",
        ],
    )
    assert result.exit_code != 0
    output = " ".join(result.output.split())
    assert "HTTP 401" in output and "invalid api key" in output
    assert "best found" not in output
