"""Arrow schema of a trajectory-store row and the provenance the store adds.

One row is one environment step (one training run). The env builds the row
dict with the keys of :data:`ROW_FIELDS` (those of :data:`OPTIONAL_KEYS` may be
left out); the store adds the keys of :data:`STORE_FIELDS` when they are absent. Keys outside the schema are kept as
extra columns, so a later version can add a column without rewriting old
files: readers union files by column name and old files read as NULL there.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import socket
from pathlib import Path
from typing import Any

import pyarrow as pa

from researchgym.errors import ResearchGymError


class StoreError(ResearchGymError, ValueError):
    """A request to the store named something it does not hold or cannot do."""


#: Version of the row layout written by this code. Bump it when the meaning or
#: type of an existing column changes; adding a column does not need a bump.
SCHEMA_VERSION = 1

_UTC_TS = pa.timestamp("us", tz="UTC")
_VECTOR = pa.list_(pa.float64())

#: Columns the environment provides, in storage order. ``source_env_id`` is the
#: env whose runs answered (the recorded env for Replay-v0 and Surrogate-v0,
#: else ``env_id``); ``task_features`` is a JSON object of the task's features
#: (feature name -> number); ``env_kwargs`` is a JSON object of the env's arguments
#: that define the campaign (budget, reward, tasks, ...; never paths), so
#: ``gymnasium.make(env_id, **env_kwargs)`` makes the env again; ``answered_by`` is a
#: JSON object saying what produced the metrics when the executor did not train
#: ``metaprogram`` (Replay-v0: the recorded run, how close it is and its settings),
#: else NULL. ``obs`` is the flat observation before the step and ``next_obs`` the
#: one the step returned. ``seed`` is the step's training seed, drawn from the
#: campaign's random generator; ``episode_seed`` is the seed the campaign's ``reset``
#: was given (NULL when none), which with the actions determines every ``seed``.
#: ``n_params`` is the trained model's parameter count (NULL when the executor does not
#: report one, e.g. Surrogate-v0).
#: ``verb`` is what the step did (``"new"``, ``"continue"``, ``"fork"`` or ``"stop"``),
#: ``parent_run_id`` the ``run_id`` of the run a continue or fork started from (else
#: NULL) and ``fidelity`` the epochs the run's weights have seen, its ancestors' included.
ROW_FIELDS: tuple[pa.Field, ...] = (
    pa.field("campaign_id", pa.string(), nullable=False),
    pa.field("step", pa.int64(), nullable=False),
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("env_id", pa.string(), nullable=False),
    pa.field("env_version", pa.int64()),
    pa.field("source_env_id", pa.string()),
    pa.field("task", pa.string()),
    pa.field("task_features", pa.string()),
    pa.field("env_kwargs", pa.string()),
    pa.field("agent", pa.string()),
    pa.field("seed", pa.int64()),
    pa.field("episode_seed", pa.int64()),
    pa.field("metaprogram", pa.string()),
    pa.field("action", pa.string()),
    pa.field("obs", _VECTOR),
    pa.field("next_obs", _VECTOR),
    pa.field("action_flat", _VECTOR),
    pa.field("val_score", pa.float64()),
    pa.field("val_metrics", pa.string()),
    pa.field("test_metrics", pa.string()),
    pa.field("curve", pa.string()),
    pa.field("reward", pa.float64()),
    pa.field("terminated", pa.bool_()),
    pa.field("truncated", pa.bool_()),
    pa.field("cost_seconds", pa.float64()),
    pa.field("cost_samples", pa.int64()),
    pa.field("n_params", pa.int64()),
    pa.field("status", pa.string()),
    pa.field("error", pa.string()),
    pa.field("answered_by", pa.string()),
    pa.field("verb", pa.string()),
    pa.field("parent_run_id", pa.string()),
    pa.field("fidelity", pa.int64()),
    pa.field("started_at", _UTC_TS),
    pa.field("finished_at", _UTC_TS),
)

#: Columns the store fills in at write time when the row lacks them.
STORE_FIELDS: tuple[pa.Field, ...] = (
    pa.field("schema_version", pa.int64()),
    pa.field("host", pa.string()),
    pa.field("researchgym_version", pa.string()),
    pa.field("library_versions", pa.string()),
    pa.field("code_version", pa.string()),
)

#: The full, typed schema of every file the store writes (before extra columns).
STEP_SCHEMA = pa.schema(ROW_FIELDS + STORE_FIELDS)

#: Columns added after the first layout: rows may omit them, and files written
#: before them read NULL there.
OPTIONAL_KEYS: frozenset[str] = frozenset(
    {
        "source_env_id",
        "task_features",
        "env_kwargs",
        "answered_by",
        "next_obs",
        "episode_seed",
        "n_params",
        "verb",
        "parent_run_id",
        "fidelity",
    }
)

#: Names of the keys a row dict must contain.
REQUIRED_KEYS: frozenset[str] = frozenset(f.name for f in ROW_FIELDS) - OPTIONAL_KEYS

#: Column types by name, for the known columns.
FIELD_TYPES: dict[str, pa.DataType] = {f.name: f.type for f in STEP_SCHEMA}

#: Values `status` may take.
STATUSES = ("ok", "invalid_action", "diverged", "error", "timeout", "oom", "stopped")

_LIBRARIES = ("torch", "numpy", "gymnasium", "duckdb", "pyarrow")


def _dist_version(name: str, default: str | None = None) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return default


def _git_commit(start: Path) -> str | None:
    """Return the commit checked out in the git work tree containing ``start``.

    Reads ``.git`` files directly (no subprocess). Returns None when ``start``
    is not inside a git checkout or HEAD does not point to a commit yet.
    """
    for directory in (start, *start.parents):
        git = directory / ".git"
        if git.is_file():  # worktree or submodule: "gitdir: <path>"
            text = git.read_text().strip()
            if not text.startswith("gitdir:"):
                return None
            git = (directory / text.split(":", 1)[1].strip()).resolve()
        if not git.is_dir():
            continue
        try:
            head = (git / "HEAD").read_text().strip()
        except OSError:
            return None
        if not head.startswith("ref:"):
            return head or None
        ref = head.split(":", 1)[1].strip()
        common = git
        commondir = git / "commondir"
        if commondir.is_file():
            common = (git / commondir.read_text().strip()).resolve()
        for base in (git, common):
            ref_file = base / ref
            if ref_file.is_file():
                return ref_file.read_text().strip() or None
        packed = common / "packed-refs"
        if packed.is_file():
            for line in packed.read_text().splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[1] == ref:
                    return parts[0]
        return None
    return None


@functools.cache
def provenance() -> dict[str, Any]:
    """Return the columns the store adds to every row, computed once per process.

    Returns:
        Mapping of ``schema_version``, ``host``, ``researchgym_version``,
        ``library_versions`` (JSON object of library versions) and
        ``code_version`` (git commit of the researchgym checkout, else the
        package version).
    """
    version = _dist_version("researchgym", "0+unknown")
    libraries = {name: _dist_version(name) for name in _LIBRARIES}
    package_dir = Path(__file__).resolve().parent.parent
    commit = _git_commit(package_dir)
    return {
        "schema_version": SCHEMA_VERSION,
        "host": socket.gethostname(),
        "researchgym_version": version,
        "library_versions": json.dumps(libraries, sort_keys=True),
        "code_version": commit or version,
    }
