from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from researchgym.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """An empty store in a temporary directory."""
    with Store(tmp_path / "store", auto_compact=None) as s:
        yield s
