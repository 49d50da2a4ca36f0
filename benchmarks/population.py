"""Population training: K digits MLPs as one vector-env step versus K sequential ``env.step``s.

Both sides train the same K metaprograms with the same seeds through the env:
``gym.make_vec("researchgym/Digits-v0", num_envs=K)`` trains them as one batched job
(``researchgym.engine.population``), ``gym.make("researchgym/Digits-v0")`` one
``env.step`` after another. The metaprograms share the default MLP structure
(2 ReLU layers of 128 units, batch 64, ``--epochs`` epochs) and draw optimizer (Adam,
AdamW, SGD), learning rate, weight decay, momentum, schedule and dropout from a seeded
generator; the ``--mixed-sizes`` rows draw widths of 64, 96 or 128 too (padded to 128 in
the batch, so the batched side computes more than the sequential one). Each side's time covers the steps
alone (envs made and reset, and one warm-up step of each side, outside it);
repetitions alternate sides and medians are compared. Samples/s counts training
examples processed. The sides' sub-envs draw other training seeds, so their rewards
differ run by run; their mean rewards are printed to show both train as well
(``tests/engine/test_population.py`` checks that a member's run equals its run alone).

With ``--campaign``, it times one planner's campaign instead: random search for
``--steps`` steps on Digits with ``run_campaign(..., batch=--batch)`` (each round's
proposals taken by ``ResearchEnv.step_many``, one batched job) versus ``batch=1`` (one
``env.step`` per proposal). The default MLP structure is pinned (:data:`STRUCTURE`) so
that every proposal shares a batch; the other settings are drawn. Both sides propose the
same metaprograms and train them with the same seeds; each side's time covers the
whole campaign (reset included), after a warm-up campaign of each.

Run: ``python -m benchmarks.population [--sizes 16 64] [--mixed-sizes 16] [--repeats 3]
[--epochs 10] [--threads N] [--device auto] [--precision fp32] [--compile]``
(``--precision`` and ``--compile`` set both sides' ``researchgym.engine.Runtime``; with
``--compile`` the batched side trains its members one by one, compiled, and every member
is compiled once before the timed repetitions), or
``python -m benchmarks.population --campaign [--steps 32] [--batch 16] [--repeats 2]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import researchgym  # noqa: F401 - registers the envs
from researchgym.engine import Runtime, resolve_device
from researchgym.envs.research_env import unwrap_research_env
from researchgym.planning import make_planner, run_campaign

ENV_ID = "researchgym/Digits-v0"
#: The default MLP structure, pinned in ``--campaign`` so that every proposal shares a batch.
STRUCTURE = {
    "model.family": "mlp",
    "model.depth": 2,
    "model.width": 128,
    "model.activation": "relu",
    "model.norm": "none",
    "train.batch_size": 64,
    "data.scaling": "standard",
}


def population(k: int, epochs: int, seed: int = 0, widths: bool = False) -> list[dict[str, Any]]:
    """``k`` metaprograms (partial settings) of the default MLP (2 x 128 ReLU, batch 64),
    or with widths of 64, 96 and 128 mixed."""
    rng = np.random.default_rng(seed)
    members = []
    for _ in range(k):
        optimizer = str(rng.choice(["adam", "adamw", "sgd"]))
        lr = 10 ** rng.uniform(-3.5, -2.0) if optimizer != "sgd" else 10 ** rng.uniform(-2, -0.5)
        width = int(rng.choice([64, 96, 128]))
        member = {
            "model.family": "mlp",
            "model.width": width if widths else 128,
            "model.dropout": float(rng.choice([0.0, 0.1])),
            "optim.name": optimizer,
            "optim.lr": float(lr),
            "optim.weight_decay": float(rng.choice([0.0, 1e-4, 1e-2])),
            "optim.schedule": str(rng.choice(["constant", "cosine"])),
            "train.epochs": epochs,
        }
        if optimizer == "sgd":
            member["optim.momentum"] = float(rng.uniform(0.5, 0.95))
        members.append(member)
    return members


def sequential(
    members: list[dict[str, Any]], device: str, runtime: Runtime
) -> tuple[float, list[float], int]:
    """Seconds, rewards and samples of one env stepping the members one after another."""
    env = gym.make(ENV_ID, store=False, budget=len(members), device=device, runtime=runtime)
    base = unwrap_research_env(env)
    env.reset(seed=0)
    actions = [base.to_action(m) for m in members]
    rewards, samples = [], 0
    started = time.perf_counter()
    for action in actions:
        _, reward, _, _, info = env.step(action)
        rewards.append(float(reward))
        samples += info["cost"]["samples"]
    seconds = time.perf_counter() - started
    env.close()
    return seconds, rewards, samples


def batched(
    members: list[dict[str, Any]], device: str, runtime: Runtime
) -> tuple[float, list[float], int]:
    """Seconds, rewards and samples of one vector step training all members."""
    envs = gym.make_vec(
        ENV_ID, num_envs=len(members), store=False, budget=1, device=device, runtime=runtime
    )
    envs.reset(seed=0)
    one = envs.envs[0]  # type: ignore[attr-defined]  # a ResearchVectorEnv
    actions = [one.to_action(m) for m in members]
    batch = {name: np.stack([a[name] for a in actions]) for name in actions[0]}
    started = time.perf_counter()
    _, rewards, _, _, info = envs.step(batch)
    seconds = time.perf_counter() - started
    envs.close()
    return seconds, [float(r) for r in rewards], int(np.sum(info["cost"]["samples"]))


def campaign(steps: int, batch: int, epochs: int, device: str) -> tuple[float, float | None]:
    """Seconds and best validation score of a random-search campaign of ``steps`` steps,
    ``batch`` proposals trained together."""
    env = gym.make(ENV_ID, store=False, budget=steps, device=device)
    fixed = {**STRUCTURE, "train.epochs": epochs}
    started = time.perf_counter()
    result = run_campaign(env, make_planner("random"), seed=0, fixed=fixed, batch=batch)
    seconds = time.perf_counter() - started
    env.close()
    return seconds, result.best_score


def compare_campaigns(steps: int, batch: int, epochs: int, repeats: int, device: str) -> None:
    """Print the medians of ``repeats`` campaigns of each side, run alternately."""
    campaign(2, 2, 1, device), campaign(2, 1, 1, device)  # data loaded, code paths warm
    times: dict[int, list[float]] = {1: [], batch: []}
    best: dict[int, float | None] = {}
    for _ in range(repeats):
        for size in (1, batch):
            seconds, best[size] = campaign(steps, size, epochs, device)
            times[size].append(seconds)
    one, many = statistics.median(times[1]), statistics.median(times[batch])
    print(f"random search, {steps} steps, {epochs} epochs, median of {repeats}")
    print(f"{'batch':>6} {'seconds':>8} {'best score':>11}")
    for size, median in ((1, one), (batch, many)):
        print(f"{size:>6} {median:>8.2f} {best[size]:>11.4f}")
    print(f"speedup of batch={batch}: {one / many:.2f}x")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 64])
    parser.add_argument(
        "--mixed-sizes", type=int, nargs="*", default=[16], help="K's run with mixed widths too"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--compile", action="store_true", help="torch.compile the models")
    parser.add_argument(
        "--campaign", action="store_true", help="time a random-search campaign, batch vs 1"
    )
    parser.add_argument("--steps", type=int, default=32, help="steps of a --campaign")
    parser.add_argument("--batch", type=int, default=16, help="proposals per round of a --campaign")
    args = parser.parse_args(argv)
    runtime = Runtime(precision=args.precision, compile=args.compile)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = str(resolve_device(args.device))
    print(f"command: python -m benchmarks.population {' '.join(argv or sys.argv[1:])}")
    print(
        f"device={device} precision={args.precision} compile={args.compile} "
        f"torch threads={torch.get_num_threads()} epochs={args.epochs}"
    )
    if args.campaign:
        compare_campaigns(args.steps, args.batch, args.epochs, args.repeats, device)
        return
    warm = population(2, 1, seed=1)
    sequential(warm, device, runtime), batched(warm, device, runtime)  # data loaded, code warm
    print(
        f"{'K':>4} {'widths':>7} {'sequential s':>13} {'batched s':>10} {'speedup':>8} "
        f"{'seq samples/s':>14} {'batch samples/s':>16} {'mean reward seq/batch':>22}"
    )
    runs = [(k, False) for k in args.sizes] + [(k, True) for k in args.mixed_sizes]
    for k, widths in runs:
        members = population(k, args.epochs, widths=widths)
        if args.compile:  # compiled code is cached per process: compile every model first
            sequential(members, device, runtime)
        seq_times, batch_times, seq_rewards, batch_rewards = [], [], [], []
        samples = 0
        for _ in range(args.repeats):
            seq_s, rewards, samples = sequential(members, device, runtime)
            seq_times.append(seq_s)
            seq_rewards += rewards
            batch_s, rewards, _ = batched(members, device, runtime)
            batch_times.append(batch_s)
            batch_rewards += rewards
        seq, bat = statistics.median(seq_times), statistics.median(batch_times)
        print(
            f"{k:>4} {'64-128' if widths else '128':>7} {seq:>13.2f} {bat:>10.2f} {seq / bat:>7.2f}x "
            f"{samples / seq:>14.0f} {samples / bat:>16.0f} "
            f"{statistics.mean(seq_rewards):>11.3f}/{statistics.mean(batch_rewards):.3f}"
        )


if __name__ == "__main__":
    main()
