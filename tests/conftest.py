"""Fixtures shared by every test layer: databases, stores, and an in-process API client."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.client import Api, settings_for
from tests.support.db import migrated_sqlite
from tests.support.services import MISSING, fresh_postgres_database
from tocsin.app import create_app
from tocsin.store.sql import SqlStore

# Tests configure the app explicitly: nothing from the developer's shell or tocsin.toml leaks in.
for _name in [n for n in os.environ if n.startswith("TOCSIN_")]:
    if not _name.startswith("TOCSIN_TEST_"):
        del os.environ[_name]
os.environ["TOCSIN_CONFIG"] = os.devnull


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run (one per run; tests use unique users)."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def postgres_database(postgres_url: str) -> str:
    """The PostgreSQL database of a test. A module whose tests must not see others' rows (a
    jobs claim takes any due job) overrides this with a database of its own."""
    return postgres_url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every test that takes this runs once per Store implementation."""
    if request.param == "sqlite":
        return migrated_sqlite(tmp_path / "tocsin.db")
    url: str = request.getfixturevalue("postgres_database")
    return url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlStore]:
    the_store = SqlStore(database_url)
    await the_store.migrate()
    try:
        yield the_store
    finally:
        await the_store.close()


@pytest.fixture
async def api(store: SqlStore) -> AsyncIterator[Api]:
    """The whole app in-process, over the given store."""
    app = create_app(settings_for(store.url), store=store)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://tocsin.test"
    ) as client:
        yield Api(client)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if MISSING:
        terminalreporter.section("skipped: services missing on this machine", yellow=True)
        for what in sorted(MISSING):
            terminalreporter.line(f"  {what}")
        terminalreporter.line("  (in CI, with CI=true, these fail the run instead)")
