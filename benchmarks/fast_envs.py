"""Steps per second of Replay-v0 and Surrogate-v0 against a trivial gymnasium env.

All envs are built with ``gymnasium.make`` (so they carry the same standard
wrappers), use the flat interface's spaces, and are stepped with the same
pre-sampled actions in one process. The trivial env has the same spaces and
does nothing in ``step`` but return a constant observation: it measures the
floor that gymnasium itself costs.

Run: ``python -m benchmarks.fast_envs [--source researchgym/Digits-v0] [--steps 20000] [--data PATH]``
"""

from __future__ import annotations

import argparse
import sys
import time

import gymnasium as gym
import numpy as np

import researchgym  # noqa: F401 - registers the envs


class TrivialEnv(gym.Env):
    """Same spaces as the measured env; ``step`` does nothing."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space):
        self.observation_space, self.action_space = observation_space, action_space
        self._obs = np.zeros(observation_space.shape, dtype=observation_space.dtype)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._obs.copy(), {}

    def step(self, action):
        return self._obs.copy(), 0.0, False, False, {}


def steps_per_second(env: gym.Env, actions: np.ndarray, budget: int) -> float:
    env.reset(seed=0)
    for action in actions[:100]:  # warm-up
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    start = time.perf_counter()
    for i, action in enumerate(actions):
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return len(actions) / (time.perf_counter() - start)


def batched_predictions_per_second(env: gym.Env, actions: np.ndarray, batch: int) -> float:
    """Surrogate predictions per second when flat actions are scored ``batch`` at a time."""
    model = env.unwrapped.executor.model
    tasks = [model.tasks[0]] * batch
    start = time.perf_counter()
    done = 0
    for i in range(0, len(actions) - batch + 1, batch):
        model.predict(model.features(actions[i : i + batch], tasks))
        done += batch
    return done / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="researchgym/Digits-v0")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument(
        "--data", default=None, help="store of recorded runs (default: shipped reference)"
    )
    args = parser.parse_args(argv)

    common = {"source": args.source, "data": args.data, "interface": "flat", "budget": 100}
    replay = gym.make("researchgym/Replay-v0", missing="nearest", **common)
    surrogate = gym.make("researchgym/Surrogate-v0", **common)
    trivial = TrivialEnv(replay.observation_space, replay.action_space)
    gym.register("bench/Trivial-v0", entry_point=lambda: trivial)
    trivial = gym.make("bench/Trivial-v0")

    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(args.steps, replay.action_space.shape[0])).astype(np.float32)
    # Half the replay actions are recorded metaprograms (exact hits), half are misses.
    hits = replay.unwrapped.executor.recorded_vectors()
    actions[::2] = hits[rng.integers(len(hits), size=len(actions[::2]))]

    batch = min(1024, args.steps)  # at least one call, however few the steps
    results = {
        "trivial gymnasium env": steps_per_second(trivial, actions, args.steps),
        "Replay-v0": steps_per_second(replay, actions, args.steps),
        "Surrogate-v0": steps_per_second(surrogate, actions, args.steps),
        f"surrogate model alone, {batch} actions per call": batched_predictions_per_second(
            surrogate, actions, batch
        ),
    }
    base = results["trivial gymnasium env"]
    print(
        f"command: python -m benchmarks.fast_envs {' '.join(argv if argv is not None else sys.argv[1:])}"
    )
    print(f"source env: {args.source}; {args.steps} steps each; single process")
    print(f"{'env':<45}{'steps/s':>12}{'vs trivial':>12}")
    for name, rate in results.items():
        print(f"{name:<45}{rate:>12,.0f}{rate / base:>12.3f}")
    print("targets: Replay-v0 >= 20,000 steps/s, Surrogate-v0 >= 2,000 steps/s")


if __name__ == "__main__":
    main()
