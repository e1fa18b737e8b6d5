"""Deliveries on the SQL jobs queue, SQLite and PostgreSQL alike: what the port does not say and
only the database can show. The publish queues them in its own transaction, each with its
"queued" analytics event; every outcome writes its event in the transaction that records it;
the rows say what the port's answers imply.

The port's own guarantees (claims, leases, outcomes, dead letters) are test_jobs.py's.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.support.client import new_user
from tests.support.db import row_counts
from tests.support.jobs import (
    clear_jobs,
    events_of,
    ids_of,
    job_row,
    job_rows,
    publish_email,
    with_profiles,
)
from tests.support.services import free_port, fresh_postgres_database
from tocsin.domain.drafts import LIVE_CHANNEL, ChannelDecision, NotificationDraft, PublishBatch
from tocsin.domain.errors import StoreUnavailable
from tocsin.domain.models import UserProfile
from tocsin.jobs.base import DELIVERY, Job, JobDraft
from tocsin.jobs.sql import SqlJobs
from tocsin.store.schema import analytics_events
from tocsin.store.sql import SqlStore

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LEASE = 60.0
QUEUED = ("queued", "email")


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def postgres_database(postgres_url: str) -> Iterator[str]:
    """Claims take any due job in the database: this module gets a database of its own."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
async def jobs(store: SqlStore) -> AsyncIterator[SqlJobs]:
    await clear_jobs(store)
    yield SqlJobs(store.db)


async def queued(store: SqlStore, count: int = 1) -> list[uuid.UUID]:
    """Publish to `count` new users with an email address; returns the notification ids."""
    users = [new_user("dj") for _ in range(count)]
    await with_profiles(store, [UserProfile(id=u, email=f"{u}@example.com") for u in users], NOW)
    return ids_of(await publish_email(store, users, NOW))


async def claim_one(jobs: SqlJobs, owner: str = "worker-a", now: datetime = NOW) -> Job:
    claimed = await jobs.claim([DELIVERY], owner, now, LEASE, 10)
    assert len(claimed) == 1, claimed
    return claimed[0]


async def analytics_count(store: SqlStore) -> int:
    return (await row_counts(store))[analytics_events.name]


def batch(*drafts: NotificationDraft, key: str | None = None) -> PublishBatch:
    return PublishBatch(publisher="pub-jobs", drafts=list(drafts), idempotency_key=key,
                        fingerprint="fp" if key else None)


def live_draft(user: str, channels: dict[str, ChannelDecision] | None = None
               ) -> NotificationDraft:
    return NotificationDraft(user_id=user, type="comment", data={},
                             channels={LIVE_CHANNEL: ChannelDecision.live()}
                             if channels is None else channels)


# -- queued by the publish ---------------------------------------------------------------------


async def test_a_publish_queues_one_pending_delivery_per_recipient_with_a_queued_event(
    store: SqlStore, jobs: SqlJobs
) -> None:
    users = [new_user("dj") for _ in range(3)]
    outcome = await publish_email(store, users, NOW, key=str(uuid.uuid4()))
    assert outcome.queued == 3
    assert [item["channels"] for item in outcome.notifications] == \
        [{"email": "queued", "web": "delivered"}] * 3
    notification_ids = ids_of(outcome)
    rows = await job_rows(store, notification_ids)
    assert sorted(row.notification_id for row in rows) == sorted(notification_ids)
    by_notification = {item.id: item for item in outcome.stored}
    for row in rows:
        assert (row.kind, row.channel, row.status, row.attempts) == \
            (DELIVERY, "email", "pending", 0)
        assert row.user_id == by_notification[row.notification_id].user_id
        assert (row.key, row.payload, row.last_error) == (None, None, None)
        assert row.available_at == NOW
        assert row.lease_until is None and row.lease_owner is None
        assert (row.created_at, row.updated_at) == (NOW, NOW)
        assert await events_of(store, row.notification_id) == [QUEUED]
    async with store.engine.connect() as conn:
        written = (await conn.execute(
            sa.select(analytics_events.c.user_id, analytics_events.c.type,
                      analytics_events.c.created_at)
            .where(analytics_events.c.notification_id.in_(notification_ids)))).all()
    assert sorted(written) == sorted((u, "comment", NOW) for u in users)


