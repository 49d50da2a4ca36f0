"""The transformer planner: training from stored runs, constrained decoding, CLI."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import gymnasium as gym
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

pytest.importorskip("transformers")

from agents.transformer_planner import TrainConfig, TransformerPlanner, build_model, train_planner
from researchgym.cli import app
from researchgym.envs.suites import get_suite
from researchgym.planning import PlannerError, make_planner, run_campaign
from researchgym.serialize import Serializer
from researchgym.spaces import Categorical, Int

SOURCE = "researchgym/Tabular-v0"
TINY = {
    "steps": 8,
    "n_layer": 1,
    "n_head": 2,
    "n_embd": 32,
    "batch_size": 4,
    "campaign_len": 4,
    "eval_every": 4,
}
SCHEMAS = {name: get_suite(name).make_schema() for name in ("tabular", "digits")}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return train_planner(
        env_id=SOURCE, tasks=["iris", "wine"], out=tmp_path_factory.mktemp("tp") / "ckpt", **TINY
    )


def test_training_saves_a_checkpoint_with_tokenizer_and_loss_curve(checkpoint):
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "serializer.json",
        "loss.png",
        "training.json",
    ):
        assert (checkpoint / name).exists(), name
    record = json.loads((checkpoint / "training.json").read_text())
    assert record["tasks"] == ["iris", "wine"]
    assert len(record["history"]) == TINY["steps"]
    assert any("val_loss" in h for h in record["history"])


def _random_planner(suite: str, seed: int, **kwargs) -> TransformerPlanner:
    schema = SCHEMAS[suite]
    serializer = Serializer(schema, [f"researchgym/{suite}"], n_bins=8, score_bins=8)
    import torch

    torch.manual_seed(seed)
    model = build_model(serializer, TrainConfig(n_layer=1, n_head=2, n_embd=16, n_positions=512))
    return TransformerPlanner(model=model, serializer=serializer, **kwargs)


def _pins(schema, data):
    names = data.draw(st.lists(st.sampled_from(schema.names), max_size=3, unique=True))
    pins = {}
    for name in names:
        s = schema[name]
        if isinstance(s, Categorical):
            pins[name] = data.draw(st.sampled_from(s.choices))
        elif isinstance(s, Int):
            pins[name] = data.draw(st.integers(s.low, s.high))
        else:
            pins[name] = data.draw(st.floats(s.low, s.high))
    return pins


@pytest.mark.parametrize("suite", ["tabular", "digits"])
@settings(max_examples=15)
@given(data=st.data(), seed=st.integers(0, 2**16), temperature=st.sampled_from([0.0, 1.0, 5.0]))
def test_decoding_never_proposes_an_invalid_action(suite, data, seed, temperature):
    schema = SCHEMAS[suite]
    planner = _random_planner(suite, seed % 7, temperature=temperature)
    pins = _pins(schema, data)
    planner.reset(schema, seed=seed, fixed=pins)
    for step in range(2):
        proposal = planner.propose({"task": [1.0, 2.0, 1.0, 0.0, 0.0]})
        assert schema.validate(proposal) == proposal  # valid, complete, only active settings
        for name, value in pins.items():
            if name in proposal:
                assert proposal[name] == schema[name].validate(value)
        planner.observe(
            proposal, 0.5, {"status": "ok" if step else "diverged", "metrics": {"score": 0.5}}
        )


def test_candidates_keep_the_best_predicted_score():
    schema = SCHEMAS["tabular"]
    planner = _random_planner("tabular", 0, n_candidates=4)
    planner.reset(schema, seed=0)
    planner.propose(None)
    assert len(planner.predicted) == 1 and -1.0 <= planner.predicted[0] <= 1.0


def test_campaign_on_replay_env_is_all_valid(checkpoint):
    env = gym.make("researchgym/Replay-v0", source=SOURCE, missing="nearest", budget=4, store=False)
    result = run_campaign(
        env, make_planner("transformer", policy=checkpoint), seed=1, options={"task": "iris"}
    )
    assert [s.status for s in result.steps] == ["ok"] * 4
    metaprograms = [json.dumps(s.metaprogram, sort_keys=True) for s in result.steps]
    assert len(set(metaprograms)) == 4  # repeats are resampled


def test_missing_or_mismatched_checkpoint_is_a_clear_error(tmp_path, checkpoint):
    with pytest.raises(PlannerError, match="train-planner"):
        TransformerPlanner(tmp_path / "nothing")
    with pytest.raises(PlannerError, match="train a planner on this env"):
        TransformerPlanner(checkpoint).reset(SCHEMAS["digits"])


def test_cli_train_planner_then_rollout(tmp_path):
    runner = CliRunner()
    out = tmp_path / "ckpt"
    result = runner.invoke(
        app,
        [
            "train-planner",
            "--env",
            SOURCE,
            "--task",
            "iris",
            "--timesteps",
            "3",
            "--batch-size",
            "2",
            "--campaign-len",
            "3",
            "--n-layer",
            "1",
            "--n-head",
            "2",
            "--n-embd",
            "16",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (out / "loss.png").exists() and "saved" in result.output
    result = runner.invoke(
        app,
        [
            "rollout",
            "--agent",
            "transformer",
            "--policy",
            str(out),
            "--env",
            SOURCE,
            "--steps",
            "2",
            "--store",
            "none",
            "--set",
            "train.epochs=1",
            "--set",
            "train.batch_size=256",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "best found" in result.output


def test_batched_candidates_score_exactly_like_their_own_sequences():
    """Each candidate's predicted score equals a plain forward pass over its own tokens,
    though candidates with different active settings were decoded together."""
    import torch

    from researchgym.serialize import Step

    schema = SCHEMAS["tabular"]
    planner = _random_planner("tabular", 0)
    planner.reset(schema, seed=3, fixed={"train.epochs": 10})
    planner.features = [1.0, 2.0, 1.0, 0.0, 0.0]
    context = planner._context()
    candidates = planner.decode(context, 8)
    assert len({c[0]["model.family"] for c in candidates}) == 2  # different conditional branches
    s = planner.serializer
    score_ids = [s.vocab[t] for t in s.score_tokens]
    for values, predicted in candidates:
        ids = context + s.encode(
            s.step_tokens(Step(values, 0.0, "ok"))[1:-1]
        )  # no [STEP], no score
        with torch.no_grad():
            logits = planner.model(torch.tensor([ids])).logits[0, -1]
        expected = torch.softmax(logits[score_ids], -1).numpy() @ s.score_values()
        assert predicted == pytest.approx(float(expected), abs=1e-5)


def test_training_on_from_a_checkpoint_keeps_its_weights_and_vocabulary(tmp_path, checkpoint):
    import torch
    from transformers import GPT2LMHeadModel

    out = train_planner(
        env_id=SOURCE,
        tasks=["iris"],
        init_from=str(checkpoint),
        out=tmp_path / "next",
        **{**TINY, "steps": 2, "lr": 0.0},
    )
    before, after = (
        GPT2LMHeadModel.from_pretrained(checkpoint),
        GPT2LMHeadModel.from_pretrained(out),
    )
    for (name, a), b in zip(before.state_dict().items(), after.state_dict().values()):
        assert torch.equal(a, b), name
    assert (out / "serializer.json").read_text() == (checkpoint / "serializer.json").read_text()


def test_cli_train_agent_transformer(tmp_path):
    out = tmp_path / "policy"
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--agent",
            "transformer",
            "--env",
            SOURCE,
            "--timesteps",
            "3",
            "--out",
            str(out),
            "--agent-arg",
            "n_layer=1",
            "--agent-arg",
            "n_embd=16",
            "--agent-arg",
            "n_head=2",
            "--agent-arg",
            "batch_size=2",
            "--agent-arg",
            "tasks=[iris]",
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "training.json").read_text())
    assert len(record["history"]) == 3 and record["tasks"] == ["iris"]
    result = CliRunner().invoke(
        app, ["train", "--agent", "transformer", "--env", SOURCE, "--agent-arg", "depth=3"]
    )
    message = " ".join(result.output.split())
    assert result.exit_code == 2 and "transformer training has no option 'depth'" in message


def test_the_suites_held_out_tasks_are_never_trained_on_by_default(tmp_path):
    out = train_planner(
        env_id="researchgym/Synthetic-v0", out=tmp_path / "ckpt", **{**TINY, "steps": 1}
    )
    trained = json.loads((out / "training.json").read_text())["tasks"]
    suite = get_suite("synthetic")
    assert trained == sorted(suite.tasks) and not set(trained) & set(suite.held_out_tasks)


def test_the_commands_take_the_trainers_and_the_planners_defaults(monkeypatch, tmp_path):
    import agents.transformer_planner as module
    from researchgym.generation_loop import generation_loop
    from researchgym.planning import parse_args

    calls = []
    monkeypatch.setattr(module, "train_planner", lambda **kwargs: calls.append(kwargs) or tmp_path)
    for command in (["train-planner"], ["train", "--agent", "transformer"]):
        result = CliRunner().invoke(app, [*command, "--env", SOURCE])
        assert result.exit_code == 0, result.output
    for kwargs in calls:
        given = {k: v for k, v in kwargs.items() if k not in ("out", "progress")}
        assert TrainConfig(**given) == TrainConfig(env_id=SOURCE)
        assert kwargs["out"] == module.DEFAULT_PATH

    planner = inspect.signature(TransformerPlanner).parameters
    args = parse_args(module.Args, [])
    assert args.timesteps == TrainConfig.steps and args.out is None  # the trainer's own
    assert (args.n_candidates, args.temperature) == (
        planner["n_candidates"].default,
        planner["temperature"].default,
    )
    assert inspect.signature(generation_loop).parameters["n_candidates"].default == (
        planner["n_candidates"].default
    )
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert f"{TrainConfig.steps:,} steps" in readme
