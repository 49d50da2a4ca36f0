"""Checkpoint files: bounded storage with eviction, and writes that a kill cannot corrupt."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from researchgym.engine import CheckpointMissing, Checkpoints
from researchgym.engine.checkpoints import atomic_write
from researchgym.errors import ConfigError, NotFound

KB = 1024


def write(checkpoints: Checkpoints, key: str, size: int, score: float | None) -> list[str]:
    Path(checkpoints.path_for(key)).write_bytes(b"x" * size)
    return checkpoints.added(key, score)


# --- the size bound and eviction ------------------------------------------------------------
def test_eviction_keeps_the_total_within_the_bound_and_the_best(tmp_path):
    checkpoints = Checkpoints(tmp_path, max_bytes=3 * KB, keep_best=1)
    assert write(checkpoints, "0", KB, 0.9) == []  # the best
    assert write(checkpoints, "1", KB, 0.1) == []
    assert write(checkpoints, "2", KB, 0.2) == []
    checkpoints.get("1")  # now used more recently than "2"
    assert write(checkpoints, "3", KB, 0.3) == ["2"]  # "0" is older but the best
    assert write(checkpoints, "4", 2 * KB, None) == ["1", "3"]
    assert checkpoints.total_bytes <= 3 * KB
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.pt", "4.pt"]
    assert "0" in checkpoints and "2" not in checkpoints


def test_the_best_are_kept_even_over_the_bound(tmp_path):
    checkpoints = Checkpoints(tmp_path, max_bytes=KB, keep_best=2)
    write(checkpoints, "0", KB, 0.5)
    write(checkpoints, "1", KB, 0.7)
    assert write(checkpoints, "2", KB, 0.6) == ["0"]  # not among the two best any more
    assert write(checkpoints, "3", KB, 0.4) == ["3"]  # the only one that may go
    assert checkpoints.total_bytes == 2 * KB


def test_missing_checkpoints_say_why(tmp_path):
    checkpoints = Checkpoints(tmp_path, max_bytes=KB, keep_best=0)
    write(checkpoints, "0", KB, 0.5)
    write(checkpoints, "1", KB, 0.5)
    with pytest.raises(CheckpointMissing, match=r"'0' was evicted .* within 1,024 bytes") as info:
        checkpoints.get("0")
    assert info.value.reason == "evicted" and isinstance(info.value, NotFound)
    with pytest.raises(CheckpointMissing, match="no checkpoint '7' was saved") as info:
        checkpoints.get("7")
    assert info.value.reason == "never_saved"
    with pytest.raises(CheckpointMissing, match="'8' was not written"):
        checkpoints.added("8", 0.5)
    assert checkpoints.get("1") == str(tmp_path / "1.pt")


@pytest.mark.parametrize("key", ["", "../x", "/etc/passwd", ".hidden", "a/b", 3, "x" * 101])
def test_keys_cannot_name_paths(tmp_path, key):
    with pytest.raises(ConfigError, match="checkpoint key"):
        Checkpoints(tmp_path, max_bytes=KB).path_for(key)


@pytest.mark.parametrize(
    "kwargs", [{"max_bytes": 0}, {"max_bytes": 1.5}, {"max_bytes": 1, "keep_best": -1}]
)
def test_bad_bounds_are_refused(tmp_path, kwargs):
    with pytest.raises(ConfigError, match="must be"):
        Checkpoints(tmp_path, **kwargs)


def test_clear_deletes_checkpoints_and_interrupted_writes(tmp_path):
    checkpoints = Checkpoints(tmp_path, max_bytes=10 * KB)
    write(checkpoints, "0", KB, 0.5)
    (tmp_path / ".0.pt.abc123.tmp").write_bytes(b"half")
    (tmp_path / "notes.txt").write_text("not ours")
    checkpoints.clear()
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    with pytest.raises(CheckpointMissing, match="no checkpoint '0' was saved"):
        checkpoints.get("0")


# --- atomic writes ----------------------------------------------------------------------------
def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "run.pt"
    atomic_write(path, lambda f: f.write(b"old"))

    def fail(file):
        file.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, fail)
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]
    assert path.read_bytes() == b"old"


# The child saves a snapshot of a large model through Snapshot.save, once completely and
# then with torch.save paused halfway through writing the bytes, and is killed there.
_KILLED_WRITER = textwrap.dedent(
    """
    import io, sys, time
    import torch
    from researchgym.engine import snapshot

    def run(fill):
        weights = {"w": torch.full((1 << 20,), float(fill))}  # 4 MiB
        return snapshot.Snapshot(
            metaprogram={"train.epochs": fill}, task="t", device="cpu", epochs=fill, step=0,
            samples=0, schedule_epochs=fill, curve=[], model=weights, optimizer={},
            generator=torch.Generator().get_state(), rng=torch.get_rng_state(),
        )

    path, complete_first = sys.argv[1], sys.argv[2] == "1"
    if complete_first:
        run(1).save(path)
    real_save = torch.save

    def half_then_hang(obj, file):
        buffer = io.BytesIO()
        real_save(obj, buffer)
        file.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        file.flush()
        print("half", flush=True)
        time.sleep(60)

    snapshot.torch.save = half_then_hang
    run(2).save(path)
    """
)


@pytest.mark.parametrize("complete_first", [True, False])
def test_a_write_killed_halfway_leaves_no_loadable_half_checkpoint(tmp_path, complete_first):
    from researchgym.engine.snapshot import Snapshot

    path = tmp_path / "run.pt"
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(path), "1" if complete_first else "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "half\n"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    temps = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(temps) == 1 and temps[0].stat().st_size > 2**20  # it was killed mid-write
    if complete_first:
        saved = Snapshot.load(path)  # the old, complete checkpoint
        assert saved.epochs == 1 and bool((saved.model["w"] == 1.0).all())
    else:
        assert not path.exists()
        with pytest.raises(FileNotFoundError):
            Snapshot.load(path)
    with pytest.raises(ConfigError, match="is not a readable checkpoint"):
        Snapshot.load(temps[0])  # the half file itself is not a checkpoint


def test_files_that_are_not_checkpoints_are_refused(tmp_path):
    from researchgym.engine.snapshot import Snapshot

    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ConfigError, match="junk.pt' is not a readable checkpoint"):
        Snapshot.load(tmp_path / "junk.pt")
    torch.save({"w": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="not a checkpoint of this version"):
        Snapshot.load(tmp_path / "other.pt")
