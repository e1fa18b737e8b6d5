"""Grouping collapses in place: one item per user and key within the window, which takes the
newest seq, becomes unread again, counts once, keeps its id, and sends outbound once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from tests.support.client import JWT_SECRET, PUBLISHER_KEY, Api, new_user
from tests.support.db import counter_and_rows
from tests.support.jobs import job_rows
from tocsin.app import create_app
from tocsin.bus.memory import MemoryBus
from tocsin.clock import FrozenClock
from tocsin.domain.events import Event
from tocsin.settings import Settings
from tocsin.store.sql import SqlStore

WINDOW = 600
LIKED = ("{{ actors[0] }}{% if count > 1 %} and {{ count - 1 }} other{{ 's' if count > 2 }}"
         "{% endif %} liked your post")


@dataclass
class App:
    api: Api
    clock: FrozenClock
    heard: list[tuple[str, Event]]
    bus: MemoryBus
    kind: str


@pytest.fixture
async def app(store: SqlStore) -> AsyncIterator[App]:
    # The clock starts at the real time, so the test's user tokens are valid on it.
    clock = FrozenClock(datetime.now(UTC))
    settings = Settings(database_url=store.url, api_keys=[PUBLISHER_KEY],
                        jwt_secret=JWT_SECRET, smtp_url="smtp://127.0.0.1:9",
                        worker_in_process=False)
    bus = MemoryBus()
    asgi = create_app(settings, store=store, clock=clock, bus=bus)
    heard: list[tuple[str, Event]] = []
    async with asgi.router.lifespan_context(asgi), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=asgi), base_url="http://tocsin.test") as client:
        bus.set_handler(lambda user, event: heard.append((user, event)), lambda _: None)
        api = Api(client)
        kind = new_user("liked")  # types are global to a database: one of this test's own
        response = await client.put(f"/v1/types/{kind}", headers=api.publisher, json={
            "title": "{{ actor }} liked your post", "channels": {"web": True, "email": True},
            "group": {"key": "post-{{ post_id }}", "window_seconds": WINDOW, "title": LIKED}})
        assert response.status_code == 200, response.text
        yield App(api, clock, heard, bus, kind)


async def like(app: App, user: str, actor: str, post: int = 7) -> dict[str, Any]:
    receipt: dict[str, Any] = (await app.api.publish(
        user, type=app.kind, title=None, data={"actor": actor, "post_id": post}))[
        "notifications"][0]
    return receipt


async def addressed(app: App) -> str:
    user = new_user("grp")
    await app.api.client.put(f"/v1/users/{user}", headers=app.api.publisher,
                             json={"email": f"{user}@example.com"})
    return user


async def test_five_likes_are_one_item_that_moves_up_and_counts_once(
        app: App, store: SqlStore) -> None:
    user = await addressed(app)
    await app.bus.subscribe(user)
    receipts = [await like(app, user, actor) for actor in ("Alice", "Bob", "Carol", "Bob", "Eve")]
    assert [r["status"] for r in receipts] == ["created"] + ["grouped"] * 4
    assert {r["id"] for r in receipts} == {receipts[0]["id"]}
    assert [r["seq"] for r in receipts] == [1, 2, 3, 4, 5]
    assert [r["channels"]["email"] for r in receipts] == ["queued"] + ["grouped"] * 4
    [item] = (await app.api.me(user, "notifications"))["notifications"]
    assert (item["id"], item["seq"], item["title"]) == (
        receipts[0]["id"], 5, "Eve and 4 others liked your post")
    assert item["group"] == {"key": "post-7", "count": 5, "actors": ["Eve", "Bob", "Carol",
                                                                     "Alice"]}
    assert item["data"] == {"actor": "Eve", "post_id": 7}
    assert await counter_and_rows(store, user) == (1, 1, 5)
    # One email for the group, not five.
    jobs = await job_rows(store, [uuid.UUID(receipts[0]["id"])])
    assert [job.channel for job in jobs] == ["email"]
    # Streams saw the same id each time, at each new seq, with the group.
    events = [orjson.loads(event.data) for who, event in app.heard
              if who == user and event.name == "notification"]
    assert [(e["id"], e["seq"], e["group"]["count"]) for e in events] == [
        (receipts[0]["id"], seq, seq) for seq in range(1, 6)]
    # A resume from before any of them gets the item once, at its newest seq.
    assert [n.seq for n in await store.notifications_after(user, 0, 100)] == [5]


async def test_a_read_group_becomes_unread_again_and_counts_one_more(
        app: App, store: SqlStore) -> None:
    user = new_user("grp")
    first = await like(app, user, "Alice")
    await app.api.me(user, f"notifications/{first['id']}/read", method="POST")
    assert await counter_and_rows(store, user) == (0, 0, 1)
    await like(app, user, "Bob")
    [item] = (await app.api.me(user, "notifications"))["notifications"]
    assert (item["read"], item["read_at"], item["title"]) == (
        False, None, "Bob and 1 other liked your post")
    assert await counter_and_rows(store, user) == (1, 1, 2)
    await like(app, user, "Carol")
    assert await counter_and_rows(store, user) == (1, 1, 3)


async def test_other_keys_and_closed_windows_start_new_groups(app: App) -> None:
    user = new_user("grp")
    a = await like(app, user, "Alice", post=1)
    b = await like(app, user, "Bob", post=2)
    assert a["id"] != b["id"] and b["status"] == "created"
    app.clock.advance(WINDOW - 1)
    assert (await like(app, user, "Carol", post=1))["id"] == a["id"]  # the window is open
    app.clock.advance(1)  # measured from the group's first notification: now closed
    late = await like(app, user, "Dan", post=1)
    assert (late["status"], late["id"] != a["id"]) == ("created", True)
    titles = [item["title"] for item in (await app.api.me(user, "notifications"))[
        "notifications"]]
    assert titles == ["Dan liked your post", "Carol and 1 other liked your post",
                      "Bob liked your post"]


async def test_concurrent_publishes_into_one_group_end_as_one_item(app: App,
                                                                   store: SqlStore) -> None:
    user = new_user("grp")
    receipts = await asyncio.gather(*(like(app, user, f"actor-{i}") for i in range(50)))
    assert len({r["id"] for r in receipts}) == 1
    assert sorted(r["seq"] for r in receipts) == list(range(1, 51))
    assert [r["status"] for r in receipts].count("created") == 1
    [item] = (await app.api.me(user, "notifications"))["notifications"]
    assert (item["group"]["count"], len(item["group"]["actors"])) == (50, 10)
    assert await counter_and_rows(store, user) == (1, 1, 50)
