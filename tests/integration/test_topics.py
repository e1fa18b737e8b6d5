"""Topics through the API, on SQLite and PostgreSQL: subscribers (add, list by cursor,
remove), self-subscription where a topic allows it, a publish to a topic expanded by a worker
on a frozen clock, its progress, and its Idempotency-Key.

The worker here is the one `tocsin worker` runs (wiring's), with batches of 2 subscribers,
so a topic of a few users is already several batches and several jobs.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.integration.apps import running_api
from tests.integration.problems import assert_error
from tests.support.client import Api, new_user, settings_for
from tests.support.db import row_counts
from tests.support.jobs import clear_jobs
from tests.support.services import fresh_postgres_database
from tocsin.bus.memory import MemoryBus
from tocsin.clock import FrozenClock
from tocsin.domain.drafts import LIVE_CHANNEL, ChannelDecision, NotificationDraft, PublishBatch
from tocsin.domain.topics import FanoutStep, StaleFanout
from tocsin.jobs.base import FANOUT
from tocsin.jobs.sql import SqlJobs
from tocsin.jobs.worker import RetryPolicy, Worker
from tocsin.store.schema import fanouts, jobs, notifications
from tocsin.store.sql import SqlStore
from tocsin.topics.expansion import FanoutHandler
from tocsin.wiring import build_publishing

BATCH = 2
TYPE = "comment"


@pytest.fixture(scope="module")
def postgres_database(postgres_url: str) -> Iterator[str]:
    """Workers claim any due job in the database: this module gets a database of its own."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
async def api(store: SqlStore) -> AsyncIterator[Api]:
    await clear_jobs(store)
    # No worker in the app: the tests run their own, on their own clock.
    async with running_api(store, worker_in_process=False) as app:
        yield app


@pytest.fixture
def clock() -> FrozenClock:
    """The worker's clock: a day ahead of the app's, so what the app queued is due."""
    return FrozenClock(datetime.now(UTC) + timedelta(days=1))


def fanout_worker(store: SqlStore, clock: FrozenClock, *, batches_per_job: int = 10) -> Worker:
    settings = settings_for(store.url, fanout_batch=BATCH)
    queue = SqlJobs(store.db)
    node = build_publishing(settings, store, clock, MemoryBus(), queue, {}, wake_worker=False)
    handler = FanoutHandler(store, queue, node.pipeline, clock, batch=BATCH,
                            batches_per_job=batches_per_job)
    return Worker(queue, [handler], clock, retry=RetryPolicy(), lease_seconds=30)


def topic_name() -> str:
    return f"project-{uuid.uuid4().hex[:12]}"


def members(count: int) -> list[str]:
    """`count` user ids whose order is their number's under any collation."""
    base = new_user("sub")
    return [f"{base}-{i:03d}" for i in range(count)]


async def subscribe(api: Api, topic: str, user_ids: list[str], expect: int = 200) -> Any:
    response = await api.client.put(f"/v1/topics/{topic}/subscribers", headers=api.publisher,
                                    json={"user_ids": user_ids})
    assert response.status_code == expect, response.text
    return response.json()


