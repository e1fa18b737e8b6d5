"""The jobs worker with its delivery handler over a real database (SQLite, PostgreSQL) and a
real SMTP server: sent, retried with the same Message-ID, dead letters, replay through the admin
API, skips, and the in-process worker of the app.

Retries are due on a FrozenClock, which the tests move past the policy's longest delay instead
of waiting for it. (A batch slower than its lease is tests/unit/test_worker.py's.)
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.apps import running_api
from tests.integration.problems import assert_error
from tests.support.client import new_user
from tests.support.jobs import clear_jobs, events_of, ids_of, job_rows, publish_email
from tests.support.services import fresh_postgres_database
from tests.support.smtp import SmtpServer, smtp_server
from tocsin.channels.base import Channel
from tocsin.channels.delivery import DeliveryHandler
from tocsin.channels.email import EmailChannel
from tocsin.clock import FrozenClock
from tocsin.domain.models import UserProfile
from tocsin.jobs.sql import SqlJobs
from tocsin.jobs.worker import RetryPolicy, Worker
from tocsin.smtp import SmtpSettings
from tocsin.store.sql import SqlStore

SENDER = "Tocsin <notifications@tocsin.test>"
#: The longest a retry waits: the tests move the clock this far when a round claims nothing.
CAP_SECONDS = 4.0
#: Enough rounds of `run_once` for any test here.
ROUNDS = 100


@pytest.fixture(scope="module")
def postgres_database(postgres_url: str) -> Iterator[str]:
    """Workers claim any due delivery in the database: this module gets a database of its own."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
async def jobs(store: SqlStore) -> AsyncIterator[SqlJobs]:
    await clear_jobs(store)
    yield SqlJobs(store.db)


@pytest.fixture
def clock() -> FrozenClock:
    """The workers' clock: a day ahead of the app's real one, so what the app queues or
    replays (at its own now) is due for them."""
    return FrozenClock(datetime.now(UTC) + timedelta(days=1))


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


def make_worker(jobs: SqlJobs, store: SqlStore, smtp: SmtpServer, clock: FrozenClock, *,
                max_attempts: int = 8, channels: dict[str, Channel] | None = None) -> Worker:
    if channels is None:
        channels = {"email": EmailChannel(SmtpSettings(smtp.url, SENDER, timeout=10))}
    return Worker(jobs, [DeliveryHandler(store, channels)], clock,
                  retry=RetryPolicy(max_attempts=max_attempts, base_seconds=1.0,
                                    cap_seconds=CAP_SECONDS),
                  lease_seconds=30, batch=50)


async def addressed(store: SqlStore, clock: FrozenClock, count: int = 1, *,
                    email: bool = True) -> list[str]:
    users = [new_user("wk") for _ in range(count)]
    if email:
        for user in users:
            await store.put_user(UserProfile(id=user, email=f"{user}@example.com"), clock.now())
    return users


async def queue(store: SqlStore, clock: FrozenClock, users: list[str], **fields: Any
                ) -> list[uuid.UUID]:
    return ids_of(await publish_email(store, users, clock.now(), **fields))


async def delivery_id(store: SqlStore, notification_id: uuid.UUID) -> uuid.UUID:
    [row] = await job_rows(store, [notification_id])
    return uuid.UUID(str(row.id))


async def work_until_settled(worker: Worker, store: SqlStore, clock: FrozenClock,
                             notification_ids: list[uuid.UUID], rounds: int = ROUNDS
                             ) -> dict[uuid.UUID, str]:
    """Run the worker (a bounded number of rounds) until no delivery is pending; returns the
    status of each notification's delivery. A round that claims nothing moves the clock to
    where every retry is due."""
    rows: list[Any] = []
    for _ in range(rounds):
        claimed = await worker.run_once()
        rows = await job_rows(store, notification_ids)
        if rows and all(row.status != "pending" for row in rows):
            return {row.notification_id: row.status for row in rows}
        if not claimed:
            clock.advance(CAP_SECONDS)
    raise AssertionError(f"still pending after {rounds} rounds: {rows}")


