"""The outbox (SqlOutbox) on SQLite and PostgreSQL alike: queueing in the publish transaction,
leased claims, outcomes with their analytics events, dead letters and replay."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.client import new_user
from tests.support.db import row_counts
from tests.support.outbox import (
    clear_outbox,
    events_of,
    ids_of,
    outbox_row,
    outbox_rows,
    publish_email,
    with_profiles,
)
from tests.support.services import fresh_postgres_database
from tocsin.domain.errors import NotFound
from tocsin.domain.models import Delivery, NotificationDraft, PublishBatch, UserProfile
from tocsin.store.outbox import SqlOutbox
from tocsin.store.sql import SqlStore

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LEASE = 60.0


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def postgres_database(postgres_url: str) -> Iterator[str]:
    """Claims take any due delivery in the database: this module gets a database of its own."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
async def box(store: SqlStore) -> AsyncIterator[SqlOutbox]:
    await clear_outbox(store)
    yield SqlOutbox(store)


async def queued(store: SqlStore, count: int = 1, **fields: Any) -> list[uuid.UUID]:
    """Publish to `count` new users with profiles; returns the notification ids."""
    users = [new_user("ob") for _ in range(count)]
    await with_profiles(store, [UserProfile(id=u, email=f"{u}@example.com") for u in users], NOW)
    return ids_of(await publish_email(store, users, NOW, **fields))


async def claim_one(box: SqlOutbox, owner: str = "worker-a", now: datetime = NOW,
                    lease: float = LEASE) -> Delivery:
    claimed = await box.claim(owner, now, lease, 10)
    assert len(claimed) == 1, claimed
    return claimed[0]


# -- queueing ----------------------------------------------------------------------------------


async def test_publish_queues_one_pending_email_per_notification_with_a_queued_event(
    store: SqlStore, box: SqlOutbox
) -> None:
    users = [new_user("ob") for _ in range(3)]
    outcome = await publish_email(store, users, NOW, key=str(uuid.uuid4()))
    notification_ids = ids_of(outcome)
    rows = await outbox_rows(store, notification_ids)
    assert sorted(row.notification_id for row in rows) == sorted(notification_ids)
    by_notification = {item.id: item for item in outcome.stored}
    for row in rows:
        assert row.channel == "email"
        assert row.status == "pending"
        assert row.attempts == 0
        assert row.user_id == by_notification[row.notification_id].user_id
        assert row.available_at == NOW
        assert row.lease_until is None and row.lease_owner is None
        assert await events_of(store, row.notification_id) == [("queued", "email")]


async def test_an_idempotent_replay_queues_nothing_more(store: SqlStore, box: SqlOutbox) -> None:
    users, key = [new_user("ob") for _ in range(2)], str(uuid.uuid4())
    first = await publish_email(store, users, NOW, key=key)
    before = await row_counts(store)
    again = await publish_email(store, users, at(1), key=key)
    assert again.replayed
    assert again.notifications == first.notifications
    assert await row_counts(store) == before
    for notification_id in ids_of(first):
        assert await events_of(store, notification_id) == [("queued", "email")]


async def test_a_publish_without_outbound_channels_queues_nothing(
    store: SqlStore, box: SqlOutbox
) -> None:
    user = new_user("ob")
    outcome = await store.publish(
        PublishBatch(publisher="p", drafts=[NotificationDraft(user_id=user, type="t", data={})]),
        NOW, 60)
    assert await outbox_rows(store, ids_of(outcome)) == []
    assert await events_of(store, ids_of(outcome)[0]) == []


@pytest.mark.postgres
async def test_a_publish_whose_queueing_fails_stores_nothing(postgres_database: str) -> None:
    """Same transaction: the outbox insert fails (a channel name too long for its column, which
    only PostgreSQL enforces), so the notifications roll back with it."""
    store = SqlStore(postgres_database)
    try:
        await store.migrate()
        before = await row_counts(store)
        user = new_user("ob")
        batch = PublishBatch(publisher="p",
                             drafts=[NotificationDraft(user_id=user, type="t", data={})],
                             outbound=("a-channel-name-too-long-for-the-column",))
        with pytest.raises(Exception, match="too long"):
            await store.publish(batch, NOW, 60)
        assert await row_counts(store) == before
        assert (await store.unread_count(user)).count == 0
    finally:
        await store.close()


# -- claims ------------------------------------------------------------------------------------


