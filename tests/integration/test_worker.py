"""The outbox worker over a real database (SQLite, PostgreSQL) and a real SMTP server: sent,
retried with the same Message-ID, dead letters, replay through the admin API, skips, and the
in-process worker of the app."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.integration.apps import running_api
from tests.integration.problems import assert_error
from tests.support.client import new_user
from tests.support.outbox import clear_outbox, events_of, ids_of, outbox_rows, publish_email
from tests.support.services import fresh_postgres_database
from tests.support.smtp import SmtpServer, smtp_server
from tocsin.channels.base import Channel
from tocsin.channels.email import EmailChannel, SmtpSettings
from tocsin.channels.worker import RetryPolicy, Worker
from tocsin.clock import SystemClock
from tocsin.domain.models import UserProfile
from tocsin.store.outbox import SqlOutbox
from tocsin.store.sql import SqlStore

SENDER = "Tocsin <notifications@tocsin.test>"
#: Enough rounds of `run_once` for any test here; each round that claims nothing waits 20 ms.
ROUNDS = 300


@pytest.fixture(scope="module")
def postgres_database(postgres_url: str) -> Iterator[str]:
    """Workers claim any due delivery in the database: this module gets a database of its own."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
async def outbox(store: SqlStore) -> AsyncIterator[SqlOutbox]:
    await clear_outbox(store)
    yield SqlOutbox(store)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


def make_worker(outbox: SqlOutbox, smtp: SmtpServer, *, max_attempts: int = 8,
                channels: dict[str, Channel] | None = None) -> Worker:
    if channels is None:
        channels = {"email": EmailChannel(SmtpSettings(smtp.url, SENDER, timeout=10))}
    return Worker(outbox, channels, SystemClock(),
                  retry=RetryPolicy(max_attempts=max_attempts, base_seconds=0.01,
                                    cap_seconds=0.05),
                  lease_seconds=30, batch=50)


async def addressed(store: SqlStore, count: int = 1, *, email: bool = True) -> list[str]:
    users = [new_user("wk") for _ in range(count)]
    if email:
        for user in users:
            await store.put_user(UserProfile(id=user, email=f"{user}@example.com"),
                                 datetime.now(UTC))
    return users


async def queue(store: SqlStore, users: list[str], **fields: Any) -> list[uuid.UUID]:
    return ids_of(await publish_email(store, users, datetime.now(UTC), **fields))


async def delivery_id(store: SqlStore, notification_id: uuid.UUID) -> uuid.UUID:
    [row] = await outbox_rows(store, [notification_id])
    return uuid.UUID(str(row.id))


async def work_until_settled(worker: Worker, store: SqlStore, notification_ids: list[uuid.UUID],
                             rounds: int = ROUNDS) -> dict[uuid.UUID, str]:
    """Run the worker (a bounded number of rounds) until no delivery is pending; returns the
    status of each notification's delivery."""
    for _ in range(rounds):
        claimed = await worker.run_once()
        rows = await outbox_rows(store, notification_ids)
        if rows and all(row.status != "pending" for row in rows):
            return {row.notification_id: row.status for row in rows}
        if not claimed:
            await asyncio.sleep(0.02)  # a retry is due a few milliseconds from now
    raise AssertionError(f"still pending after {rounds} rounds: {rows}")


async def test_a_delivery_is_sent_once(store: SqlStore, outbox: SqlOutbox,
                                       smtp: SmtpServer) -> None:
    users = await addressed(store)
    [notification_id] = await queue(store, users)
    worker = make_worker(outbox, smtp)
    assert await worker.run_once() == 1
    [row] = await outbox_rows(store, [notification_id])
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, None)
    [received] = smtp.messages
    assert received.rcpt_tos == (f"{users[0]}@example.com",)
    assert received.message_id == f"<{row.id}@tocsin>"
    assert received.email["X-Tocsin-Notification"] == str(notification_id)
    assert await events_of(store, notification_id) == [("queued", "email"), ("sent", "email")]
    assert await worker.run_once() == 0
    assert len(smtp.messages) == 1


async def test_a_batch_is_sent_in_one_round(store: SqlStore, outbox: SqlOutbox,
                                            smtp: SmtpServer) -> None:
    users = await addressed(store, 12)
    notification_ids = await queue(store, users)
    worker = make_worker(outbox, smtp)
    assert await worker.run_once() == 12
    rows = await outbox_rows(store, notification_ids)
    assert {row.status for row in rows} == {"sent"}
    assert sorted(m.message_id for m in smtp.messages) == \
        sorted(f"<{row.id}@tocsin>" for row in rows)
    assert sorted(m.rcpt_tos[0] for m in smtp.messages) == sorted(f"{u}@example.com"
                                                                  for u in users)


