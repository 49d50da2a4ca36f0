"""Row contract, provenance columns and store location resolution."""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path

import pyarrow as pa
import pytest
from store_rows import make_row

from researchgym.store import SCHEMA_VERSION, STEP_SCHEMA, Store, open_store
from researchgym.store.schema import REQUIRED_KEYS, provenance
from researchgym.store.tables import normalize_table, rows_to_table


def test_schema_covers_row_contract() -> None:
    row = make_row()
    assert set(row) == REQUIRED_KEYS
    assert {
        "schema_version",
        "host",
        "researchgym_version",
        "library_versions",
        "code_version",
    } <= set(STEP_SCHEMA.names)


def test_provenance_is_filled_in() -> None:
    table = rows_to_table([make_row()])
    assert table.schema.field("started_at").type == pa.timestamp("us", tz="UTC")
    row = table.to_pylist()[0]
    assert row["schema_version"] == SCHEMA_VERSION
    assert row["host"]
    assert row["researchgym_version"]
    assert set(json.loads(row["library_versions"])) == {
        "torch",
        "numpy",
        "gymnasium",
        "duckdb",
        "pyarrow",
    }
    assert row["code_version"]
    assert row["started_at"].tzinfo is not None
    assert row["started_at"].astimezone(UTC) == make_row()["started_at"]
    assert provenance() is provenance()  # computed once per process


def test_given_provenance_is_kept() -> None:
    row = rows_to_table([make_row(host="elsewhere", schema_version=1)]).to_pylist()[0]
    assert row["host"] == "elsewhere"


def test_missing_key_is_a_clear_error() -> None:
    row = make_row()
    del row["reward"]
    with pytest.raises(ValueError, match="lacks required keys \\['reward'\\]"):
        rows_to_table([row])


def test_wrong_type_names_the_field() -> None:
    with pytest.raises(ValueError, match="'step' has value 'three'"):
        rows_to_table([make_row() | {"step": "three"}])
    with pytest.raises(ValueError, match="'campaign_id' is None"):
        rows_to_table([make_row() | {"campaign_id": None}])


def test_extra_keys_are_kept() -> None:
    table = rows_to_table(
        [make_row(flops=1.5e9, notes={"a": 1}), make_row(flops=None, notes=[1, "x"])]
    )
    assert table.column("flops").to_pylist() == [1.5e9, None]
    assert table.column("notes").type == pa.string()  # mixed values fall back to JSON text
    assert json.loads(table.column("notes")[1].as_py()) == [1, "x"]


def test_normalize_table_casts_and_fills() -> None:
    table = rows_to_table([make_row()]).drop_columns(["host", "schema_version"])
    table = table.set_column(1, "step", table.column("step").cast(pa.int32()))
    out = normalize_table(table)
    assert out.schema.field("step").type == pa.int64()
    assert out.column("schema_version").to_pylist() == [SCHEMA_VERSION]
    with pytest.raises(ValueError, match="lacks required columns"):
        normalize_table(table.drop_columns(["obs"]))


def test_open_store_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESEARCHGYM_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    assert open_store(False) is None
    assert open_store(None).path == tmp_path / "datasets_store"
    assert open_store(True).path == tmp_path / "datasets_store"
    assert open_store("explicit").path == tmp_path / "explicit"
    assert open_store(tmp_path / "p").path == tmp_path / "p"
    monkeypatch.setenv("RESEARCHGYM_STORE", str(tmp_path / "from_env"))
    assert open_store(None).path == tmp_path / "from_env"
    assert open_store("explicit").path == tmp_path / "explicit"  # argument wins
    s = Store(tmp_path / "s")
    assert open_store(s) is s
    with pytest.raises(TypeError, match="store= must be"):
        open_store(3)  # type: ignore[arg-type]


def test_opening_creates_nothing(tmp_path: Path) -> None:
    s = open_store(tmp_path / "lazy")
    assert s is not None and not s.path.exists()
    assert s.sql("SELECT count(*) FROM steps").column(0)[0].as_py() == 0
    assert not s.path.exists()
