"""Trajectory-store write and query speed, with Optuna's SQLite storage as reference.

Run::

    python -m benchmarks.store_bench [--rows 1000000] [--optuna-rows 10000] [--json out.json]

Measures, in one run: writing synthetic step rows through the batch path, the
latency of one durable single-row append, the best-run-per-task query on a
compacted store and on a live store of many small files, one pass of episode
iteration, and the same rows stored and queried through Optuna's RDBStorage
on SQLite. Prints a table, the ratios and the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from researchgym.store import Store

_T0 = datetime(2024, 1, 1, tzinfo=UTC)
BEST_QUERY = "SELECT * FROM best_runs ORDER BY env_id, task"


# --------------------------------------------------------------------------- synthetic data


def _hex_ids(n: int, rng: np.random.Generator) -> pa.Array:
    raw = rng.integers(0, 256, size=16 * n, dtype=np.uint8).tobytes().hex().encode()
    return pa.array(np.frombuffer(raw, dtype="S32")).cast(pa.string())


def _vectors(values: np.ndarray) -> pa.Array:
    n, d = values.shape
    return pa.ListArray.from_arrays(
        pa.array(np.arange(0, (n + 1) * d, d, dtype=np.int32)), pa.array(values.ravel())
    )


def _choices(options: list[str], n: int, rng: np.random.Generator) -> pa.Array:
    return pa.array(options).take(pa.array(rng.integers(0, len(options), n)))


def synthetic_table(
    n_rows: int,
    *,
    episode_len: int = 20,
    n_envs: int = 4,
    n_tasks: int = 25,
    obs_dim: int = 16,
    act_dim: int = 4,
    seed: int = 0,
) -> pa.Table:
    """Build ``n_rows`` plausible step rows, columnar, following the row contract.

    Args:
        n_rows: Rows to make.
        episode_len: Steps per campaign.
        n_envs: Distinct env ids.
        n_tasks: Distinct tasks per env.
        obs_dim: Observation vector size.
        act_dim: Flat action size.
        seed: Random seed.

    Returns:
        A table with every column of the row contract.
    """
    rng = np.random.default_rng(seed)
    n_eps = -(-n_rows // episode_len)
    episode = np.arange(n_rows) // episode_len
    step = np.arange(n_rows) % episode_len
    ep_env = rng.integers(0, n_envs, n_eps)
    ep_task = rng.integers(0, n_tasks, n_eps)
    envs = [f"researchgym/Synthetic{i}-v0" for i in range(n_envs)]
    tasks = [f"task-{i:03d}" for i in range(n_tasks)]
    ep_idx = pa.array(episode)
    val = rng.beta(5, 2, n_rows)
    failed = rng.random(n_rows) < 0.05
    val_arr = pa.array(np.where(failed, np.nan, val), from_pandas=True)
    val_text = pc.cast(pa.array(np.round(val, 6)), pa.string())
    metrics = pc.binary_join_element_wise('{"accuracy": ', val_text, ', "loss": 0.3}', "")
    test = pc.binary_join_element_wise('{"accuracy": ', val_text, "}", "")
    templates = [
        json.dumps({"model": m, "width": int(w), "lr": float(lr), "epochs": 5})
        for m, w, lr in zip(
            rng.choice(["mlp", "cnn", "transformer"], 1000),
            rng.integers(16, 512, 1000),
            rng.uniform(1e-4, 1e-1, 1000),
        )
    ]
    curves = [
        json.dumps([{"epoch": e, "val_accuracy": round(float(v), 4)} for e, v in enumerate(c)])
        for c in np.sort(rng.random((1000, 5)), axis=1)
    ]
    meta_idx = pa.array(rng.integers(0, len(templates), n_rows))
    started = pa.array(
        (np.datetime64(_T0.replace(tzinfo=None), "us") + (np.arange(n_rows) * 10_000_000)).astype(
            "datetime64[us]"
        )
    ).cast(pa.timestamp("us", tz="UTC"))
    finished = pa.array(started.cast(pa.int64()).to_numpy() + 5_000_000, type=pa.int64()).cast(
        pa.timestamp("us", tz="UTC")
    )
    status = pa.array(np.where(failed, "diverged", "ok"))
    return pa.table(
        {
            "campaign_id": _hex_ids(n_eps, rng).take(ep_idx),
            "step": pa.array(step),
            "run_id": _hex_ids(n_rows, rng),
            "env_id": pa.array(envs).take(pa.array(ep_env)).take(ep_idx),
            "env_version": pa.array(np.zeros(n_rows, dtype=np.int64)),
            "task": pa.array(tasks).take(pa.array(ep_task)).take(ep_idx),
            "agent": _choices(["random", "tpe", "ppo", "llm"], n_eps, rng).take(ep_idx),
            "seed": pa.array(episode % 10),
            "metaprogram": pa.array(templates).take(meta_idx),
            "action": pa.array(templates).take(meta_idx),
            "obs": _vectors(rng.standard_normal((n_rows, obs_dim))),
            "action_flat": _vectors(rng.random((n_rows, act_dim))),
            "val_score": val_arr,
            "val_metrics": metrics,
            "test_metrics": test,
            "curve": _choices(curves, n_rows, rng),
            "reward": pa.array(np.where(failed, -1.0, val)),
            "terminated": pa.array(step == episode_len - 1),
            "truncated": pa.array(np.zeros(n_rows, dtype=bool)),
            "cost_seconds": pa.array(rng.gamma(2.0, 1.5, n_rows)),
            "cost_samples": pa.array(rng.integers(1_000, 100_000, n_rows)),
            "status": status,
            "error": pa.array([None] * n_rows, type=pa.string()),
            "started_at": started,
            "finished_at": finished,
        }
    )


def synthetic_row(campaign_id: str, step: int, rng: np.random.Generator) -> dict[str, Any]:
    """One step row as the env would build it."""
    val = float(rng.random())
    started = _T0 + timedelta(seconds=step)
    action = {"model": "mlp", "width": int(rng.integers(16, 512)), "lr": float(rng.random())}
    return {
        "campaign_id": campaign_id,
        "step": step,
        "run_id": uuid.uuid4().hex,
        "env_id": "researchgym/Synthetic0-v0",
        "env_version": 0,
        "task": "task-000",
        "agent": "random",
        "seed": 0,
        "metaprogram": json.dumps({**action, "epochs": 5}),
        "action": json.dumps(action),
        "obs": rng.standard_normal(16).tolist(),
        "action_flat": rng.random(4).tolist(),
        "val_score": val,
        "val_metrics": json.dumps({"accuracy": val}),
        "test_metrics": json.dumps({"accuracy": val}),
        "curve": json.dumps([{"epoch": e, "val_accuracy": val} for e in range(5)]),
        "reward": val,
        "terminated": False,
        "truncated": False,
        "cost_seconds": 1.0,
        "cost_samples": 1000,
        "status": "ok",
        "error": None,
        "started_at": started,
        "finished_at": started + timedelta(seconds=1),
    }


# --------------------------------------------------------------------------- measurements


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def _timed_cpu(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process, all threads, result)."""
    c, t = time.process_time(), time.perf_counter()
    out = fn()
    return time.perf_counter() - t, time.process_time() - c, out


