"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio

from tests.support.browser import chromium
from tests.support.db import migrated
from tests.support.services import fresh_postgres_database
from tocsin.store.sql import SqlStore

if TYPE_CHECKING:
    from playwright.async_api import Browser


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    """One Chromium per test module (its tests run on the module's event loop)."""
    async with chromium() as running:
        yield running


@pytest.fixture
def own_database(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL database of this test's own, for tests whose workers take every due job
    they find (the kill tests)."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
async def own_store(own_database: str) -> AsyncIterator[SqlStore]:
    """A migrated store on `own_database`."""
    async with migrated(SqlStore(own_database)) as the_store:
        yield the_store