async def test_a_delivery_is_sent_once(store: SqlStore, jobs: SqlJobs, smtp: SmtpServer,
                                       clock: FrozenClock) -> None:
    users = await addressed(store, clock)
    [notification_id] = await queue(store, clock, users)
    worker = make_worker(jobs, store, smtp, clock)
    assert await worker.run_once() == 1
    [row] = await job_rows(store, [notification_id])
    assert (row.status, row.attempts, row.last_error) == ("done", 1, None)
    [received] = smtp.messages
    assert received.rcpt_tos == (f"{users[0]}@example.com",)
    assert received.message_id == f"<{row.id}@tocsin>"
    assert received.email["X-Tocsin-Notification"] == str(notification_id)
    assert await events_of(store, notification_id) == [("queued", "email"), ("sent", "email")]
    clock.advance(86400)
    assert await worker.run_once() == 0
    assert len(smtp.messages) == 1


async def test_a_batch_is_sent_in_one_round(store: SqlStore, jobs: SqlJobs, smtp: SmtpServer,
                                            clock: FrozenClock) -> None:
    users = await addressed(store, clock, 12)
    notification_ids = await queue(store, clock, users)
    worker = make_worker(jobs, store, smtp, clock)
    assert await worker.run_once() == 12
    rows = await job_rows(store, notification_ids)
    assert {row.status for row in rows} == {"done"}
    assert sorted(m.message_id for m in smtp.messages) == \
        sorted(f"<{row.id}@tocsin>" for row in rows)
    assert sorted(m.rcpt_tos[0] for m in smtp.messages) == sorted(f"{u}@example.com"
                                                                  for u in users)


async def test_busy_twice_then_delivered_with_the_same_message_id_every_time(
    store: SqlStore, jobs: SqlJobs, smtp: SmtpServer, clock: FrozenClock
) -> None:
    [notification_id] = await queue(store, clock, await addressed(store, clock))
    smtp.fail("DATA", "450 4.2.0 mailbox busy", times=2)
    worker = make_worker(jobs, store, smtp, clock)
    assert await work_until_settled(worker, store, clock, [notification_id]) == \
        {notification_id: "done"}
    [row] = await job_rows(store, [notification_id])
    assert row.attempts == 3
    attempts = smtp.data_attempts
    assert [reply for reply, _ in attempts] == ["450 4.2.0 mailbox busy"] * 2 + ["250"]
    assert {message.message_id for _, message in attempts} == {f"<{row.id}@tocsin>"}
    assert len(smtp.messages) == 1
    assert await events_of(store, notification_id) == [
        ("queued", "email"), ("failed", "email"), ("failed", "email"), ("sent", "email")]


async def test_a_permanent_refusal_is_a_dead_letter_at_once(
    store: SqlStore, jobs: SqlJobs, smtp: SmtpServer, clock: FrozenClock
) -> None:
    [notification_id] = await queue(store, clock, await addressed(store, clock))
    smtp.fail("RCPT", "550 5.1.1 no such user", times=None)
    worker = make_worker(jobs, store, smtp, clock)
    assert await worker.run_once() == 1
    [row] = await job_rows(store, [notification_id])
    assert (row.status, row.attempts) == ("dead", 1)
    assert "550" in row.last_error
    for _ in range(5):  # no retry, however long one waits
        clock.advance(86400)
        assert await worker.run_once() == 0
    assert smtp.commands == ["RCPT 550 5.1.1 no such user"]
    assert await events_of(store, notification_id) == [
        ("queued", "email"), ("failed", "email"), ("dead", "email")]
    [letter] = await jobs.dead_letters()
    assert letter.id == row.id


