"""Rows to Arrow tables typed by the store schema, and merging tables of differing columns."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from researchgym.errors import ConfigTypeError, shorten
from researchgym.store import schema as _schema


def _constant(value: Any, type_: pa.DataType, n: int) -> pa.Array:
    """A column of ``n`` copies of ``value``, built without per-row Python work."""
    if value is None:
        return pa.nulls(n, type=type_)
    if pa.types.is_string(type_):
        data = str(value).encode()
        if len(data) * n < 2**31 - 1:
            offsets = np.arange(n + 1, dtype=np.int64) * len(data)
            return pa.StringArray.from_buffers(
                n, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data * n)
            )
    if pa.types.is_integer(type_):
        return pa.array(np.full(n, value, dtype=np.int64)).cast(type_)
    return pa.array([value], type=type_).take(pa.array(np.zeros(n, dtype=np.int32)))


@functools.cache
def _one_row_provenance() -> tuple[pa.Array, ...]:
    """The provenance columns of one row, built once: most appends publish a single step."""
    defaults = _schema.provenance()
    return tuple(_constant(defaults[f.name], f.type, 1) for f in _schema.STORE_FIELDS)


def _column(name: str, values: list[Any], type_: pa.DataType | None) -> pa.Array:
    try:
        return pa.array(values, type=type_)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
        if type_ is None:  # extra column of mixed or unsupported values: keep it as JSON text
            return pa.array(
                [None if v is None else json.dumps(v, default=repr) for v in values],
                type=pa.string(),
            )
        for i, value in enumerate(values):
            try:
                pa.array([value], type=type_)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
                raise _schema.StoreError(
                    f"row {i}: field {name!r} has value {shorten(value)} of type "
                    f"{type(value).__name__}, which cannot be stored as {type_}; "
                    f"pass a value of that type (see researchgym.store.schema)"
                ) from exc
        raise _schema.StoreError(f"field {name!r} cannot be stored as {type_}: {exc}") from exc


_ROW_STRUCT = pa.struct(_schema.ROW_FIELDS)


def _row_columns(rows: Sequence[Mapping[str, Any]]) -> list[pa.Array]:
    """The columns of :data:`~researchgym.store.schema.ROW_FIELDS`, typed, in schema order.

    All columns are converted in one pass over the rows; when that fails, column by
    column, to say which value does not fit.
    """
    try:
        columns = pa.array(rows, type=_ROW_STRUCT).flatten()
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        columns = []
        for field in _schema.ROW_FIELDS:
            values = [row.get(field.name) for row in rows]
            if not field.nullable and any(v is None for v in values):
                raise _schema.StoreError(f"field {field.name!r} is None in a row; it must be set")
            columns.append(_column(field.name, values, field.type))
    for field, column in zip(_schema.ROW_FIELDS, columns, strict=True):
        if not field.nullable and column.null_count:
            raise _schema.StoreError(f"field {field.name!r} is None in a row; it must be set")
    return columns


def rows_to_table(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Convert row dicts to a table typed by the store schema.

    Keys of :data:`~researchgym.store.schema.REQUIRED_KEYS` are required; the
    optional keys are NULL and the provenance keys are filled in when absent; other keys are kept as extra
    columns (their type inferred, or JSON text when values are mixed).

    Args:
        rows: Row dicts following the row contract.

    Returns:
        A table whose first columns follow ``STEP_SCHEMA``.

    Raises:
        TypeError: If a row is not a mapping.
        ValueError: If a row lacks a required key, a required id is None, or
            a value does not fit its column type.
    """
    if not rows:
        return _schema.STEP_SCHEMA.empty_table()
    extras: dict[str, None] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ConfigTypeError(f"row {i} is a {type(row).__name__}, expected a dict of columns")
        keys = row.keys()
        missing = _schema.REQUIRED_KEYS - keys
        if missing:
            raise _schema.StoreError(
                f"row {i} lacks required keys {sorted(missing)}; every row needs "
                f"{sorted(_schema.REQUIRED_KEYS)} (see researchgym.store.schema)"
            )
        for key in keys:
            if key not in _schema.FIELD_TYPES and key not in extras:
                extras[key] = None
    arrays = _row_columns(rows)
    defaults = _schema.provenance()
    for i, field in enumerate(_schema.STORE_FIELDS):
        if any(field.name in row for row in rows):
            values = [row.get(field.name, defaults[field.name]) for row in rows]
            arrays.append(_column(field.name, values, field.type))
        elif len(rows) == 1:
            arrays.append(_one_row_provenance()[i])
        else:
            arrays.append(_constant(defaults[field.name], field.type, len(rows)))
    schema = _schema.STEP_SCHEMA
    for name in extras:
        array = _column(name, [row.get(name) for row in rows], None)
        arrays.append(array)
        schema = schema.append(pa.field(name, array.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def normalize_table(table: pa.Table | pa.RecordBatch) -> pa.Table:
    """Cast a columnar batch of rows to the store schema.

    Args:
        table: Rows as columns; must hold every required column. Optional
            columns are added as NULL and provenance columns filled in when
            absent; extra columns are kept.

    Returns:
        The table with known columns cast to their schema types, in schema
        order, followed by the extra columns.

    Raises:
        ValueError: If a required column is missing or cannot be cast.
    """
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    names = set(table.column_names)
    missing = _schema.REQUIRED_KEYS - names
    if missing:
        raise _schema.StoreError(
            f"table lacks required columns {sorted(missing)} (see researchgym.store.schema)"
        )
    n = table.num_rows
    defaults = _schema.provenance()
    arrays: list[pa.ChunkedArray | pa.Array] = []
    fields: list[pa.Field] = []
    for field in _schema.STEP_SCHEMA:
        if field.name in names:
            column = table.column(field.name)
            if column.type != field.type:
                try:
                    column = column.cast(field.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                    raise _schema.StoreError(
                        f"column {field.name!r} of type {column.type} cannot be cast to "
                        f"{field.type}: {exc}"
                    ) from exc
            if not field.nullable and column.null_count:
                raise _schema.StoreError(
                    f"column {field.name!r} has nulls; it must be set on every row"
                )
        else:
            column = _constant(defaults.get(field.name), field.type, n)
        arrays.append(column)
        fields.append(field)
    for name in table.column_names:
        if name not in _schema.FIELD_TYPES:
            arrays.append(table.column(name))
            fields.append(table.schema.field(name))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_string(column.type):
        return column
    try:
        return column.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        values = [None if v is None else json.dumps(v, default=str) for v in column.to_pylist()]
        return pa.chunked_array([pa.array(values, type=pa.string())])


def unify(tables: Sequence[pa.Table]) -> pa.Table:
    """Concatenate tables whose columns may differ, in store column order.

    An extra column whose type differs between tables is stored as text.
    """
    if len(tables) == 1:
        merged = tables[0]
    else:
        try:
            merged = pa.concat_tables(tables, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            types: dict[str, set[pa.DataType]] = {}
            for table in tables:
                for field in table.schema:
                    types.setdefault(field.name, set()).add(field.type)
            mixed = {n for n, t in types.items() if len(t) > 1 and n not in _schema.FIELD_TYPES}
            texts = []
            for table in tables:
                for i, name in enumerate(table.column_names):
                    if name in mixed:
                        table = table.set_column(i, name, _as_text(table.column(i)))
                texts.append(table)
            merged = pa.concat_tables(texts, promote_options="permissive")
    order = [f.name for f in _schema.STEP_SCHEMA if f.name in merged.column_names]
    order += [c for c in merged.column_names if c not in _schema.FIELD_TYPES]
    merged = merged.select(order)
    fields = []
    for name in order:
        type_ = _schema.FIELD_TYPES.get(name, merged.schema.field(name).type)
        fields.append(pa.field(name, type_))
    return merged.cast(pa.schema(fields))
