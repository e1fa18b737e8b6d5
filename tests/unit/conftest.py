"""Unit tests see no TOCSIN_* variable of the machine, and no tocsin.toml but their own."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.db import migrated, migrated_sqlite
from tocsin.store.sql import SqlStore


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("TOCSIN_") and not name.startswith("TOCSIN_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TOCSIN_CONFIG", os.devnull)  # an empty TOML file: no setting in it
    monkeypatch.chdir(tmp_path)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    """A real store on a SQLite file of the test's own: unit tests of what sits on the store."""
    async with migrated(SqlStore(migrated_sqlite(tmp_path / "unit.db"))) as the_store:
        yield the_store
