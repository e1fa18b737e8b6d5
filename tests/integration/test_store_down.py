"""PostgreSQL going away and coming back: 503 while it is gone, nothing acknowledged is lost,
nothing refused is stored, and the same app serves again once it returns."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.integration.apps import running_api
from tests.integration.problems import assert_error
from tests.support.client import Api, new_user
from tests.support.db import assert_counter_matches, seqs_of
from tests.support.services import PrivatePostgres, private_postgres
from tocsin.store.sql import SqlStore

pytestmark = pytest.mark.postgres


@pytest.fixture
def server() -> Iterator[PrivatePostgres]:
    with private_postgres() as started:
        yield started


@pytest.fixture
async def own_store(server: PrivatePostgres) -> AsyncIterator[SqlStore]:
    store = SqlStore(server.url, connect_timeout=2)
    await store.migrate()
    try:
        yield store
    finally:
        await store.close()


async def test_store_down_is_503_and_loses_nothing_acknowledged(
        server: PrivatePostgres, own_store: SqlStore) -> None:
    user = new_user()
    acknowledged: list[str] = []
    async with running_api(own_store) as api:
        first = await api.publish(user, title="before")
        acknowledged.append(first["notifications"][0]["id"])

        server.stop()
        refused = await api.client.post("/v1/notifications", headers=api.publisher,
                                        json={"user_id": user, "type": "comment"})
        assert_error(refused, 503, "store_unavailable")
        assert refused.headers["Retry-After"].isdigit()
        for path in ("notifications", "unread-count"):
            down = await api.client.get(f"/v1/me/{path}", headers=api.user(user))
            assert_error(down, 503, "store_unavailable")
            assert "Retry-After" in down.headers
        assert_error(await api.client.get("/readyz"), 503, "store_unavailable")
        assert (await api.client.get("/healthz")).status_code == 200

        server.start()
        assert (await api.client.get("/readyz")).status_code == 200
        after = await api.publish(user, title="after")
        acknowledged.append(after["notifications"][0]["id"])
        await assert_stored_exactly(api, own_store, user, acknowledged)


async def assert_stored_exactly(api: Api, store: SqlStore, user: str, ids: list[str]) -> None:
    listed = await api.me(user, "notifications", params={"limit": 100})
    assert [item["id"] for item in listed["notifications"]] == ids[::-1]
    assert [item["title"] for item in listed["notifications"]] == ["after", "before"]
    assert await seqs_of(store, user) == [1, 2]
    assert await assert_counter_matches(store, user) == 2
