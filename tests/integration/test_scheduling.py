"""Scheduled notifications, expiry and retention, on a frozen clock with the real worker:
released at `send_at` once, cancellable before, expired ones out of the inbox with the counter
exact, old ones purged."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa

from tests.integration.problems import assert_error
from tests.support.client import JWT_SECRET, PUBLISHER_KEY, Api, new_user
from tests.support.db import counter_and_rows
from tests.support.jobs import clear_jobs, job_rows
from tests.support.services import fresh_postgres_database
from tests.support.smtp import SmtpServer, smtp_server
from tocsin.app import create_app
from tocsin.auth.tokens import TokenAuthority
from tocsin.bus.memory import MemoryBus
from tocsin.clock import FrozenClock
from tocsin.domain.events import Event
from tocsin.jobs.base import SWEEP
from tocsin.jobs.worker import Worker
from tocsin.services import services_of
from tocsin.settings import Settings
from tocsin.store.schema import jobs, notifications
from tocsin.store.sql import SqlStore

START = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
OTHER_KEY = "another-publisher-key-0123456789"
RETENTION_DAYS = 30


@pytest.fixture(scope="module")
def postgres_database(postgres_url: str) -> Iterator[str]:
    """Workers claim any due job in the database: this module has its own."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@dataclass
class ClockedApi(Api):
    """User tokens minted by the app itself, on its frozen clock, so they are valid then."""

    tokens: TokenAuthority | None = None

    def user(self, user_id: str, ttl: int = 3600) -> dict[str, str]:
        assert self.tokens is not None
        token, _ = self.tokens.mint(user_id, ttl)
        return {"Authorization": f"Bearer {token}"}


@dataclass
class Node:
    api: Api
    worker: Worker
    heard: list[tuple[str, Event]]
    bus: MemoryBus

    async def follow(self, user: str) -> None:
        await self.bus.subscribe(user)

    def counts_of(self, user: str) -> list[dict[str, Any]]:
        return [orjson.loads(event.data) for who, event in self.heard
                if who == user and event.name == "unread-count"]


@pytest.fixture
async def node(store: SqlStore, smtp: SmtpServer, clock: FrozenClock) -> AsyncIterator[Node]:
    await clear_jobs(store)
    settings = Settings(database_url=store.url, api_keys=[PUBLISHER_KEY, OTHER_KEY],
                        jwt_secret=JWT_SECRET, smtp_url=smtp.url, worker_in_process=False,
                        retention_days=RETENTION_DAYS)
    bus = MemoryBus()
    app = create_app(settings, store=store, clock=clock, bus=bus)
    heard: list[tuple[str, Event]] = []
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://tocsin.test") as client:
        # After the lifespan started the bus: listen to what it carries, as a stream would.
        bus.set_handler(lambda user, event: heard.append((user, event)), lambda _: None)
        services = services_of(app)
        yield Node(ClockedApi(client, tokens=services.tokens), services.worker, heard, bus)


async def addressed(api: Api) -> str:
    user = new_user("sched")
    response = await api.client.put(f"/v1/users/{user}", headers=api.publisher,
                                    json={"email": f"{user}@example.com"})
    assert response.status_code == 200
    return user


async def schedule(api: Api, user: str, at: datetime, **fields: Any) -> dict[str, Any]:
    receipt: dict[str, Any] = (await api.publish(
        user, send_at=at.isoformat(), **fields))["notifications"][0]
    return receipt


async def run_due(worker: Worker) -> int:
    """Every job due now, in as many rounds as it takes."""
    total = 0
    while claimed := await worker.run_once():
        total += claimed
    return total


async def test_a_scheduled_notification_is_released_at_its_time_on_every_channel(
        node: Node, store: SqlStore, smtp: SmtpServer, clock: FrozenClock) -> None:
    user = await addressed(node.api)
    await node.follow(user)
    at = START + timedelta(hours=2)
    receipt = await schedule(node.api, user, at, channels=["web", "email"])
    assert (receipt["status"], receipt["seq"]) == ("scheduled", None)
    assert receipt["channels"] == {"web": "delivered", "email": "queued"}
    listed = await node.api.me(user, "notifications")
    assert (listed["notifications"], listed["unread_count"]) == ([], 0)

    await run_due(node.worker)
    clock.advance(2 * 3600 - 1)
    await run_due(node.worker)
    assert smtp.messages == [] and node.heard == []  # nothing before its time

    clock.advance(1)
    await run_due(node.worker)
    [item] = (await node.api.me(user, "notifications"))["notifications"]
    assert (item["id"], item["seq"], item["created_at"]) == (
        receipt["id"], 1, at.isoformat().replace("+00:00", "Z"))
    assert await counter_and_rows(store, user) == (1, 1, 1)
    assert [event.seq for who, event in node.heard if event.name == "notification"] == [1]
    assert len(await smtp.until_messages(1)) == 1


async def test_a_release_runs_once_even_when_repeated(node: Node, store: SqlStore,
                                                      clock: FrozenClock) -> None:
    user = new_user("sched")
    receipt = await schedule(node.api, user, START + timedelta(minutes=5))
    clock.advance(300)
    notification_id = uuid.UUID(receipt["id"])
    # Two workers racing, or one killed after its commit and the job claimed again.
    first, second = await asyncio.gather(store.release_scheduled(notification_id, clock.now()),
                                         store.release_scheduled(notification_id, clock.now()))
    assert [outcome is not None for outcome in (first, second)].count(True) == 1
    assert await store.release_scheduled(notification_id, clock.now()) is None
    await run_due(node.worker)  # the release job itself finds nothing left to do
    assert await counter_and_rows(store, user) == (1, 1, 1)
    [release] = [row for row in await job_rows(store, [notification_id])
                 if row.kind == "release"]
    assert release.status == "skipped"