async def test_claim_leases_at_most_limit_with_the_notification_and_the_profile(
    store: SqlStore, box: SqlOutbox
) -> None:
    user = new_user("ob")
    profile = UserProfile(id=user, email="ada@example.com", name="Ada Lovelace", locale="en-GB",
                          timezone="Europe/London")
    await store.put_user(profile, NOW)
    others = [new_user("ob") for _ in range(2)]
    first = await publish_email(store, [user], NOW, title="Build failed", message="main is red",
                                action_url="https://ci.example.com/7", priority="high")
    await publish_email(store, others, NOW)

    claimed = await box.claim("worker-a", NOW, LEASE, 2)
    assert len(claimed) == 2
    assert len({d.id for d in claimed}) == 2
    for delivery in claimed:
        assert delivery.attempts == 1
        assert delivery.channel == "email"
        assert delivery.lease_owner == "worker-a"
        assert delivery.message_id == f"<{delivery.id}@tocsin>"
        row = await outbox_row(store, delivery.id)
        assert (row.status, row.attempts, row.lease_owner) == ("pending", 1, "worker-a")
        assert row.lease_until == at(LEASE)
        assert row.notification_id == delivery.notification.id

    rest = await box.claim("worker-a", NOW, LEASE, 10)
    assert len(rest) == 1
    assert {d.id for d in rest}.isdisjoint(d.id for d in claimed)
    everything = [*claimed, *rest]
    mine = [d for d in everything if d.notification.id == first.stored[0].id]
    assert len(mine) == 1
    delivery = mine[0]
    assert delivery.user == profile
    stored = first.stored[0]
    assert delivery.notification.id == stored.id
    assert delivery.notification.user_id == user
    assert delivery.notification.seq == stored.seq
    assert (delivery.notification.title, delivery.notification.message) == \
        ("Build failed", "main is red")
    assert delivery.notification.action_url == "https://ci.example.com/7"
    assert delivery.notification.priority == "high"
    assert delivery.notification.data == {"post": 7}
    assert sorted(d.user.id for d in everything if d is not delivery) == sorted(others)
    assert all(d.user == UserProfile(id=d.user.id) for d in everything if d is not delivery)
    assert await box.claim("worker-b", NOW, LEASE, 10) == []


async def test_a_user_without_a_profile_is_claimed_with_an_empty_one(
    store: SqlStore, box: SqlOutbox
) -> None:
    user = new_user("ob")
    await publish_email(store, [user], NOW)
    delivery = await claim_one(box)
    assert delivery.user == UserProfile(id=user)


async def test_a_leased_delivery_is_not_claimed_again_until_the_lease_lapses(
    store: SqlStore, box: SqlOutbox
) -> None:
    [notification_id] = await queued(store)
    mine = await claim_one(box, "worker-a")
    assert await box.claim("worker-b", at(LEASE - 1), LEASE, 10) == []
    assert await box.claim("worker-a", at(LEASE), LEASE, 10) == []  # lapses strictly after

    theirs = await claim_one(box, "worker-b", at(LEASE + 1))
    assert theirs.id == mine.id
    assert (theirs.attempts, theirs.lease_owner) == (2, "worker-b")

    # The first owner finishes late: its result is refused and changes nothing.
    assert await box.sent(mine, at(LEASE + 2)) is False
    assert await box.failed(mine, at(LEASE + 2), "late", retry_at=None) is False
    assert await box.skipped(mine, at(LEASE + 2), "late") is False
    row = await outbox_row(store, mine.id)
    assert (row.status, row.attempts, row.lease_owner) == ("pending", 2, "worker-b")
    assert row.last_error is None
    assert await events_of(store, notification_id) == [("queued", "email")]

    assert await box.sent(theirs, at(LEASE + 3)) is True
    assert (await outbox_row(store, mine.id)).status == "sent"
    assert await events_of(store, notification_id) == [("queued", "email"), ("sent", "email")]


async def test_an_owner_whose_lease_lapsed_unclaimed_still_records_its_result(
    store: SqlStore, box: SqlOutbox
) -> None:
    [notification_id] = await queued(store)
    mine = await claim_one(box)
    assert await box.sent(mine, at(LEASE * 3)) is True
    assert (await outbox_row(store, mine.id)).status == "sent"
    assert await events_of(store, notification_id) == [("queued", "email"), ("sent", "email")]
    assert await box.claim("worker-b", at(LEASE * 4), LEASE, 10) == []


