"""Rate limits through the API: a type's limit per user throttles its emails (the receipt, the
jobs table and the analytics say so, the inbox still gets every notification), never a
critical type's; a publisher over TOCSIN_PUBLISHER_RATE gets 429 with Retry-After and nothing
is stored."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from tests.integration.apps import running_api
from tests.integration.problems import assert_error
from tests.support.client import PUBLISHER_KEY, Api, new_user
from tests.support.db import row_counts
from tests.support.jobs import events_of, job_rows
from tests.support.services import REDIS_URL, missing, private_redis, redis_reachable
from tocsin.store.sql import SqlStore

#: Types are global to a database: names of this module's own.
TWICE = new_user("twice")
ALARM = new_user("alarm")
EMAIL = {"web": True, "email": True}


@pytest.fixture
async def app(store: SqlStore) -> AsyncIterator[Api]:
    # Email is configured (so it can be queued) but nothing sends: no worker in process.
    async with running_api(store, smtp_url="smtp://127.0.0.1:9", worker_in_process=False) as api:
        for name, body in ((TWICE, {"title": "Digest", "channels": EMAIL,
                                    "rate_limit": {"limit": 2, "per_seconds": 3600}}),
                           (ALARM, {"title": "Alarm", "channels": EMAIL, "critical": True,
                                    "rate_limit": {"limit": 1, "per_seconds": 3600}})):
            response = await api.client.put(f"/v1/types/{name}", json=body,
                                            headers=api.publisher)
            assert response.status_code == 200, response.text
        yield api


async def emailed_user(api: Api) -> str:
    user = new_user("limited")
    response = await api.client.put(f"/v1/users/{user}", json={"email": f"{user}@example.com"},
                                    headers=api.publisher)
    assert response.status_code == 200, response.text
    return user


async def send(api: Api, users: list[str], type_: str) -> list[dict[str, Any]]:
    response = await api.client.post("/v1/notifications", headers=api.publisher,
                                     json={"user_ids": users, "type": type_})
    assert response.status_code == 202, response.text
    receipts: list[dict[str, Any]] = response.json()["notifications"]
    return receipts


async def test_over_a_types_limit_the_email_is_throttled_and_the_inbox_gets_it(
        app: Api, store: SqlStore) -> None:
    user, other = await emailed_user(app), await emailed_user(app)
    receipts = [(await send(app, [user], TWICE))[0] for _ in range(3)]
    receipts += await send(app, [user, other], TWICE)  # one batch, decided per recipient
    assert [(r["user_id"], r["status"], r["channels"]) for r in receipts] == [
        (user, "created", {"web": "delivered", "email": "queued"}),
        (user, "created", {"web": "delivered", "email": "queued"}),
        (user, "created", {"web": "delivered", "email": "throttled"}),
        (user, "created", {"web": "delivered", "email": "throttled"}),
        (other, "created", {"web": "delivered", "email": "queued"}),
    ]
    listed = await app.me(user, "notifications")
    assert {item["id"] for item in listed["notifications"]} == {
        r["id"] for r in receipts if r["user_id"] == user}
    assert listed["unread_count"] == 4
    ids = [uuid.UUID(r["id"]) for r in receipts]
    jobs = await job_rows(store, ids)
    assert sorted((job.notification_id, job.channel) for job in jobs) == sorted(
        (ids[n], "email") for n in (0, 1, 4))
    assert [await events_of(store, notification) for notification in ids] == [
        [("queued", "email")], [("queued", "email")], [("throttled", "email")],
        [("throttled", "email")], [("queued", "email")]]


async def test_a_critical_type_is_never_throttled(app: Api, store: SqlStore) -> None:
    user = await emailed_user(app)
    receipts = [(await send(app, [user], ALARM))[0] for _ in range(3)]
    assert [r["channels"] for r in receipts] == [{"web": "delivered", "email": "queued"}] * 3
    assert len(await job_rows(store, [uuid.UUID(r["id"]) for r in receipts])) == 3


async def test_what_is_not_emailed_does_not_count(app: Api, store: SqlStore) -> None:
    user = new_user("no-address")  # no address: the email is skipped, nothing is counted
    skipped = [(await send(app, [user], TWICE))[0]["channels"]["email"] for _ in range(3)]
    assert skipped == ["skipped:no_address"] * 3
    await app.client.put(f"/v1/users/{user}", json={"email": f"{user}@example.com"},
                         headers=app.publisher)
    assert (await send(app, [user], TWICE))[0]["channels"]["email"] == "queued"


OTHER_KEY = "second-publisher-key-" + "x" * 20


@pytest.fixture
async def limited(store: SqlStore) -> AsyncIterator[Api]:
    async with running_api(store, publisher_rate="2/h",
                           api_keys=[PUBLISHER_KEY, OTHER_KEY]) as api:
        yield api


async def test_a_publisher_over_its_rate_gets_429_and_nothing_is_stored(limited: Api,
                                                                        store: SqlStore) -> None:
    user = new_user("rate")
    for _ in range(2):
        await limited.publish(user)
    before = await row_counts(store)
    for body in ({"user_id": user, "type": "comment", "title": "three"},
                 {"user_id": user, "type": "comment", "colour": "red"}):  # before any check
        refused = await limited.client.post("/v1/notifications", headers=limited.publisher,
                                            json=body)
        error = assert_error(refused, 429, "rate_limited")
        assert "2/h" in error["message"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 3600
    assert await row_counts(store) == before
    assert len((await limited.me(user, "notifications"))["notifications"]) == 2
    # Each publisher key has a limit of its own.
    other = await limited.client.post(
        "/v1/notifications", headers={"Authorization": f"Bearer {OTHER_KEY}"},
        json={"user_id": user, "type": "comment", "title": "from elsewhere"})
    assert other.status_code == 202, other.text
    # Other routes of the same publisher are not limited.
    types = await limited.client.get("/v1/types", headers=limited.publisher)
    assert types.status_code == 200


# -- on Redis: one count for every node --------------------------------------------------------

async def nodes(stack: AsyncExitStack, store: SqlStore, bus_url: str, count: int, **settings: Any
                ) -> list[Api]:
    """`count` apps over one store and one Redis, as separate nodes would be (each with a
    limiter of its own: only a count kept in Redis can be shared)."""
    found = []
    for _ in range(count):
        api = await stack.enter_async_context(running_api(
            store, bus_url=bus_url, smtp_url="smtp://127.0.0.1:9", worker_in_process=False,
            **settings))
        found.append(api)
    return found


@pytest.mark.redis
async def test_nodes_on_one_redis_share_every_limit(store: SqlStore) -> None:
    if not redis_reachable():
        missing(f"Redis is not reachable at {REDIS_URL}")
    # Redis outlives the test run: a key and a type no earlier run used.
    key = f"publisher-key-{os.urandom(8).hex()}"
    async with AsyncExitStack() as stack:
        one, other = await nodes(stack, store, REDIS_URL, 2, publisher_rate="3/h",
                                 api_keys=[key])
        for node in (one, other):
            node.key = key
        name = new_user("once")
        await one.client.put(f"/v1/types/{name}", headers=one.publisher, json={
            "title": "Once", "channels": EMAIL, "rate_limit": {"limit": 1, "per_seconds": 3600}})
        user = await emailed_user(one)
        assert (await send(one, [user], name))[0]["channels"]["email"] == "queued"
        assert (await send(other, [user], name))[0]["channels"]["email"] == "throttled"
        # Two publishes so far, one on each node: one more, on either.
        await other.publish(user)
        for node in (one, other):
            refused = await node.client.post("/v1/notifications", headers=node.publisher,
                                             json={"user_id": user, "type": "comment",
                                                   "title": "over"})
            assert_error(refused, 429, "rate_limited")


@pytest.mark.redis
async def test_with_redis_down_nothing_is_refused_or_throttled(store: SqlStore) -> None:
    with private_redis() as server:
        async with AsyncExitStack() as stack:
            [node] = await nodes(stack, store, server.url, 1, publisher_rate="1/h")
            name = new_user("once")
            await node.client.put(f"/v1/types/{name}", headers=node.publisher, json={
                "title": "Once", "channels": EMAIL,
                "rate_limit": {"limit": 1, "per_seconds": 3600}})
            user = await emailed_user(node)
            assert (await send(node, [user], name))[0]["channels"]["email"] == "queued"
            assert_error(await node.client.post(
                "/v1/notifications", headers=node.publisher,
                json={"user_id": user, "type": name}), 429, "rate_limited")
            server.kill()
            # Fail open: over both limits, and yet accepted and emailed.
            receipts = [(await send(node, [user], name))[0] for _ in range(2)]
            assert [r["channels"]["email"] for r in receipts] == ["queued", "queued"]
            assert len(await job_rows(store, [uuid.UUID(r["id"]) for r in receipts])) == 2