async def test_cancel_before_release_and_conflict_after(node: Node, store: SqlStore,
                                                        smtp: SmtpServer,
                                                        clock: FrozenClock) -> None:
    user = await addressed(node.api)
    kept = await schedule(node.api, user, START + timedelta(hours=1), channels=["web", "email"])
    dropped = await schedule(node.api, user, START + timedelta(hours=1),
                             channels=["web", "email"])
    cancel = await node.api.client.delete(f"/v1/notifications/{dropped['id']}",
                                          headers=node.api.publisher)
    assert cancel.status_code == 204
    again = await node.api.client.delete(f"/v1/notifications/{dropped['id']}",
                                         headers=node.api.publisher)
    assert again.status_code == 204  # idempotent
    other = await node.api.client.delete(f"/v1/notifications/{kept['id']}",
                                         headers={"Authorization": f"Bearer {OTHER_KEY}"})
    assert_error(other, 404, "not_found")
    assert_error(await node.api.client.delete(f"/v1/notifications/{uuid.uuid4()}",
                                              headers=node.api.publisher), 404, "not_found")

    clock.advance(3600)
    await run_due(node.worker)
    listed = (await node.api.me(user, "notifications"))["notifications"]
    assert [item["id"] for item in listed] == [kept["id"]]
    assert len(await smtp.until_messages(1)) == 1
    assert await counter_and_rows(store, user) == (1, 1, 1)
    late = await node.api.client.delete(f"/v1/notifications/{kept['id']}",
                                        headers=node.api.publisher)
    assert_error(late, 409, "conflict")


async def test_a_scheduled_notification_during_quiet_hours_is_held_as_of_its_send_at(
        node: Node) -> None:
    user = await addressed(node.api)
    await node.api.me(user, "quiet-hours", method="PUT",
                      json={"start": "22:00", "end": "07:00", "timezone": "UTC"})
    at_night = await schedule(node.api, user, START.replace(hour=23), channels=["web", "email"])
    by_day = await schedule(node.api, user, START.replace(hour=15), channels=["web", "email"])
    assert at_night["channels"]["email"] == "held:quiet_hours"
    assert by_day["channels"]["email"] == "queued"


async def test_expired_notifications_leave_the_inbox_and_the_counter(
        node: Node, store: SqlStore, clock: FrozenClock) -> None:
    user = new_user("exp")
    await node.follow(user)
    soon = (START + timedelta(minutes=1)).isoformat()
    short = (await node.api.publish(user, expires_at=soon))["notifications"][0]
    read_short = (await node.api.publish(user, expires_at=soon))["notifications"][0]
    await node.api.publish(user)  # no expiry
    await node.api.me(user, f"notifications/{read_short['id']}/read", method="POST")
    assert await counter_and_rows(store, user) == (2, 2, 3)

    clock.advance(61)
    await run_due(node.worker)  # the sweep due now
    listed = await node.api.me(user, "notifications")
    assert [item["seq"] for item in listed["notifications"]] == [3]
    assert listed["unread_count"] == 1
    assert await counter_and_rows(store, user) == (1, 1, 3)
    assert node.counts_of(user)[-1]["count"] == 1
    one = await node.api.client.get(f"/v1/me/notifications/{short['id']}",
                                    headers=node.api.user(user))
    assert_error(one, 404, "not_found")
    # A resume from before them replays only what is left.
    replay = await services_of_store_after(store, user, 0)
    assert replay == [3]


async def services_of_store_after(store: SqlStore, user: str, after: int) -> list[int | None]:
    return [item.seq for item in await store.notifications_after(user, after, 100)]


async def test_the_sweep_runs_once_a_period_and_queues_the_next(
        node: Node, store: SqlStore, clock: FrozenClock) -> None:
    await run_due(node.worker)
    async with store.engine.connect() as conn:
        sweeps = (await conn.execute(sa.select(jobs.c.status, jobs.c.available_at)
                                     .where(jobs.c.kind == SWEEP)
                                     .order_by(jobs.c.available_at))).all()
    assert [row.status for row in sweeps] == ["done", "pending"]
    assert sweeps[1].available_at - sweeps[0].available_at == timedelta(seconds=60)
    assert await node.worker.run_once() == 0  # the next is not due yet
    clock.advance(60)
    assert await node.worker.run_once() == 1


async def test_old_read_and_hidden_notifications_are_purged_after_the_retention(
        node: Node, store: SqlStore, clock: FrozenClock) -> None:
    user = new_user("old")
    read = (await node.api.publish(user))["notifications"][0]
    unread = (await node.api.publish(user))["notifications"][0]
    await node.api.me(user, f"notifications/{read['id']}/read", method="POST")
    clock.advance(RETENTION_DAYS * 86400 + 1)
    # Read too, but within the retention: it stays.
    young = (await node.api.publish(user))["notifications"][0]
    await node.api.me(user, f"notifications/{young['id']}/read", method="POST")
    await run_due(node.worker)
    async with store.engine.connect() as conn:
        left = set((await conn.execute(sa.select(notifications.c.id).where(
            notifications.c.user_id == user))).scalars())
    assert left == {uuid.UUID(unread["id"]), uuid.UUID(young["id"])}
    assert await counter_and_rows(store, user) == (1, 1, 3)