async def test_each_outbound_decision_queues_a_delivery_due_when_it_says(
    store: SqlStore, jobs: SqlJobs
) -> None:
    user = new_user("dj")
    channels = {LIVE_CHANNEL: ChannelDecision.live(), "email": ChannelDecision.queued(),
                "push": ChannelDecision.held("quiet_hours", at(3600)),
                "sms": ChannelDecision.dropped("suppressed:preference")}
    outcome = await store.publish(batch(live_draft(user, channels)), NOW, 60)
    assert outcome.queued == 2
    assert outcome.notifications[0]["channels"] == {
        "email": "queued", "push": "held:quiet_hours", "sms": "suppressed:preference",
        "web": "delivered"}
    [notification_id] = ids_of(outcome)
    rows = await job_rows(store, [notification_id])
    assert sorted((row.channel, row.available_at) for row in rows) == \
        [("email", NOW), ("push", at(3600))]
    assert await events_of(store, notification_id) == [("queued", "email"), ("queued", "push")]

    [now] = await jobs.claim([DELIVERY], "worker-a", at(3600) - timedelta(microseconds=1),
                             LEASE, 10)
    assert (now.channel, now.notification_id, now.user_id) == ("email", notification_id, user)
    [held] = await jobs.claim([DELIVERY], "worker-a", at(3600), LEASE, 10)
    assert held.channel == "push"


async def test_an_idempotent_replay_queues_nothing_more(store: SqlStore, jobs: SqlJobs) -> None:
    users, key = [new_user("dj") for _ in range(2)], str(uuid.uuid4())
    first = await publish_email(store, users, NOW, key=key)
    before = await row_counts(store)
    again = await publish_email(store, users, at(1), key=key)
    assert again.replayed
    assert again.queued == 0
    assert again.notifications == first.notifications
    assert await row_counts(store) == before
    assert len(await job_rows(store, ids_of(first))) == 2
    for notification_id in ids_of(first):
        assert await events_of(store, notification_id) == [QUEUED]


async def test_a_publish_without_outbound_channels_queues_nothing(
    store: SqlStore, jobs: SqlJobs
) -> None:
    live_only, undecided = new_user("dj"), new_user("dj")
    outcome = await store.publish(batch(live_draft(live_only), live_draft(undecided, {})),
                                  NOW, 60)
    assert outcome.queued == 0
    assert await job_rows(store) == []
    for notification_id in ids_of(outcome):
        assert await events_of(store, notification_id) == []


@pytest.mark.postgres
async def test_a_publish_whose_queueing_fails_stores_nothing(postgres_database: str) -> None:
    """Same transaction: the jobs insert fails (a channel name too long for its column, which
    only PostgreSQL enforces), so the notifications roll back with it."""
    store = SqlStore(postgres_database)
    try:
        await store.migrate()
        before = await row_counts(store)
        user = new_user("dj")
        channels = {LIVE_CHANNEL: ChannelDecision.live(),
                    "a-channel-name-too-long-for-the-column": ChannelDecision.queued()}
        with pytest.raises(Exception, match="too long"):
            await store.publish(batch(live_draft(user, channels)), NOW, 60)
        assert await row_counts(store) == before
        assert (await store.unread_count(user)).count == 0
    finally:
        await store.close()


async def test_a_claim_leases_the_delivery_of_each_notification(
    store: SqlStore, jobs: SqlJobs
) -> None:
    notification_ids = await queued(store, 3)
    claimed = await jobs.claim([DELIVERY], "worker-a", NOW, LEASE, 2)
    assert len(claimed) == 2
    for job in claimed:
        row = await job_row(store, job.id)
        assert (job.kind, job.channel, job.attempts, job.lease_owner) == \
            (DELIVERY, "email", 1, "worker-a")
        assert (job.notification_id, job.user_id) == (row.notification_id, row.user_id)
        assert job.due_at == row.available_at == NOW
        assert (row.status, row.attempts, row.lease_owner) == ("pending", 1, "worker-a")
        assert (row.lease_until, row.updated_at) == (at(LEASE), NOW)
    [rest] = await jobs.claim([DELIVERY], "worker-a", NOW, LEASE, 10)
    handed_out = [job.notification_id for job in [*claimed, rest]]
    assert len(handed_out) == 3 and set(handed_out) == set(notification_ids)
    assert await jobs.claim([DELIVERY], "worker-b", NOW, LEASE, 10) == []
    for notification_id in notification_ids:  # a claim is no event
        assert await events_of(store, notification_id) == [QUEUED]