async def test_a_server_always_busy_makes_a_dead_letter_after_exactly_max_attempts(
    store: SqlStore, jobs: SqlJobs, smtp: SmtpServer, clock: FrozenClock
) -> None:
    [notification_id] = await queue(store, clock, await addressed(store, clock))
    smtp.fail("RCPT", "421 4.3.0 try later", times=None)
    worker = make_worker(jobs, store, smtp, clock, max_attempts=3)
    assert await work_until_settled(worker, store, clock, [notification_id]) == \
        {notification_id: "dead"}
    [row] = await job_rows(store, [notification_id])
    assert row.attempts == 3
    assert "421" in row.last_error
    assert smtp.commands == ["RCPT 421 4.3.0 try later"] * 3
    assert smtp.messages == []
    assert await events_of(store, notification_id) == [
        ("queued", "email"), ("failed", "email"), ("failed", "email"), ("failed", "email"),
        ("dead", "email")]


async def test_a_dead_letter_replayed_through_the_admin_api_is_delivered(
    store: SqlStore, jobs: SqlJobs, smtp: SmtpServer, clock: FrozenClock
) -> None:
    [notification_id] = await queue(store, clock, await addressed(store, clock))
    smtp.fail("RCPT", "550 5.1.1 no such user", times=None)
    worker = make_worker(jobs, store, smtp, clock)
    assert await worker.run_once() == 1
    dead_id = await delivery_id(store, notification_id)

    async with running_api(store, smtp_url=smtp.url, worker_in_process=False) as api:
        listed = await api.client.get("/v1/admin/dead-letters", headers=api.publisher)
        assert listed.status_code == 200, listed.text
        [letter] = [d for d in listed.json()["dead_letters"] if d["id"] == str(dead_id)]
        assert letter["notification_id"] == str(notification_id)
        assert (letter["kind"], letter["channel"], letter["attempts"]) == \
            ("delivery", "email", 1)
        assert "550" in letter["last_error"]

        smtp.heal()  # the mailbox exists now
        replayed = await api.client.post(f"/v1/admin/dead-letters/{dead_id}/replay",
                                         headers=api.publisher)
        assert replayed.status_code == 202, replayed.text
        assert replayed.json()["id"] == str(dead_id)
        assert replayed.json()["attempts"] == 0
        again = await api.client.post(f"/v1/admin/dead-letters/{dead_id}/replay",
                                      headers=api.publisher)
        assert again.status_code == 404, again.text

        listed = await api.client.get("/v1/admin/dead-letters", headers=api.publisher)
        assert str(dead_id) not in [d["id"] for d in listed.json()["dead_letters"]]

    # Replayed at the app's time, a day before this worker's: due now.
    assert await worker.run_once() == 1
    [row] = await job_rows(store, [notification_id])
    assert (row.status, row.attempts) == ("done", 1)
    [received] = smtp.messages
    assert received.message_id == f"<{dead_id}@tocsin>"
    assert await events_of(store, notification_id) == [
        ("queued", "email"), ("failed", "email"), ("dead", "email"), ("sent", "email")]


async def test_the_admin_routes_want_a_publisher_key_and_a_dead_letter_id(
    store: SqlStore, jobs: SqlJobs
) -> None:
    async with running_api(store) as api:
        user = new_user("wk")
        for headers in ({}, api.user(user)):
            listed = await api.client.get("/v1/admin/dead-letters", headers=headers)
            assert_error(listed, 401, "unauthorized")
            replay = await api.client.post(f"/v1/admin/dead-letters/{uuid.uuid4()}/replay",
                                           headers=headers)
            assert_error(replay, 401, "unauthorized")
        for bad in (str(uuid.uuid4()), "not-a-uuid"):
            replay = await api.client.post(f"/v1/admin/dead-letters/{bad}/replay",
                                           headers=api.publisher)
            assert_error(replay, 404, "not_found")
        too_many = await api.client.get("/v1/admin/dead-letters?limit=1001",
                                        headers=api.publisher)
        assert too_many.status_code == 422


