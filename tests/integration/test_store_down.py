"""PostgreSQL going away and coming back: 503 while it is gone, nothing acknowledged is lost,
nothing refused is stored, and the same app serves again once it returns."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import orjson
import pytest

from tests.integration.apps import running_api
from tests.integration.problems import assert_error
from tests.support.client import Api, new_user
from tests.support.db import assert_counter_matches, row_counts, seqs_of
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


async def assert_stored_exactly(api: Api, store: SqlStore, user: str, ids: list[str],
                                titles: tuple[str, ...] | list[str] = ("after", "before")
                                ) -> None:
    listed = await api.me(user, "notifications", params={"limit": 100})
    assert [item["id"] for item in listed["notifications"]] == ids[::-1]
    assert [item["title"] for item in listed["notifications"]] == list(titles)
    assert await seqs_of(store, user) == list(range(1, len(ids) + 1))
    assert await assert_counter_matches(store, user) == len(ids)


#: Every route that needs the database, with a body it would otherwise accept.
STORE_ROUTES: dict[str, tuple[str, str, object, bool]] = {
    "publish": ("POST", "/v1/notifications", {"user_id": "{user}", "type": "comment"}, False),
    "put_user": ("PUT", "/v1/users/{user}", {"name": "Ada"}, False),
    "get_user": ("GET", "/v1/users/{user}", None, False),
    "dead_letters": ("GET", "/v1/admin/dead-letters", None, False),
    "replay": ("POST", f"/v1/admin/dead-letters/{uuid.uuid4()}/replay", None, False),
    "list": ("GET", "/v1/me/notifications", None, True),
    "unread_count": ("GET", "/v1/me/unread-count", None, True),
    "read_all": ("POST", "/v1/me/notifications/read-all", None, True),
    "get_one": ("GET", "/v1/me/notifications/{id}", None, True),
    "read_one": ("POST", "/v1/me/notifications/{id}/read", None, True),
    "readyz": ("GET", "/readyz", None, False),
}


async def test_a_database_that_is_starting_up_is_503_on_every_route(
        server: PrivatePostgres, own_store: SqlStore) -> None:
    """"The database system is starting up" (SQLSTATE 57P03) is the documented 503 with
    Retry-After, like every other "cannot serve now", never a 500."""
    user = new_user()
    async with running_api(own_store) as api:
        receipt = (await api.publish(user, title="before"))["notifications"][0]
        before = await row_counts(own_store)
        server.stop()
        server.start_refusing()
        # The pool's connections died with the server: the first use finds that out (a 503
        # too), and every later one meets the refusing server itself.
        assert_error(await api.client.get("/readyz"), 503, "store_unavailable")
        for name, (method, path, body, as_user) in STORE_ROUTES.items():
            headers = api.user(user) if as_user else api.publisher
            url = path.format(user=user, id=receipt["id"])
            payload = None if body is None else orjson.loads(
                orjson.dumps(body).decode().replace("{user}", user))
            response = await api.client.request(method, url, json=payload, headers=headers)
            error = assert_error(response, 503, "store_unavailable")
            assert response.headers["Retry-After"].isdigit(), name
            assert "not accepting connections" in error["message"], (name, error)
        server.stop()
        server.start()
        assert (await api.client.get("/readyz")).status_code == 200
        assert await row_counts(own_store) == before
        await assert_stored_exactly(api, own_store, user, [receipt["id"]], titles=["before"])