# -- each outcome with its event ---------------------------------------------------------------


async def test_complete_records_done_and_a_sent_event(store: SqlStore, jobs: SqlJobs) -> None:
    [notification_id] = await queued(store)
    job = await claim_one(jobs)
    assert await jobs.complete(job, at(1)) is True
    row = await job_row(store, job.id)
    assert (row.status, row.attempts, row.last_error) == ("done", 1, None)
    assert row.lease_until is None and row.lease_owner is None
    assert row.updated_at == at(1)
    assert await events_of(store, notification_id) == [QUEUED, ("sent", "email")]
    # A finished delivery takes no second outcome, and writes no second event.
    assert await jobs.complete(job, at(2)) is False
    assert await jobs.retry(job, at(2), "x", due_at=at(3)) is False
    assert await jobs.bury(job, at(2), "x") is False
    assert await events_of(store, notification_id) == [QUEUED, ("sent", "email")]


async def test_skipped_records_the_reason_and_a_skipped_event(
    store: SqlStore, jobs: SqlJobs
) -> None:
    [notification_id] = await queued(store)
    job = await claim_one(jobs)
    assert await jobs.complete(job, at(1), skipped="the user has no email address") is True
    row = await job_row(store, job.id)
    assert (row.status, row.last_error) == ("skipped", "the user has no email address")
    assert row.lease_until is None and row.lease_owner is None
    assert await events_of(store, notification_id) == [QUEUED, ("skipped", "email")]


async def test_a_retry_records_a_failed_event_and_the_next_attempt_its_own(
    store: SqlStore, jobs: SqlJobs
) -> None:
    [notification_id] = await queued(store)
    job = await claim_one(jobs)
    assert await jobs.retry(job, at(1), "SMTP 450 mailbox busy", due_at=at(30)) is True
    row = await job_row(store, job.id)
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "SMTP 450 mailbox busy")
    assert row.available_at == at(30)
    assert row.lease_until is None and row.lease_owner is None
    assert await events_of(store, notification_id) == [QUEUED, ("failed", "email")]

    again = await claim_one(jobs, "worker-b", at(30))
    assert await jobs.complete(again, at(31)) is True
    assert await events_of(store, notification_id) == [
        QUEUED, ("failed", "email"), ("sent", "email")]


async def test_a_dead_letter_is_a_failed_attempt_too(store: SqlStore, jobs: SqlJobs) -> None:
    [notification_id] = await queued(store)
    job = await claim_one(jobs)
    assert await jobs.bury(job, at(1), "SMTP 550 no such user") is True
    row = await job_row(store, job.id)
    assert (row.status, row.last_error) == ("dead", "SMTP 550 no such user")
    assert row.lease_until is None and row.lease_owner is None
    assert await events_of(store, notification_id) == [
        QUEUED, ("failed", "email"), ("dead", "email")]
    [letter] = await jobs.dead_letters()
    assert (letter.kind, letter.notification_id, letter.channel) == \
        (DELIVERY, notification_id, "email")
    assert letter.user_id == row.user_id
    assert letter.to_json()["notification_id"] == str(notification_id)


async def test_a_replayed_dead_letter_then_sent_writes_every_event_in_order(
    store: SqlStore, jobs: SqlJobs
) -> None:
    [notification_id] = await queued(store)
    job = await claim_one(jobs)
    await jobs.bury(job, at(1), "SMTP 550 no such user")
    replayed = await jobs.replay(job.id, at(100))
    assert (replayed.id, replayed.attempts, replayed.notification_id) == \
        (job.id, 0, notification_id)
    row = await job_row(store, job.id)
    assert (row.status, row.attempts, row.available_at, row.updated_at) == \
        ("pending", 0, at(100), at(100))
    assert row.lease_until is None and row.lease_owner is None
    assert await events_of(store, notification_id) == [  # a replay is no event of its own
        QUEUED, ("failed", "email"), ("dead", "email")]

    again = await claim_one(jobs, "worker-b", at(100))
    assert (again.id, again.attempts) == (job.id, 1)
    assert await jobs.complete(again, at(101)) is True
    assert await events_of(store, notification_id) == [
        QUEUED, ("failed", "email"), ("dead", "email"), ("sent", "email")]


