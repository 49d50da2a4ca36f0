"""Parquet trajectory store with a DuckDB catalog.

Every env step is one row (see :mod:`researchgym.store.schema`), published as
a Parquet file atomically; DuckDB reads the files in place. Layers, each
importing only those above it in this list:

* ``schema``: the row schema and provenance columns;
* ``tables``: rows to Arrow tables typed by the schema;
* ``files``: Parquet write options, integrity checks, atomic publish on a local disk;
* ``backend``: the storage interface and the local-disk backend;
* ``manifest``: which files are visible, snapshots, compaction;
* ``catalog``: the DuckDB views (``steps``, ``episodes``, ``best_runs``) and queries;
* ``store``: the :class:`Store` facade and where a store lives;
* ``export``: Parquet/CSV files and Minari datasets.

The ``researchgym store`` commands live in :mod:`researchgym.cli.store`.

Example::

    from researchgym.store import open_store

    store = open_store("runs/store")   # None: $RESEARCHGYM_STORE, else ./datasets_store
    store.append(row)                  # durable when it returns
    store.sql("SELECT env_id, count(*) FROM steps GROUP BY 1")   # -> pyarrow.Table
    store.runs("researchgym/Digits-v0", status="ok", columns=["task", "val_score"])
    for episode in store.iter_episodes(env_id="researchgym/Digits-v0"):
        episode.observations, episode.actions, episode.rewards
"""

from researchgym.store.files import CorruptFileWarning
from researchgym.store.manifest import CompactionResult
from researchgym.store.schema import SCHEMA_VERSION, STEP_SCHEMA, StoreError
from researchgym.store.store import ENV_VAR, Store, open_store, resolve_store_path, store_option

__all__ = [
    "ENV_VAR",
    "SCHEMA_VERSION",
    "STEP_SCHEMA",
    "CompactionResult",
    "CorruptFileWarning",
    "Episode",
    "Store",
    "StoreError",
    "open_store",
    "resolve_store_path",
    "store_option",
]


def __getattr__(name: str) -> object:
    if name == "Episode":  # lives with the DuckDB catalog, loaded on demand
        from researchgym.store.catalog import Episode

        return Episode
    raise AttributeError(f"module 'researchgym.store' has no attribute {name!r}")