async def listed(api: Api, topic: str, **params: Any) -> Any:
    response = await api.client.get(f"/v1/topics/{topic}/subscribers", headers=api.publisher,
                                    params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def publish_topic(api: Api, topic: str, *, headers: dict[str, str] | None = None,
                        **fields: Any) -> Any:
    body = {"topic": topic, "type": TYPE, "title": "Alice commented", **fields}
    response = await api.client.post("/v1/notifications", json=body,
                                     headers={**api.publisher, **(headers or {})})
    assert response.status_code == 202, response.text
    return response.json()


async def progress(api: Api, fanout_id: str) -> Any:
    response = await api.client.get(f"/v1/fanouts/{fanout_id}", headers=api.publisher)
    assert response.status_code == 200, response.text
    return response.json()


async def rows_by_user(store: SqlStore, user_ids: list[str]) -> dict[str, list[Any]]:
    async with store.engine.connect() as conn:
        rows = (await conn.execute(
            sa.select(notifications.c.user_id, notifications.c.seq, notifications.c.status,
                      notifications.c.title)
            .where(notifications.c.user_id.in_(user_ids)).order_by(notifications.c.seq)
        )).all()
    found: dict[str, list[Any]] = {user: [] for user in user_ids}
    for row in rows:
        found[row.user_id].append(row)
    return found


async def run_until_done(worker: Worker, rounds: int = 50) -> int:
    """Claims until one finds nothing; returns how many rounds claimed a job."""
    for done in range(rounds):
        if not await worker.run_once():
            return done
    raise AssertionError(f"the fan-out still had jobs after {rounds} rounds")


async def test_subscribers_are_added_once_listed_by_cursor_and_removed(
    api: Api, store: SqlStore
) -> None:
    topic, users = topic_name(), members(5)
    assert await subscribe(api, topic, users[:3]) == {"topic": topic, "added": 3}
    # Again, with two new ones and a repeat within the request: only the new ones count.
    assert await subscribe(api, topic, [users[4], users[0], users[3], users[4]]) == \
        {"topic": topic, "added": 2}

    first = await listed(api, topic, limit=2)
    assert first == {"user_ids": users[:2], "next": users[1]}
    second = await listed(api, topic, limit=2, cursor=first["next"])
    assert second == {"user_ids": users[2:4], "next": users[3]}
    last = await listed(api, topic, limit=2, cursor=second["next"])
    assert last == {"user_ids": users[4:], "next": None}

    for _ in range(2):  # idempotent: the second DELETE answers like the first
        removed = await api.client.delete(f"/v1/topics/{topic}/subscribers/{users[2]}",
                                          headers=api.publisher)
        assert removed.status_code == 204, removed.text
    assert (await listed(api, topic))["user_ids"] == [u for u in users if u != users[2]]

    # The topic was created by its first subscription, closed to self-subscription.
    shown = await api.client.get(f"/v1/topics/{topic}", headers=api.publisher)
    assert shown.json() == {"topic": topic, "self_subscribe": False}


async def test_an_unknown_topic_is_not_found(api: Api, store: SqlStore) -> None:
    topic = topic_name()
    before = await row_counts(store)
    for method, path, auth in (
            ("GET", f"/v1/topics/{topic}", api.publisher),
            ("GET", f"/v1/topics/{topic}/subscribers", api.publisher),
            ("POST", f"/v1/me/topics/{topic}", api.user(new_user())),
            ("DELETE", f"/v1/me/topics/{topic}", api.user(new_user()))):
        response = await api.client.request(method, path, headers=auth)
        assert_error(response, 404, "not_found")
    refused = await api.client.post("/v1/notifications", headers=api.publisher,
                                    json={"topic": topic, "type": TYPE, "title": "t"})
    assert_error(refused, 404, "not_found")
    assert await row_counts(store) == before


async def test_users_subscribe_themselves_only_where_the_topic_allows_it(
    api: Api, store: SqlStore
) -> None:
    topic, [member, other] = topic_name(), members(2)
    await subscribe(api, topic, [other])
    before = await row_counts(store)
    for method in ("POST", "DELETE"):
        refused = await api.client.request(method, f"/v1/me/topics/{topic}",
                                           headers=api.user(member))
        assert_error(refused, 403, "forbidden")
    assert await row_counts(store) == before

    opened = await api.client.put(f"/v1/topics/{topic}", headers=api.publisher,
                                  json={"self_subscribe": True})
    assert opened.json() == {"topic": topic, "self_subscribe": True}
    for _ in range(2):  # idempotent
        joined = await api.client.post(f"/v1/me/topics/{topic}", headers=api.user(member))
        assert joined.status_code == 204, joined.text
    assert (await listed(api, topic))["user_ids"] == [member, other]
    left = await api.client.delete(f"/v1/me/topics/{topic}", headers=api.user(member))
    assert left.status_code == 204, left.text
    assert (await listed(api, topic))["user_ids"] == [other]

    # Closed again: the publisher still manages it, users no longer can.
    await api.client.put(f"/v1/topics/{topic}", headers=api.publisher,
                         json={"self_subscribe": False})
    again = await api.client.post(f"/v1/me/topics/{topic}", headers=api.user(member))
    assert_error(again, 403, "forbidden")


async def test_a_topic_publish_reaches_every_subscriber_once_but_the_excluded(
    api: Api, store: SqlStore, clock: FrozenClock
) -> None:
    topic, users = topic_name(), members(7)
    excluded, muted, earlier = users[1], users[4], users[5]
    await subscribe(api, topic, users)
    await api.publish(earlier, title="Before the topic")  # seq 1 already
    mute = await api.client.put(f"/v1/users/{muted}/preferences", headers=api.publisher,
                                json={"muted": True})
    assert mute.status_code == 200, mute.text

    accepted = await publish_topic(api, topic, exclude_user_ids=[excluded],
                                   data={"project": 7})
    assert set(accepted) == {"fanout_id", "recipients"}
    assert accepted["recipients"] == 6
    fanout_id = accepted["fanout_id"]
    assert await progress(api, fanout_id) == {"id": fanout_id, "status": "running",
                                              "recipients": 6, "processed": 0}

    # One batch per job: each run expands two subscribers and queues the rest.
    worker = fanout_worker(store, clock, batches_per_job=1)
    assert await worker.run_once() == 1
    assert await progress(api, fanout_id) == {"id": fanout_id, "status": "running",
                                              "recipients": 6, "processed": 2}
    assert await run_until_done(worker) >= 3
    assert await progress(api, fanout_id) == {"id": fanout_id, "status": "done",
                                              "recipients": 6, "processed": 6}

    found = await rows_by_user(store, users)
    assert found[excluded] == []
    for user in set(users) - {excluded}:
        topical = [row for row in found[user] if row.title == "Alice commented"]
        assert len(topical) == 1, (user, found[user])
    [suppressed] = found[muted]
    assert (suppressed.status, suppressed.seq) == ("suppressed", None)
    assert [row.seq for row in found[earlier]] == [1, 2]  # gap-free, after the earlier one
    for user in set(users) - {excluded, muted, earlier}:
        assert [(row.seq, row.status) for row in found[user]] == [(1, "created")]
        inbox = await api.me(user, "notifications")
        [item] = inbox["notifications"]
        assert (item["title"], item["data"]) == ("Alice commented", {"project": 7})
        assert inbox["unread_count"] == 1

    # Nothing is left to do, and running again changes nothing.
    async with store.engine.connect() as conn:
        pending = (await conn.execute(sa.select(sa.func.count()).select_from(jobs).where(
            jobs.c.kind == FANOUT, jobs.c.status == "pending"))).scalar_one()
    assert pending == 0
    clock.advance(3600)
    assert await worker.run_once() == 0
    assert await rows_by_user(store, users) == found


async def test_a_retried_topic_publish_returns_the_first_fanout_and_records_nothing(
    api: Api, store: SqlStore
) -> None:
    topic = topic_name()
    await subscribe(api, topic, members(3))
    key = {"Idempotency-Key": f"topic-{uuid.uuid4().hex}"}
    first = await publish_topic(api, topic, headers=key)
    before = await row_counts(store)
    response = await api.client.post(
        "/v1/notifications", headers={**api.publisher, **key},
        json={"title": "Alice commented", "type": TYPE, "topic": topic})  # other key order
    assert response.status_code == 202, response.text
    assert response.json() == first
    assert response.headers["Idempotent-Replayed"] == "true"
    assert await row_counts(store) == before
    other = await api.client.post("/v1/notifications", headers={**api.publisher, **key},
                                  json={"topic": topic, "type": TYPE, "title": "Bob"})
    assert_error(other, 422, "idempotency_key_reused")
    assert await row_counts(store) == before


async def test_an_empty_topic_is_done_with_nobody_notified(
    api: Api, store: SqlStore, clock: FrozenClock
) -> None:
    topic = topic_name()
    opened = await api.client.put(f"/v1/topics/{topic}", headers=api.publisher,
                                  json={"self_subscribe": True})
    assert opened.status_code == 200, opened.text
    accepted = await publish_topic(api, topic)
    assert accepted["recipients"] == 0
    before = (await row_counts(store))["notifications"]
    assert await run_until_done(fanout_worker(store, clock)) == 1
    assert (await progress(api, accepted["fanout_id"]))["status"] == "done"
    assert (await row_counts(store))["notifications"] == before


async def test_a_batch_whose_step_was_committed_by_another_writes_nothing(
    api: Api, store: SqlStore, clock: FrozenClock
) -> None:
    """Two workers on one fan-out (a lease that lapsed): the one that commits second finds
    the cursor moved, and its whole batch rolls back."""
    topic, users = topic_name(), members(2)
    await subscribe(api, topic, users)
    fanout_id = uuid.UUID((await publish_topic(api, topic))["fanout_id"])
    drafts = [NotificationDraft(user_id=user, type=TYPE, data={}, title="t",
                                channels={LIVE_CHANNEL: ChannelDecision.live()})
              for user in users]
    step = FanoutStep(fanout_id=fanout_id, after=None, to=users[-1], count=2)
    await store.publish(PublishBatch(publisher="p", drafts=drafts, step=step), clock.now(), 60)
    before = await row_counts(store)
    with pytest.raises(StaleFanout):
        await store.publish(PublishBatch(publisher="p", drafts=drafts, step=step),
                            clock.now(), 60)
    assert await row_counts(store) == before
    async with store.engine.connect() as conn:
        row = (await conn.execute(sa.select(fanouts).where(fanouts.c.id == fanout_id))).one()
    assert (row.cursor, row.processed) == (users[-1], 2)
    assert [len(rows) for rows in (await rows_by_user(store, users)).values()] == [1, 1]


async def test_a_fanout_that_expires_before_it_is_expanded_stops_with_nobody_notified(
    api: Api, store: SqlStore, clock: FrozenClock
) -> None:
    topic, users = topic_name(), members(3)
    await subscribe(api, topic, users)
    # Valid for an hour of the app's time: past by the worker's, a day ahead.
    expires = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    accepted = await publish_topic(api, topic, expires_at=expires)
    assert await run_until_done(fanout_worker(store, clock)) == 1
    assert await progress(api, accepted["fanout_id"]) == {
        "id": accepted["fanout_id"], "status": "done", "recipients": 3, "processed": 0}
    assert [len(rows) for rows in (await rows_by_user(store, users)).values()] == [0, 0, 0]