async def test_a_late_owner_changes_no_row_and_writes_no_event(
    store: SqlStore, jobs: SqlJobs
) -> None:
    [notification_id] = await queued(store)
    mine = await claim_one(jobs, "worker-a")
    theirs = await claim_one(jobs, "worker-b", at(LEASE + 1))
    assert await jobs.complete(mine, at(LEASE + 2)) is False
    assert await jobs.complete(mine, at(LEASE + 2), skipped="late") is False
    assert await jobs.retry(mine, at(LEASE + 2), "late", due_at=at(LEASE + 2)) is False
    assert await jobs.bury(mine, at(LEASE + 2), "late") is False
    row = await job_row(store, mine.id)
    assert (row.status, row.attempts, row.lease_owner) == ("pending", 2, "worker-b")
    assert (row.last_error, row.lease_until) == (None, at(2 * LEASE + 1))
    assert row.updated_at == at(LEASE + 1)
    assert await events_of(store, notification_id) == [QUEUED]

    assert await jobs.complete(theirs, at(LEASE + 3)) is True
    assert (await job_row(store, mine.id)).status == "done"
    assert await events_of(store, notification_id) == [QUEUED, ("sent", "email")]


async def test_an_owner_whose_lease_lapsed_unclaimed_still_writes_its_event(
    store: SqlStore, jobs: SqlJobs
) -> None:
    [notification_id] = await queued(store)
    mine = await claim_one(jobs)
    assert await jobs.complete(mine, at(LEASE * 3)) is True
    assert (await job_row(store, mine.id)).status == "done"
    assert await events_of(store, notification_id) == [QUEUED, ("sent", "email")]


async def test_renew_moves_only_the_lease(store: SqlStore, jobs: SqlJobs) -> None:
    await queued(store)
    job = await claim_one(jobs)
    assert await jobs.renew("worker-a", {job.id}, at(30), LEASE) == 1
    row = await job_row(store, job.id)
    assert (row.lease_until, row.lease_owner, row.attempts) == (at(30 + LEASE), "worker-a", 1)


async def test_other_kinds_write_no_analytics(store: SqlStore, jobs: SqlJobs) -> None:
    """Analytics count deliveries; a digest or a sweep is no delivery."""
    before = await analytics_count(store)
    digest: dict[str, Any] = {"users": ["ada"], "window": 3600}
    assert await jobs.enqueue([JobDraft(kind="digest", due_at=NOW, payload=digest),
                               JobDraft(kind="digest", due_at=NOW, user_id="ada",
                                        notification_type="comment")], NOW) == 2
    claimed = await jobs.claim(["digest"], "worker-a", NOW, LEASE, 10)
    first, second = sorted(claimed, key=lambda job: not job.payload)  # the one with a payload
    assert (first.payload, second.payload) == (digest, {})
    assert (await job_row(store, first.id)).payload == digest
    await jobs.complete(first, at(1))
    await jobs.bury(second, at(1), "gone")
    assert await analytics_count(store) == before


# -- the database out of reach -----------------------------------------------------------------


async def test_an_unreachable_database_is_store_unavailable() -> None:
    store = SqlStore(f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere",
                     connect_timeout=2)
    jobs = SqlJobs(store.db)
    try:
        with pytest.raises(StoreUnavailable):
            await jobs.enqueue([JobDraft(kind="digest", due_at=NOW)], NOW)
        with pytest.raises(StoreUnavailable):
            await jobs.claim([DELIVERY], "worker-a", NOW, LEASE, 10)
        with pytest.raises(StoreUnavailable):
            await jobs.counts()
    finally:
        await store.close()