def _query_times(path: Path, repeats: int) -> tuple[float, float, float]:
    """(first query on a fresh Store, median wall and CPU of the following queries)."""
    with Store(path, auto_compact=None) as store:
        cold, _ = _timed(lambda: store.sql(BEST_QUERY))
        warm = [_timed_cpu(lambda: store.sql(BEST_QUERY))[:2] for _ in range(repeats)]
    return cold, statistics.median(w for w, _ in warm), statistics.median(c for _, c in warm)


def bench_store(root: Path, n_rows: int, live_files: int, live_rows: int, repeats: int) -> dict:
    """Run the store measurements; return seconds and counts."""
    r: dict[str, Any] = {}
    # Single-row latency first, on a quiet disk: fsync also waits for any
    # writeback of earlier bulk writes, which is not what is being measured.
    os.sync()
    rng = np.random.default_rng(1)
    latency_store = Store(root / "latency", auto_compact=None)
    campaign = uuid.uuid4().hex
    rows = [synthetic_row(campaign, i, rng) for i in range(200)]
    latency_store.append(rows[0])  # first-call imports and directory creation
    fsync_s: list[float] = []
    real_fsync = os.fsync

    def timed_fsync(fd: int) -> None:  # how much of a publish is waiting for the disk
        t = time.perf_counter()
        real_fsync(fd)
        fsync_s.append(time.perf_counter() - t)

    os.fsync = timed_fsync
    try:
        lat = [_timed(lambda row=row: latency_store.append(row))[0] for row in rows]
    finally:
        os.fsync = real_fsync
    r["append_median_s"] = statistics.median(lat)
    r["append_p95_s"] = float(np.percentile(lat, 95))
    per_append = np.asarray(fsync_s).reshape(len(rows), -1).sum(axis=1)
    r["append_fsync_median_s"] = float(np.median(per_append))

    table = synthetic_table(n_rows)
    r["rows"] = n_rows

    big = Store(root / "big", auto_compact=None)
    r["write_s"], r["write_cpu_s"], _ = _timed_cpu(lambda: big.append_many(table))
    r["compact_big_s"], _ = _timed(lambda: big.compact(min_files=1))
    count = big.sql("SELECT count(*) FROM steps").column(0)[0].as_py()
    if count != n_rows:
        raise RuntimeError(f"store holds {count} rows, expected {n_rows}")
    big.close()
    r["query_compacted_cold_s"], r["query_compacted_s"], r["query_compacted_cpu_s"] = _query_times(
        root / "big", repeats
    )

    with Store(root / "big", auto_compact=None) as store:

        def iterate() -> tuple[int, int]:
            episodes = steps = 0
            for episode in store.iter_episodes():
                episodes += 1
                steps += len(episode)
            return episodes, steps

        r["iterate_s"], r["iterate_cpu_s"], (r["episodes"], steps) = _timed_cpu(iterate)
        if steps != n_rows:
            raise RuntimeError(f"iteration saw {steps} steps, expected {n_rows}")

    live_table = synthetic_table(live_files * live_rows, seed=2)
    live = Store(root / "live", auto_compact=None)
    r["live_files"], r["live_rows"] = live_files, live_files * live_rows
    for i in range(live_files):
        live.append_many(live_table.slice(i * live_rows, live_rows))
    r["query_live_cold_s"], r["query_live_s"], r["query_live_cpu_s"] = _query_times(
        root / "live", repeats
    )
    r["compact_live_s"], _ = _timed(lambda: live.compact(min_files=1))
    (
        r["query_live_compacted_cold_s"],
        r["query_live_compacted_s"],
        r["query_live_compacted_cpu_s"],
    ) = _query_times(root / "live", repeats)
    return r


