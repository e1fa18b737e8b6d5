"""Group commit, on SQLite and PostgreSQL: publishes waiting behind a transaction share the
next one, each keeps its own outcome, and one that fails fails alone."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.contract.test_store import NOW, TTL, batch, draft
from tests.support.client import new_user
from tests.support.db import assert_counter_matches, seqs_of
from tocsin.domain.drafts import PublishBatch
from tocsin.domain.errors import IdempotencyMismatch, StoreUnavailable
from tocsin.store.group_commit import GroupCommit, Work
from tocsin.store.schema import notifications, users
from tocsin.store.sql import SqlStore


def _making(user: str, seen: list[Any], fail: BaseException | None = None) -> Work:
    """A work that creates `user`'s row, notes the connection it ran on, and maybe fails
    after writing (so its write must be rolled back)."""

    async def work(conn: AsyncConnection) -> str:
        seen.append(conn)
        await conn.execute(users.insert().values(
            id=user, created_at=datetime.now(UTC), updated_at=datetime.now(UTC)))
        if fail is not None:
            raise fail
        return user

    return work


async def _users_stored(store: SqlStore, ids: list[str]) -> set[str]:
    async with store.db.reading() as conn:
        return set((await conn.execute(
            sa.select(users.c.id).where(users.c.id.in_(ids)))).scalars())


async def test_waiting_works_share_one_transaction_and_keep_their_results(
        store: SqlStore) -> None:
    commits = GroupCommit(store.db)
    ids = [new_user() for _ in range(5)]
    seen: list[Any] = []
    results = await asyncio.gather(*(commits.run(_making(user, seen), [user]) for user in ids))
    assert results == ids
    assert len({id(conn) for conn in seen}) == 1  # one transaction's connection for all five
    assert await _users_stored(store, ids) == set(ids)


async def test_a_failing_work_fails_alone_and_writes_nothing(store: SqlStore) -> None:
    commits = GroupCommit(store.db)
    ids = [new_user() for _ in range(4)]
    seen: list[Any] = []
    works = [_making(user, seen, ValueError("refused") if i == 2 else None)
             for i, user in enumerate(ids)]
    results = await asyncio.gather(*(commits.run(work, [user])
                                     for work, user in zip(works, ids, strict=True)),
                                   return_exceptions=True)
    assert results[:2] == ids[:2] and results[3] == ids[3]
    assert isinstance(results[2], ValueError)
    # The group ran up to the failing work (three), was rolled back, then each ran on its
    # own (four).
    assert len(seen) == 7
    assert await _users_stored(store, ids) == {ids[0], ids[1], ids[3]}


async def test_an_unavailable_store_fails_the_group_at_once(store: SqlStore) -> None:
    commits = GroupCommit(store.db)
    ids = [new_user() for _ in range(3)]
    seen: list[Any] = []
    down = StoreUnavailable("the database is restarting")
    works = [_making(ids[0], seen, down), _making(ids[1], seen), _making(ids[2], seen)]
    results = await asyncio.gather(*(commits.run(work, [user])
                                     for work, user in zip(works, ids, strict=True)),
                                   return_exceptions=True)
    assert all(result is down for result in results)
    assert len(seen) == 1  # not run again one by one, each waiting for the database
    assert await _users_stored(store, ids) == set()


async def test_a_caller_that_goes_away_still_has_its_work_committed(store: SqlStore) -> None:
    commits = GroupCommit(store.db)
    gate = asyncio.Event()
    first, second = new_user(), new_user()

    async def slow(conn: AsyncConnection) -> str:
        await gate.wait()
        made: str = await _making(first, [])(conn)
        return made

    running = asyncio.ensure_future(commits.run(slow, [first]))
    await asyncio.sleep(0.01)
    behind = asyncio.ensure_future(commits.run(_making(second, []), [second]))
    await asyncio.sleep(0.01)
    behind.cancel()
    gate.set()
    assert await running == first
    with pytest.raises(asyncio.CancelledError):
        await behind
    for _ in range(100):
        if await _users_stored(store, [second]):
            break
        await asyncio.sleep(0.01)
    assert await _users_stored(store, [first, second]) == {first, second}


async def test_concurrent_publishes_to_few_users_keep_seqs_counts_and_receipts(
        store: SqlStore) -> None:
    """100 publishes at once to 10 users, through the store's group commit: every user's
    seqs are 1..10 with no gap, every counter is exact, and every publish got the receipt
    of its own notification."""
    recipients = [new_user() for _ in range(10)]
    publishes = [batch(recipients[i % 10]) for i in range(100)]
    outcomes = await asyncio.gather(*(store.publish(each, NOW, TTL) for each in publishes))
    for each, outcome in zip(publishes, outcomes, strict=True):
        (receipt,) = outcome.notifications
        assert receipt["user_id"] == each.drafts[0].user_id
        (stored,) = outcome.stored
        assert str(stored.id) == receipt["id"] and stored.seq == receipt["seq"]
        # The count it announces is the one at its own seq (nothing was read): merged or
        # not, as if the publishes had run one after another.
        unread = outcome.unread[stored.user_id]
        assert (unread.seq, unread.count) == (stored.seq, stored.seq)
    assert len({o.notifications[0]["id"] for o in outcomes}) == 100
    for user in recipients:
        versions = sorted((o.unread[user].seq, o.unread[user].version) for o in outcomes
                          if user in o.unread)
        assert [version for _, version in versions] == sorted({v for _, v in versions})
    for user in recipients:
        assert await seqs_of(store, user) == list(range(1, 11))
        assert await assert_counter_matches(store, user) == 10


async def test_a_refused_publish_among_concurrent_ones_fails_alone(store: SqlStore) -> None:
    """An Idempotency-Key reused with another body is refused; the publishes committed
    beside it are not."""
    key = f"k-{uuid.uuid4()}"
    taken = new_user()
    await store.publish(batch(taken, key=key, fp="first"), NOW, TTL)
    others = [new_user() for _ in range(20)]
    publishes = [batch(user) for user in others[:10]]
    publishes.append(batch(taken, key=key, fp="another body"))
    publishes.extend(batch(user) for user in others[10:])
    outcomes = await asyncio.gather(*(store.publish(each, NOW, TTL) for each in publishes),
                                    return_exceptions=True)
    assert isinstance(outcomes[10], IdempotencyMismatch)
    assert not any(isinstance(o, BaseException) for i, o in enumerate(outcomes) if i != 10)
    assert await seqs_of(store, taken) == [1]
    for user in others:
        assert await seqs_of(store, user) == [1]
        assert await assert_counter_matches(store, user) == 1


async def test_concurrent_publishes_take_fewer_transactions_than_publishes(
        store: SqlStore) -> None:
    begun: list[object] = []

    def count(conn: object) -> None:
        begun.append(conn)

    event.listen(store.engine.sync_engine, "begin", count)
    try:
        await asyncio.gather(*(store.publish(batch(new_user()), NOW, TTL) for _ in range(20)))
    finally:
        event.remove(store.engine.sync_engine, "begin", count)
    # All twenty queued before the writer's first transaction began (or the first went alone
    # and the rest queued behind it): one or two transactions, not twenty. (On PostgreSQL,
    # none: a group of plain publishes is one statement without a transaction around it.)
    assert len(begun) <= 2


async def test_a_plain_publish_is_stored_alike_merged_or_not(store: SqlStore) -> None:
    """Merged (on PostgreSQL, one statement of its own) or written in a transaction of its own
    (an Idempotency-Key makes it so), a notification's row is the same."""
    fields: dict[str, object] = {
        "title": "Ada \u00e9 \U0001f514", "message": "m" * 300,
        "data": {"nested": [1, {"b": None, "c": "x"}], "n": 1.5},
        "action_url": "https://example.com/p/1", "priority": "high",
        "expires_at": NOW + timedelta(days=1), "quiet": True}
    merged_user, alone_user = new_user(), new_user()
    await store.publish(PublishBatch(publisher="pub-1", drafts=[draft(merged_user, **fields)]),
                        NOW, TTL)
    await store.publish(PublishBatch(publisher="pub-1", drafts=[draft(alone_user, **fields)],
                                     idempotency_key=f"k-{uuid.uuid4()}", fingerprint="fp"),
                        NOW, TTL)
    async with store.db.reading() as conn:
        rows = {row.user_id: dict(row._mapping) for row in await conn.execute(
            sa.select(notifications).where(
                notifications.c.user_id.in_([merged_user, alone_user])))}
    merged, alone = rows[merged_user], rows[alone_user]
    for row in (merged, alone):
        del row["id"], row["user_id"], row["idempotency_key"]
    assert merged == alone
    assert merged["seq"] == 1 and merged["data"] == fields["data"]


async def test_a_batch_as_large_as_a_group_is_written_at_once(store: SqlStore) -> None:
    recipients = [new_user() for _ in range(150)]
    outcome = await store.publish(batch(*recipients), NOW, TTL)
    assert [receipt["user_id"] for receipt in outcome.notifications] == recipients
    assert [item.seq for item in outcome.stored] == [1] * 150
    assert {user: (count.count, count.seq) for user, count in outcome.unread.items()} == {
        user: (1, 1) for user in recipients}
    for user in recipients[::50]:
        assert await seqs_of(store, user) == [1]
        assert await assert_counter_matches(store, user) == 1