async def test_renew_extends_only_the_leases_the_owner_still_holds(
    store: SqlStore, box: SqlOutbox
) -> None:
    ids = await queued(store, 4)
    claimed = {d.notification.id: d for d in await box.claim("worker-a", NOW, LEASE, 10)}
    held, lapsing, finished, retried = (claimed[i] for i in ids)
    await box.sent(finished, at(1))
    await box.failed(retried, at(1), "busy", retry_at=at(3600))

    assert await box.renew("worker-a", {held.id}, at(30), LEASE) == 1
    assert (await outbox_row(store, held.id)).lease_until == at(30 + LEASE)
    [taken] = await box.claim("worker-b", at(LEASE + 1), LEASE, 10)  # only the unrenewed one
    assert taken.id == lapsing.id

    everything = {held.id, lapsing.id, finished.id, retried.id}
    assert await box.renew("worker-a", everything, at(LEASE + 2), LEASE) == 1
    assert (await outbox_row(store, held.id)).lease_until == at(2 * LEASE + 2)
    row = await outbox_row(store, lapsing.id)
    assert (row.lease_owner, row.lease_until) == ("worker-b", at(2 * LEASE + 1))
    row = await outbox_row(store, retried.id)
    assert (row.status, row.lease_owner, row.lease_until) == ("pending", None, None)
    assert (await outbox_row(store, finished.id)).status == "sent"
    assert await box.claim("worker-c", at(2 * LEASE), LEASE, 10) == []  # renewed: still held
    assert await box.renew("worker-a", set(), at(LEASE + 3), LEASE) == 0
    assert await box.sent(held, at(2 * LEASE)) is True


async def test_concurrent_claims_never_hand_out_one_delivery_twice(
    store: SqlStore, box: SqlOutbox
) -> None:
    users = [new_user("ob") for _ in range(100)]
    await publish_email(store, users, NOW)
    owners = [f"worker-{n}" for n in range(5)]
    batches = await asyncio.gather(*(box.claim(owner, NOW, LEASE, 30) for owner in owners))
    handed_out = [d.id for batch in batches for d in batch]
    assert len(handed_out) == len(set(handed_out)), "a delivery was claimed twice"
    assert len(handed_out) == 100  # 5 x 30 is room for all: none is left behind
    assert all(len(batch) <= 30 for batch in batches)
    rows = {row.id: row for row in await outbox_rows(store)}
    for owner, batch in zip(owners, batches, strict=True):
        for delivery in batch:
            assert rows[delivery.id].lease_owner == owner
            assert rows[delivery.id].attempts == 1
    assert await box.claim("worker-late", NOW, LEASE, 100) == []


# -- outcomes ----------------------------------------------------------------------------------


async def test_sent_records_the_delivery_and_a_sent_event(store: SqlStore, box: SqlOutbox) -> None:
    [notification_id] = await queued(store)
    delivery = await claim_one(box)
    assert await box.sent(delivery, at(1)) is True
    row = await outbox_row(store, delivery.id)
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, None)
    assert row.lease_until is None and row.lease_owner is None
    assert row.updated_at == at(1)
    assert await events_of(store, notification_id) == [("queued", "email"), ("sent", "email")]
    # A finished delivery takes no second result, and is never claimed again.
    assert await box.sent(delivery, at(2)) is False
    assert await box.failed(delivery, at(2), "x", retry_at=at(3)) is False
    assert await events_of(store, notification_id) == [("queued", "email"), ("sent", "email")]
    assert await box.claim("worker-a", at(3600), LEASE, 10) == []


async def test_skipped_records_the_reason_and_a_skipped_event(
    store: SqlStore, box: SqlOutbox
) -> None:
    [notification_id] = await queued(store)
    delivery = await claim_one(box)
    assert await box.skipped(delivery, at(1), "the user has no email address") is True
    row = await outbox_row(store, delivery.id)
    assert (row.status, row.last_error) == ("skipped", "the user has no email address")
    assert row.lease_owner is None
    assert await events_of(store, notification_id) == [("queued", "email"),
                                                       ("skipped", "email")]
    assert await box.claim("worker-a", at(3600), LEASE, 10) == []
    assert await box.dead_letters() == []


async def test_failed_with_a_retry_time_waits_until_then(store: SqlStore, box: SqlOutbox) -> None:
    [notification_id] = await queued(store)
    delivery = await claim_one(box)
    assert await box.failed(delivery, at(1), "SMTP 450 mailbox busy", retry_at=at(30)) is True
    row = await outbox_row(store, delivery.id)
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "SMTP 450 mailbox busy")
    assert row.available_at == at(30)
    assert row.lease_until is None and row.lease_owner is None
    assert await events_of(store, notification_id) == [("queued", "email"), ("failed", "email")]

    assert await box.claim("worker-b", at(29), LEASE, 10) == []
    again = await claim_one(box, "worker-b", at(30))
    assert (again.id, again.attempts) == (delivery.id, 2)
    assert await box.sent(again, at(31)) is True
    assert await events_of(store, notification_id) == [
        ("queued", "email"), ("failed", "email"), ("sent", "email")]