def bench_optuna(root: Path, n_rows: int, n_studies: int) -> dict:
    """Store ``n_rows`` trials in Optuna's SQLite RDBStorage and query best per study."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.trial import create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{root / 'optuna.db'}")
    dists = {
        "model": CategoricalDistribution(["mlp", "cnn", "transformer"]),
        "width": IntDistribution(16, 512),
        "lr": FloatDistribution(1e-4, 1e-1, log=True),
    }
    rng = np.random.default_rng(3)
    studies = [
        optuna.create_study(storage=storage, study_name=f"task-{i:03d}", direction="maximize")
        for i in range(n_studies)
    ]
    trials = [
        create_trial(
            params={
                "model": str(rng.choice(["mlp", "cnn", "transformer"])),
                "width": int(rng.integers(16, 512)),
                "lr": float(rng.uniform(1e-4, 1e-1)),
            },
            distributions=dists,
            value=float(rng.random()),
        )
        for _ in range(n_rows)
    ]

    def write() -> None:
        for i, trial in enumerate(trials):
            studies[i % n_studies].add_trial(trial)

    def query() -> list[float]:
        return [storage.get_best_trial(s._study_id).value for s in studies]

    write_s, _ = _timed(write)
    query_s, best = _timed(query)
    if len(best) != n_studies:
        raise RuntimeError("optuna query returned the wrong number of studies")
    return {"rows": n_rows, "write_s": write_s, "query_s": query_s}


# --------------------------------------------------------------------------- report


def _fmt_s(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def report(r: dict, o: dict) -> tuple[list[tuple[str, str, str, str]], dict[str, float]]:
    """Rows of (measurement, value, target, verdict) and the ratios."""
    per_row_write = r["write_s"] / r["rows"]
    per_row_query = r["query_compacted_s"] / r["rows"]
    optuna_write = o["write_s"] / o["rows"]
    optuna_query = o["query_s"] / o["rows"]
    ratios = {
        "write_vs_optuna_per_row": optuna_write / per_row_write,
        "query_vs_optuna_per_row": optuna_query / per_row_query,
        "append_vs_optuna_per_trial": optuna_write / r["append_median_s"],
        "live_vs_compacted_query": r["query_live_s"] / r["query_live_compacted_s"],
        "live_vs_1m_compacted_query": r["query_live_s"] / r["query_compacted_s"],
    }

    def ok(good: bool) -> str:
        return "ok" if good else "MISSED"

    rows = [
        (
            f"batch write, {r['rows']:,} rows",
            (
                f"{_fmt_s(r['write_s'])} ({per_row_write * 1e6:.2f} us/row; "
                f"cpu {_fmt_s(r['write_cpu_s'])})"
            ),
            "< 3 s",
            ok(r["write_s"] < 3),
        ),
        (
            "durable append, 1 row (200 appends)",
            (
                f"median {_fmt_s(r['append_median_s'])}, p95 {_fmt_s(r['append_p95_s'])} "
                f"(fsync file+dir: median {_fmt_s(r['append_fsync_median_s'])})"
            ),
            "< 5 ms",
            ok(r["append_median_s"] < 5e-3),
        ),
        (
            f"best per task, compacted ({r['rows']:,} rows)",
            (
                f"{_fmt_s(r['query_compacted_s'])} (cpu {_fmt_s(r['query_compacted_cpu_s'])}; "
                f"first {_fmt_s(r['query_compacted_cold_s'])})"
            ),
            "< 0.2 s",
            ok(r["query_compacted_s"] < 0.2),
        ),
        (
            (
                f"best per task, live ({r['live_files']} files x "
                f"{r['live_rows'] // r['live_files']:,} rows)"
            ),
            (
                f"{_fmt_s(r['query_live_s'])} (cpu {_fmt_s(r['query_live_cpu_s'])}; "
                f"first {_fmt_s(r['query_live_cold_s'])})"
            ),
            "<= 1.5x compacted",
            ok(ratios["live_vs_compacted_query"] <= 1.5),
        ),
        (
            f"best per task, same {r['live_rows']:,} rows compacted",
            (
                f"{_fmt_s(r['query_live_compacted_s'])} "
                f"(cpu {_fmt_s(r['query_live_compacted_cpu_s'])}; "
                f"first {_fmt_s(r['query_live_compacted_cold_s'])})"
            ),
            "",
            "",
        ),
        (
            f"compaction: {r['rows']:,} rows / {r['live_files']} live files",
            f"{_fmt_s(r['compact_big_s'])} / {_fmt_s(r['compact_live_s'])}",
            "",
            "",
        ),
        (
            f"iterate {r['episodes']:,} episodes ({r['rows']:,} steps)",
            (
                f"{_fmt_s(r['iterate_s'])} ({r['rows'] / r['iterate_s']:,.0f} steps/s; "
                f"cpu {_fmt_s(r['iterate_cpu_s'])})"
            ),
            "",
            "",
        ),
        (
            f"optuna sqlite: write {o['rows']:,} trials",
            f"{_fmt_s(o['write_s'])} ({optuna_write * 1e6:.0f} us/row)",
            "",
            "",
        ),
        (
            "optuna sqlite: best per study",
            f"{_fmt_s(o['query_s'])} ({optuna_query * 1e6:.2f} us/row)",
            "",
            "",
        ),
        (
            "ratio write per row (optuna / ours)",
            f"{ratios['write_vs_optuna_per_row']:,.0f}x",
            ">= 10x",
            ok(ratios["write_vs_optuna_per_row"] >= 10),
        ),
        (
            "ratio query per row (optuna / ours)",
            f"{ratios['query_vs_optuna_per_row']:,.0f}x",
            ">= 10x",
            ok(ratios["query_vs_optuna_per_row"] >= 10),
        ),
        (
            "ratio one durable append vs one optuna trial",
            f"{ratios['append_vs_optuna_per_trial']:,.1f}x",
            "",
            "",
        ),
        (
            "ratio live / compacted query",
            (
                f"{ratios['live_vs_compacted_query']:.2f}x "
                f"(vs {r['rows']:,}-row store: {ratios['live_vs_1m_compacted_query']:.2f}x)"
            ),
            "<= 1.5x",
            ok(ratios["live_vs_compacted_query"] <= 1.5),
        ),
    ]
    return rows, ratios


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the results."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.store_bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for the batch write")
    parser.add_argument("--live-files", type=int, default=300, help="files in the live store")
    parser.add_argument("--live-rows", type=int, default=1_000, help="rows per live-store file")
    parser.add_argument("--optuna-rows", type=int, default=10_000, help="trials stored in Optuna")
    parser.add_argument("--optuna-studies", type=int, default=25, help="studies (tasks) in Optuna")
    parser.add_argument("--repeats", type=int, default=5, help="warm repetitions per query")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: temp)")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)
    command = "python -m benchmarks.store_bench" + (
        " " + shlex.join(sys.argv[1:] if argv is None else argv)
        if (sys.argv[1:] if argv is None else argv)
        else ""
    )

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="store_bench_", dir=args.dir) as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        r = bench_store(root, args.rows, args.live_files, args.live_rows, args.repeats)
        o = bench_optuna(root, args.optuna_rows, args.optuna_studies)
        total = time.perf_counter() - started
    rows, ratios = report(r, o)

    from rich.console import Console
    from rich.table import Table

    table = Table(title="researchgym store benchmark")
    for column in ("measurement", "result", "target", ""):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console = Console(width=max(Console().width, 150))
    console.print(table)
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} after"
    )
    console.print(f"machine: {machine}; total {total:.0f} s")
    console.print(f"command: {command}")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {"command": command, "machine": machine, "store": r, "optuna": o, "ratios": ratios},
                indent=2,
            )
        )
    return 0 if all(verdict != "MISSED" for *_, verdict in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