async def test_busy_twice_then_delivered_with_the_same_message_id_every_time(
    store: SqlStore, outbox: SqlOutbox, smtp: SmtpServer
) -> None:
    [notification_id] = await queue(store, await addressed(store))
    smtp.fail("DATA", "450 4.2.0 mailbox busy", times=2)
    worker = make_worker(outbox, smtp)
    assert await work_until_settled(worker, store, [notification_id]) == \
        {notification_id: "sent"}
    [row] = await outbox_rows(store, [notification_id])
    assert row.attempts == 3
    attempts = smtp.data_attempts
    assert [reply for reply, _ in attempts] == ["450 4.2.0 mailbox busy"] * 2 + ["250"]
    assert {message.message_id for _, message in attempts} == {f"<{row.id}@tocsin>"}
    assert len(smtp.messages) == 1
    assert await events_of(store, notification_id) == [
        ("queued", "email"), ("failed", "email"), ("failed", "email"), ("sent", "email")]


async def test_a_permanent_refusal_is_a_dead_letter_at_once(
    store: SqlStore, outbox: SqlOutbox, smtp: SmtpServer
) -> None:
    [notification_id] = await queue(store, await addressed(store))
    smtp.fail("RCPT", "550 5.1.1 no such user", times=None)
    worker = make_worker(outbox, smtp)
    assert await worker.run_once() == 1
    [row] = await outbox_rows(store, [notification_id])
    assert (row.status, row.attempts) == ("dead", 1)
    assert "550" in row.last_error
    for _ in range(5):  # no retry, however long one waits
        assert await worker.run_once() == 0
    assert smtp.commands == ["RCPT 550 5.1.1 no such user"]
    assert await events_of(store, notification_id) == [
        ("queued", "email"), ("failed", "email"), ("dead", "email")]
    [letter] = await outbox.dead_letters()
    assert letter.id == row.id


async def test_a_server_always_busy_makes_a_dead_letter_after_exactly_max_attempts(
    store: SqlStore, outbox: SqlOutbox, smtp: SmtpServer
) -> None:
    [notification_id] = await queue(store, await addressed(store))
    smtp.fail("RCPT", "421 4.3.0 try later", times=None)
    worker = make_worker(outbox, smtp, max_attempts=3)
    assert await work_until_settled(worker, store, [notification_id]) == \
        {notification_id: "dead"}
    [row] = await outbox_rows(store, [notification_id])
    assert row.attempts == 3
    assert "421" in row.last_error
    assert smtp.commands == ["RCPT 421 4.3.0 try later"] * 3
    assert smtp.messages == []
    assert await events_of(store, notification_id) == [
        ("queued", "email"), ("failed", "email"), ("failed", "email"), ("failed", "email"),
        ("dead", "email")]


async def test_a_dead_letter_replayed_through_the_admin_api_is_delivered(
    store: SqlStore, outbox: SqlOutbox, smtp: SmtpServer
) -> None:
    [notification_id] = await queue(store, await addressed(store))
    smtp.fail("RCPT", "550 5.1.1 no such user", times=None)
    worker = make_worker(outbox, smtp)
    assert await worker.run_once() == 1
    dead_id = await delivery_id(store, notification_id)

    async with running_api(store, smtp_url=smtp.url, worker_in_process=False) as api:
        listed = await api.client.get("/v1/admin/dead-letters", headers=api.publisher)
        assert listed.status_code == 200, listed.text
        [letter] = [d for d in listed.json()["dead_letters"] if d["id"] == str(dead_id)]
        assert letter["notification_id"] == str(notification_id)
        assert (letter["channel"], letter["attempts"]) == ("email", 1)
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

    assert await worker.run_once() == 1
    [row] = await outbox_rows(store, [notification_id])
    assert (row.status, row.attempts) == ("sent", 1)
    [received] = smtp.messages
    assert received.message_id == f"<{dead_id}@tocsin>"
    assert await events_of(store, notification_id) == [
        ("queued", "email"), ("failed", "email"), ("dead", "email"), ("sent", "email")]


