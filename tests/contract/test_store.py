"""One body of tests for the Store port, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.pool import QueuePool

from tests.support.client import new_user
from tests.support.db import assert_counter_matches, row_counts, seqs_of
from tocsin.domain.drafts import (
    LIVE_CHANNEL,
    ChannelDecision,
    NotificationDraft,
    PublishBatch,
    PublishOutcome,
)
from tocsin.domain.errors import IdempotencyInFlight, IdempotencyMismatch, NotFound
from tocsin.domain.models import UserProfile
from tocsin.store.expiry import purge_candidates
from tocsin.store.sql import SqlStore

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
TTL = 24 * 3600


def draft(user: str, **fields: object) -> NotificationDraft:
    values: dict[str, object] = {"type": "comment", "data": {"post": 1}, "title": "t",
                                 "channels": {LIVE_CHANNEL: ChannelDecision.live()}}
    values.update(fields)
    return NotificationDraft(user_id=user, **values)  # type: ignore[arg-type]


def batch(*users: str, key: str | None = None, fp: str | None = None,
          publisher: str = "pub-1") -> PublishBatch:
    return PublishBatch(publisher=publisher, drafts=[draft(u) for u in users],
                        idempotency_key=key, fingerprint=fp or ("fp" if key else None))


async def test_first_publish_creates_the_user_with_seq_one(store: SqlStore) -> None:
    user = new_user()
    outcome = await store.publish(batch(user), NOW, TTL)
    assert [item["seq"] for item in outcome.notifications] == [1]
    assert outcome.notifications[0]["user_id"] == user
    assert not outcome.replayed
    count = await store.unread_count(user)
    assert (count.count, count.seq) == (1, 1)


async def test_seq_rises_by_one_per_notification(store: SqlStore) -> None:
    user = new_user()
    for _ in range(5):
        await store.publish(batch(user), NOW, TTL)
    assert await seqs_of(store, user) == [1, 2, 3, 4, 5]
    assert await assert_counter_matches(store, user) == 5


async def test_batch_gives_each_user_their_own_next_seq(store: SqlStore) -> None:
    a, b, c = new_user(), new_user(), new_user()
    await store.publish(batch(a), NOW, TTL)
    outcome = await store.publish(batch(c, a, b), NOW, TTL)
    by_user = {item["user_id"]: item["seq"] for item in outcome.notifications}
    assert by_user == {a: 2, b: 1, c: 1}
    # receipts come back in the order the request named the users
    assert [item["user_id"] for item in outcome.notifications] == [c, a, b]
    for user in (a, b, c):
        await assert_counter_matches(store, user)


async def test_concurrent_publishers_get_gap_free_unique_seqs(store: SqlStore) -> None:
    user = new_user()
    await asyncio.gather(*(store.publish(batch(user), NOW, TTL) for _ in range(50)))
    assert await seqs_of(store, user) == list(range(1, 51))
    assert await assert_counter_matches(store, user) == 50


async def test_overlapping_concurrent_batches_neither_deadlock_nor_gap(store: SqlStore) -> None:
    users = [new_user() for _ in range(6)]
    batches = [batch(*users), batch(*reversed(users)), batch(*users[::2]), batch(*users[1::2])]
    await asyncio.gather(*(store.publish(b, NOW, TTL) for b in batches * 5))
    for user in users:
        seqs = await seqs_of(store, user)
        assert seqs == list(range(1, len(seqs) + 1))
        assert len(seqs) == 15
        await assert_counter_matches(store, user)


async def test_idempotent_repeat_returns_first_outcome_and_writes_nothing(store: SqlStore
                                                                           ) -> None:
    user, key = new_user(), f"k-{uuid.uuid4()}"
    first = await store.publish(batch(user, key=key), NOW, TTL)
    before = await row_counts(store)
    again = await store.publish(batch(user, key=key), NOW, TTL)
    assert again.replayed
    assert again.notifications == first.notifications
    assert await row_counts(store) == before


async def test_concurrent_idempotent_requests_write_one_row(store: SqlStore) -> None:
    user, key = new_user(), f"k-{uuid.uuid4()}"
    results = await asyncio.gather(
        *(store.publish(batch(user, key=key), NOW, TTL) for _ in range(10)),
        return_exceptions=True,
    )
    # A racer either gets the first outcome or is told the first is still in flight; any
    # other exception is a failure of the test, not something to pass over.
    unexpected = [r for r in results if isinstance(r, BaseException)
                  and not isinstance(r, IdempotencyInFlight)]
    assert not unexpected, unexpected
    outcomes = [r for r in results if isinstance(r, PublishOutcome)]
    assert outcomes, results
    assert all(o.notifications == outcomes[0].notifications for o in outcomes)
    assert sum(not o.replayed for o in outcomes) == 1
    assert await seqs_of(store, user) == [1]


async def test_idempotency_key_with_another_body_is_refused(store: SqlStore) -> None:
    user, key = new_user(), f"k-{uuid.uuid4()}"
    await store.publish(batch(user, key=key, fp="one"), NOW, TTL)
    before = await row_counts(store)
    with pytest.raises(IdempotencyMismatch):
        await store.publish(batch(user, key=key, fp="two"), NOW, TTL)
    assert await row_counts(store) == before


async def test_idempotency_keys_are_scoped_per_publisher(store: SqlStore) -> None:
    user, key = new_user(), f"k-{uuid.uuid4()}"
    await store.publish(batch(user, key=key, publisher="a"), NOW, TTL)
    other = await store.publish(batch(user, key=key, publisher="b"), NOW, TTL)
    assert not other.replayed
    assert await seqs_of(store, user) == [1, 2]


async def test_expired_idempotency_key_is_a_new_request(store: SqlStore) -> None:
    user, key = new_user(), f"k-{uuid.uuid4()}"
    await store.publish(batch(user, key=key), NOW, TTL)
    later = NOW + timedelta(seconds=TTL + 1)
    again = await store.publish(batch(user, key=key, fp="different"), later, TTL)
    assert not again.replayed
    assert await seqs_of(store, user) == [1, 2]


async def test_purge_removes_only_expired_idempotency_keys(store: SqlStore) -> None:
    old, fresh = f"old-{uuid.uuid4()}", f"new-{uuid.uuid4()}"
    await store.publish(batch(new_user(), key=old), NOW - timedelta(days=2), TTL)
    await store.publish(batch(new_user(), key=fresh), NOW, TTL)
    assert await store.purge_idempotency_keys(NOW) >= 1
    replay = await store.publish(batch(new_user(), key=fresh), NOW, TTL)
    assert replay.replayed


async def test_list_is_newest_first_with_cursor_pages(store: SqlStore) -> None:
    user = new_user()
    for _ in range(7):
        await store.publish(batch(user), NOW, TTL)
    first = await store.list_notifications(user, limit=3)
    assert [n.seq for n in first.notifications] == [7, 6, 5]
    assert first.next == 5
    assert (first.unread.count, first.unread.seq) == (7, 7)
    second = await store.list_notifications(user, limit=3, before=first.next)
    assert [n.seq for n in second.notifications] == [4, 3, 2]
    last = await store.list_notifications(user, limit=3, before=second.next)
    assert [n.seq for n in last.notifications] == [1]
    assert last.next is None


async def test_notifications_after_a_seq_are_oldest_first(store: SqlStore) -> None:
    user = new_user()
    for _ in range(6):
        await store.publish(batch(user), NOW, TTL)
    after = await store.notifications_after(user, 2, limit=3)
    assert [n.seq for n in after] == [3, 4, 5]
    assert [n.seq for n in await store.notifications_after(user, 5, limit=10)] == [6]
    assert await store.notifications_after(user, 6, limit=10) == []
    assert await store.notifications_after(new_user(), 0, limit=10) == []


async def test_publish_reports_what_it_stored_for_live_delivery(store: SqlStore) -> None:
    a, b = new_user(), new_user()
    await store.publish(batch(a), NOW, TTL)
    key = f"k-{uuid.uuid4()}"
    outcome = await store.publish(batch(a, b, key=key), NOW, TTL)
    assert [(n.user_id, n.seq) for n in outcome.stored] == [(a, 2), (b, 1)]
    assert {u: (c.count, c.seq) for u, c in outcome.unread.items()} == {a: (2, 2), b: (1, 1)}
    listed = (await store.list_notifications(a, limit=1)).notifications[0]
    assert outcome.stored[0] == listed
    replay = await store.publish(batch(a, b, key=key), NOW, TTL)
    assert replay.replayed and replay.stored == [] and replay.unread == {}


async def test_list_filters_by_unread_and_type(store: SqlStore) -> None:
    user = new_user()
    await store.publish(PublishBatch("p", [draft(user, type="like")]), NOW, TTL)
    await store.publish(PublishBatch("p", [draft(user, type="comment")]), NOW, TTL)
    await store.publish(PublishBatch("p", [draft(user, type="like")]), NOW, TTL)
    page = await store.list_notifications(user, limit=10, type="like")
    assert [n.seq for n in page.notifications] == [3, 1]
    await store.mark_read(user, page.notifications[0].id, NOW)
    unread_likes = await store.list_notifications(user, limit=10, type="like", unread_only=True)
    assert [n.seq for n in unread_likes.notifications] == [1]
    unread = await store.list_notifications(user, limit=10, unread_only=True)
    assert [n.seq for n in unread.notifications] == [2, 1]


async def test_stored_fields_round_trip(store: SqlStore) -> None:
    user = new_user()
    expires = NOW + timedelta(days=1)
    await store.publish(PublishBatch("p", [draft(
        user, title="Hello", message="World", data={"nested": {"list": [1, "two", None]}},
        action_url="https://example.com/x", priority="high", expires_at=expires,
    )]), NOW, TTL)
    (item,) = (await store.list_notifications(user, limit=1)).notifications
    assert (item.title, item.message, item.action_url, item.priority) == (
        "Hello", "World", "https://example.com/x", "high")
    assert item.data == {"nested": {"list": [1, "two", None]}}
    assert item.created_at == NOW and item.expires_at == expires
    assert item.created_at.tzinfo is not None
    assert not item.read and item.read_at is None


async def test_mark_read_changes_counter_once(store: SqlStore) -> None:
    user = new_user()
    outcome = await store.publish(batch(user), NOW, TTL)
    await store.publish(batch(user), NOW, TTL)
    nid = uuid.UUID(outcome.notifications[0]["id"])
    change = await store.mark_read(user, nid, NOW)
    assert change.ids == [nid]
    assert (change.unread.count, change.unread.seq) == (1, 2)
    again = await store.mark_read(user, nid, NOW)
    assert again.ids == [] and again.unread.count == 1
    assert await assert_counter_matches(store, user) == 1
    got = await store.get_notification(user, nid)
    assert got.read and got.read_at == NOW


async def test_concurrent_reads_of_one_notification_decrement_once(store: SqlStore) -> None:
    user = new_user()
    outcome = await store.publish(batch(user), NOW, TTL)
    nid = uuid.UUID(outcome.notifications[0]["id"])
    changes = await asyncio.gather(*(store.mark_read(user, nid, NOW) for _ in range(10)))
    assert sum(len(c.ids) for c in changes) == 1
    assert await assert_counter_matches(store, user) == 0


async def test_another_users_notification_is_not_found(store: SqlStore) -> None:
    owner, intruder = new_user(), new_user()
    outcome = await store.publish(batch(owner), NOW, TTL)
    await store.publish(batch(intruder), NOW, TTL)
    nid = uuid.UUID(outcome.notifications[0]["id"])
    with pytest.raises(NotFound):
        await store.mark_read(intruder, nid, NOW)
    with pytest.raises(NotFound):
        await store.get_notification(intruder, nid)
    with pytest.raises(NotFound):
        await store.mark_read(owner, uuid.uuid4(), NOW)
    assert (await store.unread_count(owner)).count == 1


async def test_mark_all_read_respects_the_seq_bound(store: SqlStore) -> None:
    user = new_user()
    for _ in range(5):
        await store.publish(batch(user), NOW, TTL)
    change = await store.mark_all_read(user, NOW, up_to_seq=3)
    assert len(change.ids) == 3 and change.up_to == 3
    assert (change.unread.count, change.unread.seq) == (2, 5)
    unread = await store.list_notifications(user, limit=10, unread_only=True)
    assert [n.seq for n in unread.notifications] == [5, 4]
    rest = await store.mark_all_read(user, NOW)
    assert len(rest.ids) == 2 and rest.unread.count == 0 and rest.up_to == 5
    assert await assert_counter_matches(store, user) == 0
    none = await store.mark_all_read(user, NOW)
    assert none.ids == [] and none.unread.count == 0


async def test_reads_racing_publishes_keep_the_counter_exact(store: SqlStore) -> None:
    user = new_user()
    ids: list[uuid.UUID] = []
    for _ in range(10):
        outcome = await store.publish(batch(user), NOW, TTL)
        ids.append(uuid.UUID(outcome.notifications[0]["id"]))
    await asyncio.gather(
        *(store.publish(batch(user), NOW, TTL) for _ in range(20)),
        *(store.mark_read(user, nid, NOW) for nid in ids),
        store.mark_all_read(user, NOW, up_to_seq=15),
        store.mark_all_read(user, NOW, up_to_seq=25),
    )
    assert await seqs_of(store, user) == list(range(1, 31))
    await assert_counter_matches(store, user)


async def test_unread_count_of_unknown_user_is_zero(store: SqlStore) -> None:
    count = await store.unread_count(new_user())
    assert (count.count, count.seq) == (0, 0)


async def test_profile_put_keeps_counter_and_seq(store: SqlStore) -> None:
    user = new_user()
    await store.publish(batch(user), NOW, TTL)
    await store.put_user(UserProfile(id=user, email="a@example.com", name="A",
                                     locale="en", timezone="Europe/Paris"), NOW)
    assert await store.get_user(user) == UserProfile(user, "a@example.com", "A", "en",
                                                     "Europe/Paris")
    assert (await store.unread_count(user)).count == 1
    await store.publish(batch(user), NOW, TTL)
    assert await seqs_of(store, user) == [1, 2]
    newcomer = new_user()
    await store.put_user(UserProfile(id=newcomer, email="b@example.com"), NOW)
    assert (await store.unread_count(newcomer)).seq == 0
    with pytest.raises(NotFound):
        await store.get_user(new_user())


async def test_api_keys_are_found_by_hash_and_revoked(store: SqlStore) -> None:
    key_id = uuid.uuid4().hex[:12]
    secret_hash = uuid.uuid4().hex * 2
    created = await store.create_api_key(key_id, "ci", secret_hash, NOW)
    assert created.active
    found = await store.find_api_key(secret_hash)
    assert found is not None and found.id == key_id and found.active
    assert key_id in [k.id for k in await store.list_api_keys()]
    revoked = await store.revoke_api_key(key_id, NOW)
    assert not revoked.active
    again = await store.find_api_key(secret_hash)
    assert again is not None and not again.active
    assert await store.find_api_key("0" * 64) is None
    with pytest.raises(NotFound):
        await store.revoke_api_key("nope", NOW)


async def test_migrate_twice_at_once_is_safe(store: SqlStore) -> None:
    other = SqlStore(store.url)
    try:
        await asyncio.gather(store.migrate(), other.migrate(), store.migrate())
    finally:
        await other.close()
    user = new_user()
    await store.publish(batch(user), NOW, TTL)
    assert await seqs_of(store, user) == [1]


async def test_count_version_orders_counts_that_share_a_seq(store: SqlStore) -> None:
    user = new_user()
    first = await store.publish(batch(user), NOW, TTL)
    second = await store.publish(batch(user), NOW, TTL)
    after_publish = second.unread[user]
    assert (first.unread[user].version, after_publish.version) == (1, 2)
    change = await store.mark_read(user, uuid.UUID(second.notifications[0]["id"]), NOW)
    # Same seq as the publish's count, newer count: the version says which one wins.
    assert change.unread.seq == after_publish.seq
    assert change.unread.version > after_publish.version
    assert (change.unread.count, change.unread.version) == (1, 3)
    unchanged = await store.mark_read(user, uuid.UUID(second.notifications[0]["id"]), NOW)
    assert unchanged.unread.version == 3  # nothing changed, nothing to order
    everything = await store.mark_all_read(user, NOW)
    assert (everything.unread.count, everything.unread.version) == (0, 4)
    assert await store.unread_count(user) == everything.unread


async def test_the_retention_sweep_finds_its_candidates_by_index_not_by_reading_the_table(
        store: SqlStore) -> None:
    """Once a minute the sweep asks what is old enough to delete, and the answer is almost
    always nothing: a query that reads the whole table to say so grows with it (260 ms at a
    million rows). Their indexes must apply: on PostgreSQL with sequential scans priced out,
    on SQLite as its planner chooses."""
    dialect = store.db.engine.dialect.name
    indexes = ("ix_notifications_purgeable", "ix_jobs_status_updated_at")
    for query, index in zip(purge_candidates(dialect, NOW, 1000), indexes, strict=True):
        sql = str(query.compile(dialect=store.db.engine.dialect,
                                compile_kwargs={"literal_binds": True}))
        async with store.db.reading() as conn:
            if dialect == "postgresql":
                await conn.exec_driver_sql("SET enable_seqscan = off")
                plan = [row[0] for row in await conn.exec_driver_sql(f"EXPLAIN {sql}")]
                await conn.exec_driver_sql("RESET enable_seqscan")
            else:
                plan = [row[-1] for row in await conn.exec_driver_sql(
                    f"EXPLAIN QUERY PLAN {sql}")]
        assert any(index in line for line in plan), (sql, plan)
        assert not any("Seq Scan" in line or line.startswith("SCAN") for line in plan), plan


async def test_warming_opens_the_pool_before_the_load_comes(store: SqlStore) -> None:
    pool = store.db.engine.pool
    await store.warm()
    if store.db.is_postgres:
        assert isinstance(pool, QueuePool)
        # Every connection the pool may hold is open and waiting in it.
        assert pool.checkedin() == pool.size() and pool.checkedout() == 0
    await store.warm()  # again: nothing more, nothing fails
    await store.ping()
