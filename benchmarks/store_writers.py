"""Concurrent publishers on one store: N writer processes appending at once.

Run::

    python -m benchmarks.store_writers [--writers 1 2 4 8 16] [--rows 100] [--json out.json]

For each N, N processes (started before the clock, released together) each
append ``--rows`` rows to one fresh store, one durable ``Store.append`` per row
(what an env does per step), and try a compaction without waiting every
``--compact-every`` appends (what automatic compaction does); one more process
counts the rows with SQL all the while, and once more when they are done. Measured per N: commits (published
files) per second and the ratio to N=1 in the same run, commit latency,
compactions run and skipped because another writer held the lock (the only
place writers meet: they never write the manifest), reader queries and any
count that went backwards, and at the end, lost and duplicated rows against
the run ids the writers returned (both must be zero; the exit status is 1
otherwise).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from researchgym.store import Store


def _writer(path: str, index: int, rows: int, compact_every: int, barrier: Any, out: Any) -> None:
    from benchmarks.store_bench import synthetic_row

    rng = np.random.default_rng(index)
    campaign = uuid.uuid4().hex
    batch = [synthetic_row(campaign, step, rng) for step in range(rows)]  # made before the clock
    store = Store(path, auto_compact=None)
    latencies, compactions, skipped = [], 0, 0
    barrier.wait()
    started = time.time()
    for step, row in enumerate(batch, 1):
        t = time.perf_counter()
        store.append(row)
        latencies.append(time.perf_counter() - t)
        if step % compact_every == 0:
            result = store.compact(min_files=compact_every, wait=False)
            skipped += result.skipped
            compactions += result.inputs > 0
    out.put(
        {
            "run_ids": [row["run_id"] for row in batch],
            "latencies": latencies,
            "compactions": compactions,
            "skipped": skipped,
            "started": started,
            "finished": time.time(),
        }
    )


def _reader(path: str, barrier: Any, stop: Any, out: Any) -> None:
    store = Store(path, auto_compact=None)
    queries = backwards = errors = last = 0
    barrier.wait()
    while True:
        done = stop.is_set()  # the writers are done: one more count sees every row
        try:
            count = store.sql("SELECT count(*) FROM steps").column(0)[0].as_py()
        except Exception:  # noqa: BLE001 - counted: a reader must never fail
            errors += 1
            continue
        backwards += count < last
        last = max(last, count)
        queries += 1
        if done:
            break
    out.put({"queries": queries, "backwards": backwards, "errors": errors, "last": last})


def run_one(root: Path, writers: int, rows: int, compact_every: int) -> dict[str, Any]:
    """N writers and one reader on a fresh store; the measurements and the final check."""
    path = str(root / f"store_{writers}")
    ctx = mp.get_context("spawn")  # fresh interpreters, as separate jobs would be
    barrier, stop, out, reads = ctx.Barrier(writers + 1), ctx.Event(), ctx.Queue(), ctx.Queue()
    procs = [
        ctx.Process(target=_writer, args=(path, i, rows, compact_every, barrier, out))
        for i in range(writers)
    ]
    reader = ctx.Process(target=_reader, args=(path, barrier, stop, reads))
    for proc in (*procs, reader):
        proc.start()
    results = [out.get() for _ in procs]
    stop.set()
    read = reads.get()
    for proc in (*procs, reader):
        proc.join()
    wall = max(r["finished"] for r in results) - min(r["started"] for r in results)
    written = [run_id for r in results for run_id in r["run_ids"]]
    with Store(path, auto_compact=None) as store:
        stored = store.sql("SELECT run_id FROM steps").column(0).to_pylist()
        files_left = store.snapshot().steps_files
        store.compact(min_files=1, full=True)
        after_compaction = store.sql("SELECT count(*) FROM steps").column(0)[0].as_py()
    latencies = sorted(x for r in results for x in r["latencies"])
    return {
        "writers": writers,
        "commits": len(written),
        "seconds": wall,
        "commits_per_s": len(written) / wall,
        "latency_p50_ms": 1000 * statistics.median(latencies),
        "latency_p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "compactions": sum(r["compactions"] for r in results),
        "compactions_skipped": sum(r["skipped"] for r in results),
        "writer_files_left": files_left,
        "reader_queries": read["queries"],
        "reader_errors": read["errors"],
        "reader_count_went_back": read["backwards"],
        "reader_last_count": read["last"],
        "lost_rows": len(set(written) - set(stored)),
        "duplicate_rows": len(stored) - len(set(stored)),
        "rows_after_full_compaction": after_compaction,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the results."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.store_writers", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--rows", type=int, default=100, help="rows appended by each writer")
    parser.add_argument("--compact-every", type=int, default=64, help="appends between tries")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: temp)")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    command = "python -m benchmarks.store_writers" + (f" {shlex.join(given)}" if given else "")

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="store_writers_", dir=args.dir) as tmp:
        results = [run_one(Path(tmp), n, args.rows, args.compact_every) for n in args.writers]
    base = results[0]["commits_per_s"]

    from rich.console import Console
    from rich.table import Table

    table = Table(title="concurrent writers on one store")
    columns = (
        "writers", "commits/s", "vs first", "p50 ms", "p99 ms", "compactions (skipped: lock held)",
        "reader queries (errors, went back)", "lost rows", "duplicate rows",
    )  # fmt: skip
    for column in columns:
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(
            str(r["writers"]),
            f"{r['commits_per_s']:.0f}",
            f"{r['commits_per_s'] / base:.2f}x",
            f"{r['latency_p50_ms']:.1f}",
            f"{r['latency_p99_ms']:.1f}",
            f"{r['compactions']} ({r['compactions_skipped']})",
            f"{r['reader_queries']} ({r['reader_errors']}, {r['reader_count_went_back']})",
            str(r["lost_rows"]),
            str(r["duplicate_rows"]),
        )
    console = Console(width=max(Console().width, 150))
    console.print(table)
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} after"
    )
    console.print(f"machine: {machine}")
    console.print(f"command: {command}")
    if args.json is not None:
        args.json.write_text(
            json.dumps({"command": command, "machine": machine, "results": results}, indent=2)
        )
    correct = all(
        r["lost_rows"] == r["duplicate_rows"] == r["reader_errors"] == 0
        and r["reader_count_went_back"] == 0
        and r["rows_after_full_compaction"] == r["reader_last_count"] == r["commits"]
        for r in results
    )
    return 0 if correct else 1


if __name__ == "__main__":
    raise SystemExit(main())
