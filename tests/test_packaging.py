"""The wheel ships the reference runs as package data."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contains_reference_data(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside the code
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in ("researchgym", "agents", "benchmarks"):
        shutil.copytree(REPO / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), "-q"],
        check=True,
        cwd=tmp_path,
        timeout=600,
    )  # fmt: skip
    [wheel] = tmp_path.glob("researchgym-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    reference = {n for n in names if n.startswith("researchgym/reference/")}
    assert "researchgym/reference/_manifest.json" in reference
    assert any(n.startswith("researchgym/reference/compacted/") and n.endswith(".parquet")
               for n in reference)  # fmt: skip
    for env in ("Digits-v0", "Tabular-v0"):
        assert f"researchgym/reference/surrogates/{env}.npz" in reference
        assert f"researchgym/reference/surrogates/{env}.json" in reference
    shipped = {
        "researchgym/" + str(p.relative_to(REPO / "researchgym"))
        for p in (REPO / "researchgym" / "reference").rglob("*")
        if p.is_file() and p.suffix in (".parquet", ".json", ".npz")
    }
    assert shipped == reference - {"researchgym/reference/README.md"}


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
    }


def test_reading_the_reference_store_writes_nothing() -> None:
    from researchgym.envs.replay import REFERENCE_STORE, load_runs
    from researchgym.store import open_store

    before = _tree(REFERENCE_STORE)
    assert load_runs(None, "researchgym/Tabular-v0")
    with open_store(REFERENCE_STORE) as store:
        assert store.info()["rows"] == 5344
        assert store.runs("researchgym/Digits-v0", columns=("run_id",)).num_rows == 2032
    assert _tree(REFERENCE_STORE) == before