async def test_the_admin_routes_want_a_publisher_key_and_a_dead_letter_id(
    store: SqlStore, outbox: SqlOutbox
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


async def test_a_batch_that_outlasts_its_lease_keeps_it_while_it_works(
    store: SqlStore, outbox: SqlOutbox, smtp: SmtpServer
) -> None:
    """A slow relay makes a batch take longer than the lease: the worker renews its leases, so
    a second worker never takes (and sends again) what the first is still working through."""
    notification_ids = await queue(store, await addressed(store, 8))
    smtp.slow_down(0.3)  # one at a time, 8 x 0.3 s: twice the lease
    channel = EmailChannel(SmtpSettings(smtp.url, SENDER, timeout=10), concurrency=1)
    worker = Worker(outbox, {"email": channel}, SystemClock(),
                    retry=RetryPolicy(base_seconds=0.01, cap_seconds=0.05),
                    lease_seconds=1.2, batch=10)
    rival = SqlOutbox(store)
    working = asyncio.create_task(worker.run_once())
    for _ in range(ROUNDS):  # the worker claims the batch first
        rows = await outbox_rows(store, notification_ids)
        if all(row.lease_owner == worker.owner or row.status != "pending" for row in rows):
            break
        await asyncio.sleep(0.01)
    taken = []
    while not working.done():  # ends with the worker's batch
        taken += await rival.claim("rival", datetime.now(UTC), 60, 10)
        await asyncio.sleep(0.05)
    assert await working == 8
    assert taken == []
    rows = await outbox_rows(store, notification_ids)
    assert [(row.status, row.attempts) for row in rows] == [("sent", 1)] * 8
    assert len(smtp.messages) == 8
    assert len({m.message_id for m in smtp.messages}) == 8


async def test_a_user_without_an_email_address_is_skipped_not_retried(
    store: SqlStore, outbox: SqlOutbox, smtp: SmtpServer
) -> None:
    [notification_id] = await queue(store, await addressed(store, email=False))
    worker = make_worker(outbox, smtp)
    assert await worker.run_once() == 1
    [row] = await outbox_rows(store, [notification_id])
    assert (row.status, row.attempts) == ("skipped", 1)
    assert "no email" in row.last_error
    for _ in range(3):
        assert await worker.run_once() == 0
    assert smtp.commands == []
    assert await events_of(store, notification_id) == [("queued", "email"), ("skipped", "email")]
    assert await outbox.dead_letters() == []


async def test_a_channel_this_worker_lacks_makes_a_dead_letter(
    store: SqlStore, outbox: SqlOutbox, smtp: SmtpServer
) -> None:
    [notification_id] = await queue(store, await addressed(store))
    worker = make_worker(outbox, smtp, channels={})
    assert await worker.run_once() == 1
    [row] = await outbox_rows(store, [notification_id])
    assert row.status == "dead"
    assert "not configured" in row.last_error
    assert smtp.commands == []


async def test_one_bad_delivery_does_not_hold_back_the_others(
    store: SqlStore, outbox: SqlOutbox, smtp: SmtpServer
) -> None:
    with_email = await addressed(store, 3)
    without = await addressed(store, email=False)
    notification_ids = await queue(store, [*with_email, *without])
    smtp.fail("RCPT", "450 4.2.0 mailbox busy", times=1)  # whichever comes first: retried
    worker = make_worker(outbox, smtp)
    statuses = await work_until_settled(worker, store, notification_ids)
    assert sorted(statuses.values()) == ["sent", "sent", "sent", "skipped"]
    assert statuses[notification_ids[3]] == "skipped"
    assert sorted(m.rcpt_tos[0] for m in smtp.messages) == sorted(f"{u}@example.com"
                                                                  for u in with_email)


async def test_the_in_process_worker_emails_what_the_api_publishes(
    store: SqlStore, outbox: SqlOutbox, smtp: SmtpServer
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
        notification_id = uuid.UUID(published["notifications"][0]["id"])
        [received] = await smtp.until_messages(1, within=15)
        assert received.rcpt_tos == ("grace@example.com",)
        assert received.email["Subject"] == "Your build passed"
        sent_id = await delivery_id(store, notification_id)
        assert received.email["Message-ID"] == f"<{sent_id}@tocsin>"
        for _ in range(ROUNDS):  # the worker records the result once the server said 250
            [row] = await outbox_rows(store, [notification_id])
            if row.status != "pending":
                break
            await asyncio.sleep(0.02)
        assert row.status == "sent"
        # The live side got it too: it is in the user's list.
        listed = await api.me(user, "notifications")
        assert [n["id"] for n in listed["notifications"]] == [str(notification_id)]
    assert len(smtp.messages) == 1


async def test_without_smtp_the_email_channel_is_refused_and_nothing_is_queued(
    store: SqlStore, outbox: SqlOutbox
) -> None:
    user = new_user("wk")
    async with running_api(store) as api:
        refused = await api.publish(user, channels=["web", "email"], expect=422)
        assert refused["error"]["code"] == "validation_error"
        assert refused["error"]["details"]["available"] == ["web"]
        await api.publish(user, channels=["web"])
    assert await outbox_rows(store) == []
