from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from researchgym.store import Store


@pytest.fixture
def backend() -> str:
    """Name of the storage backend the ``store`` fixture uses."""
    return "local"


@pytest.fixture
def store(tmp_path: Path, backend: str) -> Iterator[Store]:
    """An empty store in a temporary directory."""
    with Store(tmp_path / "store", auto_compact=None, backend=backend) as s:
        yield s
