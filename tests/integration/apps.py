"""A test app with settings of its own, over a store the test already holds.

The `api` fixture covers the default settings; a test that needs another limit builds its app
here, a few lines above the assertion that depends on it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from tests.support.client import Api, settings_for
from tocsin.app import create_app
from tocsin.store.sql import SqlStore


@asynccontextmanager
async def running_api(store: SqlStore, **overrides: Any) -> AsyncIterator[Api]:
    """The whole app in-process over `store`, with `overrides` applied to the test settings."""
    app = create_app(settings_for(store.url, **overrides), store=store)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://tocsin.test"
    ) as client:
        yield Api(client)
