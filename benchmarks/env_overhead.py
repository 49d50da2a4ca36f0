"""Env overhead: ``env.step`` of a digits MLP versus a bare PyTorch loop doing the same training.

Both sides train the same model (2 x 128 ReLU MLP, Adam 1e-3, batch 64, 10
epochs) on the same device-resident digits tensors and produce the same
outputs: the learning curve (mean train loss, validation loss and accuracy
after every epoch) and the test accuracy at the end. The env side also validates the action, builds the observation
and, unless ``--no-store``, durably records the step in a Parquet store.
Repetitions are interleaved so drift hits both sides alike; medians are compared.

Run: ``python -m benchmarks.env_overhead [--repeats 30] [--device auto] [--no-store]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import gymnasium as gym
import torch
from torch import nn

import researchgym  # noqa: F401 - registers the envs
from researchgym.engine import load_task_data, resolve_device

EPOCHS, BATCH, LR, WIDTH, SEED = 10, 64, 1e-3, 128, 0


def bare_loop(device: torch.device) -> float:
    """Hand-written training of the same model on the same tensors; returns test accuracy."""
    data = load_task_data("digits", "standard", str(device))
    torch.manual_seed(SEED)
    generator = torch.Generator(device=device).manual_seed(SEED)
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(64, WIDTH),
        nn.ReLU(),
        nn.Linear(WIDTH, WIDTH),
        nn.ReLU(),
        nn.Linear(WIDTH, 10),
    ).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    x, y, n = data.x_train, data.y_train, len(data.x_train)
    curve = []
    for epoch in range(EPOCHS):
        model.train()
        order = torch.randperm(n, generator=generator, device=device)
        train_loss = torch.zeros((), device=device)
        for start in range(0, n, BATCH):
            idx = order[start : start + BATCH]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            train_loss += loss.detach() * len(idx)
        model.eval()
        with torch.no_grad():
            logits = model(data.x_val)
            val_loss = nn.functional.cross_entropy(logits, data.y_val)
            val_acc = (logits.argmax(1) == data.y_val).float().mean()
        curve.append((epoch, float(train_loss) / n, float(val_loss), float(val_acc)))
    with torch.no_grad():
        test_acc = float((model(data.x_test).argmax(1) == data.y_test).float().mean())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return test_acc


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-store", action="store_true", help="do not record steps")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)

    store_dir = tempfile.mkdtemp(prefix="researchgym-bench-")
    env = gym.make(
        "researchgym/Digits-v0",
        store=False if args.no_store else store_dir,
        budget=args.repeats + 5,
        device=str(device),
        agent="benchmark",
    )
    action = env.unwrapped.to_action(
        {
            "model.width": WIDTH,
            "model.depth": 2,
            "optim.lr": LR,
            "train.batch_size": BATCH,
            "train.epochs": EPOCHS,
        }
    )
    env.reset(seed=SEED)

    for _ in range(3):  # warm-up outside the timed region: kernels, allocator, caches
        bare_loop(device)
        env.step(action)

    env_times, bare_times = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        env.step(action)
        env_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        bare_loop(device)
        bare_times.append(time.perf_counter() - start)
    env.close()

    env_med, bare_med = statistics.median(env_times), statistics.median(bare_times)
    overhead = env_med / bare_med - 1.0
    print(
        f"command: python -m benchmarks.env_overhead {' '.join(argv if argv is not None else sys.argv[1:])}"
    )
    print(
        f"device: {device}; torch {torch.__version__}; threads {torch.get_num_threads()}; repeats {args.repeats}"
    )
    print(f"recording: {'off' if args.no_store else 'on (' + store_dir + ')'}")
    print(f"bare PyTorch loop   median {bare_med * 1e3:8.2f} ms  (min {min(bare_times) * 1e3:.2f})")
    print(f"env.step            median {env_med * 1e3:8.2f} ms  (min {min(env_times) * 1e3:.2f})")
    print(f"overhead: env/bare = {env_med / bare_med:.4f}  ({overhead * 100:+.2f}%, target < +5%)")


if __name__ == "__main__":
    main()