async def test_a_user_without_an_email_address_is_skipped_not_retried(
    store: SqlStore, jobs: SqlJobs, smtp: SmtpServer, clock: FrozenClock
) -> None:
    [notification_id] = await queue(store, clock, await addressed(store, clock, email=False))
    worker = make_worker(jobs, store, smtp, clock)
    assert await worker.run_once() == 1
    [row] = await job_rows(store, [notification_id])
    assert (row.status, row.attempts) == ("skipped", 1)
    assert "no email" in row.last_error
    for _ in range(3):
        clock.advance(86400)
        assert await worker.run_once() == 0
    assert smtp.commands == []
    assert await events_of(store, notification_id) == [("queued", "email"), ("skipped", "email")]
    assert await jobs.dead_letters() == []


async def test_a_channel_this_worker_lacks_makes_a_dead_letter(
    store: SqlStore, jobs: SqlJobs, smtp: SmtpServer, clock: FrozenClock
) -> None:
    [notification_id] = await queue(store, clock, await addressed(store, clock))
    worker = make_worker(jobs, store, smtp, clock, channels={})
    assert await worker.run_once() == 1
    [row] = await job_rows(store, [notification_id])
    assert row.status == "dead"
    assert "not configured" in row.last_error
    assert smtp.commands == []


async def test_one_bad_delivery_does_not_hold_back_the_others(
    store: SqlStore, jobs: SqlJobs, smtp: SmtpServer, clock: FrozenClock
) -> None:
    with_email = await addressed(store, clock, 3)
    without = await addressed(store, clock, email=False)
    notification_ids = await queue(store, clock, [*with_email, *without])
    smtp.fail("RCPT", "450 4.2.0 mailbox busy", times=1)  # whichever comes first: retried
    worker = make_worker(jobs, store, smtp, clock)
    statuses = await work_until_settled(worker, store, clock, notification_ids)
    assert sorted(statuses.values()) == ["done", "done", "done", "skipped"]
    assert statuses[notification_ids[3]] == "skipped"
    assert sorted(m.rcpt_tos[0] for m in smtp.messages) == sorted(f"{u}@example.com"
                                                                  for u in with_email)


async def test_the_in_process_worker_emails_what_the_api_publishes(
    store: SqlStore, jobs: SqlJobs, smtp: SmtpServer
) -> None:
    user = new_user("wk")
    async with running_api(store, smtp_url=smtp.url, outbox_backoff_base_seconds=0.01) as api:
        put = await api.client.put(f"/v1/users/{user}",
                                   json={"email": "grace@example.com", "name": "Grace Hopper"},
                                   headers=api.publisher)
        assert put.status_code == 200, put.text
        published = await api.publish(user, title="Your build passed",
                                      action_url="https://ci.example.com/builds/9",
                                      channels=["web", "email"])
        assert published["notifications"][0]["channels"] == \
            {"web": "delivered", "email": "queued"}
        notification_id = uuid.UUID(published["notifications"][0]["id"])
        [received] = await smtp.until_messages(1, within=15)
        assert received.rcpt_tos == ("grace@example.com",)
        assert received.email["Subject"] == "Your build passed"
        sent_id = await delivery_id(store, notification_id)
        assert received.email["Message-ID"] == f"<{sent_id}@tocsin>"
        for _ in range(ROUNDS * 3):  # the worker records the outcome once the server said 250
            [row] = await job_rows(store, [notification_id])
            if row.status != "pending":
                break
            await asyncio.sleep(0.02)
        assert row.status == "done"
        # The live side got it too: it is in the user's list.
        listed = await api.me(user, "notifications")
        assert [n["id"] for n in listed["notifications"]] == [str(notification_id)]
    assert len(smtp.messages) == 1


async def test_without_smtp_the_email_channel_is_refused_and_nothing_is_queued(
    store: SqlStore, jobs: SqlJobs
) -> None:
    user = new_user("wk")
    async with running_api(store) as api:
        refused = await api.publish(user, channels=["web", "email"], expect=422)
        assert refused["error"]["code"] == "validation_error"
        assert refused["error"]["details"]["available"] == ["web"]
        await api.publish(user, channels=["web"])
    # The in-process worker's own sweep may be queued; no delivery is.
    assert [row for row in await job_rows(store) if row.kind != "sweep"] == []