async def test_failed_without_a_retry_time_is_a_dead_letter(
    store: SqlStore, box: SqlOutbox
) -> None:
    [notification_id] = await queued(store)
    delivery = await claim_one(box)
    assert await box.failed(delivery, at(1), "SMTP 550 no such user", retry_at=None) is True
    row = await outbox_row(store, delivery.id)
    assert (row.status, row.last_error) == ("dead", "SMTP 550 no such user")
    assert row.lease_owner is None
    # A dead letter is a failed attempt too.
    assert await events_of(store, notification_id) == [
        ("queued", "email"), ("failed", "email"), ("dead", "email")]
    assert await box.claim("worker-a", at(3600), LEASE, 10) == []


# -- dead letters ------------------------------------------------------------------------------


async def test_dead_letters_lists_only_dead_deliveries_newest_first(
    store: SqlStore, box: SqlOutbox
) -> None:
    ids = await queued(store, 5)
    claimed = {d.notification.id: d for d in await box.claim("worker-a", NOW, LEASE, 10)}
    first, second, sent, skipped, pending = (claimed[i] for i in ids)
    await box.failed(first, at(1), "first error", retry_at=None)
    await box.failed(second, at(2), "second error", retry_at=None)
    await box.sent(sent, at(3))
    await box.skipped(skipped, at(3), "no email")
    await box.failed(pending, at(3), "retry me", retry_at=at(60))

    dead = await box.dead_letters()
    assert [d.id for d in dead] == [second.id, first.id]
    letter = dead[0]
    assert letter.notification_id == second.notification.id
    assert letter.user_id == second.notification.user_id
    assert (letter.channel, letter.attempts, letter.last_error) == ("email", 1, "second error")
    assert letter.updated_at == at(2)
    assert letter.to_json()["id"] == str(second.id)
    assert [d.id for d in await box.dead_letters(limit=1)] == [second.id]


async def test_replay_queues_a_dead_letter_again_with_no_attempts(
    store: SqlStore, box: SqlOutbox
) -> None:
    [notification_id] = await queued(store)
    delivery = await claim_one(box)
    await box.failed(delivery, at(1), "SMTP 550 no such user", retry_at=None)

    replayed = await box.replay(delivery.id, at(100))
    assert replayed.id == delivery.id
    assert replayed.attempts == 0
    row = await outbox_row(store, delivery.id)
    assert (row.status, row.attempts, row.available_at) == ("pending", 0, at(100))
    assert row.lease_until is None and row.lease_owner is None
    assert await box.dead_letters() == []

    assert await box.claim("worker-a", at(99), LEASE, 10) == []
    again = await claim_one(box, "worker-b", at(100))
    assert (again.id, again.attempts) == (delivery.id, 1)
    assert await box.sent(again, at(101)) is True
    assert await events_of(store, notification_id) == [
        ("queued", "email"), ("failed", "email"), ("dead", "email"), ("sent", "email")]


async def test_replay_of_anything_but_a_dead_letter_is_not_found(
    store: SqlStore, box: SqlOutbox
) -> None:
    ids = await queued(store, 3)
    claimed = {d.notification.id: d for d in await box.claim("worker-a", NOW, LEASE, 10)}
    leased, sent, dead = (claimed[i] for i in ids)
    await box.sent(sent, at(1))
    await box.failed(dead, at(1), "gone", retry_at=None)
    for delivery_id in (leased.id, sent.id, uuid.uuid4()):
        with pytest.raises(NotFound):
            await box.replay(delivery_id, at(2))
    row = await outbox_row(store, leased.id)
    assert (row.status, row.attempts, row.lease_owner) == ("pending", 1, "worker-a")
    assert (await outbox_row(store, sent.id)).status == "sent"

    await box.replay(dead.id, at(2))
    with pytest.raises(NotFound):  # already replayed: no longer a dead letter
        await box.replay(dead.id, at(3))


async def test_status_counts_cover_every_state(store: SqlStore, box: SqlOutbox) -> None:
    ids = await queued(store, 4)
    claimed = {d.notification.id: d for d in await box.claim("worker-a", NOW, LEASE, 3)}
    outcomes = [claimed.get(i) for i in ids]
    done = [d for d in outcomes if d is not None]
    await box.sent(done[0], at(1))
    await box.skipped(done[1], at(1), "no email")
    await box.failed(done[2], at(1), "gone", retry_at=None)
    assert await box.status_counts() == {"sent": 1, "skipped": 1, "dead": 1, "pending": 1}
