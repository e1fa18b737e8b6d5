"""The publish transaction: every recipient's notification, seq, counter, deliveries and the
idempotency record, committed together or not at all.

The seq and the counter come from one upsert on the users row (`INSERT … ON CONFLICT DO UPDATE
SET last_seq = last_seq + 1 … RETURNING`): it creates the user on first publish and, on
PostgreSQL, takes the row's lock, so concurrent publishers to one user queue on it and seqs
are gap-free. Users are locked in sorted id order, so two batches can never deadlock on each
other. On SQLite writes are serial (see `store/database.py`), so the same statements are
trivially so.

A batch of a topic's fan-out carries its step (`PublishBatch.step`): the transaction first
moves the fan-out's cursor, and only if it was still where the step began (see
`store/fanouts.py`), so the batch and the progress that says it is done commit together.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tocsin.domain.drafts import (
    THROTTLED,
    NotificationDraft,
    PublishBatch,
    Published,
    PublishOutcome,
)
from tocsin.domain.models import Notification, UnreadCount
from tocsin.jobs.base import DELIVERY, RELEASE, SKIP_IF_READ, JobDraft
from tocsin.jobs.sql import insert_jobs
from tocsin.store.analytics import event_row, insert_events
from tocsin.store.database import SqlDatabase
from tocsin.store.fanouts import FanoutRecords
from tocsin.store.group_commit import GroupCommit
from tocsin.store.grouping import Groups
from tocsin.store.idempotency import IdempotencyKeys
from tocsin.store.mapping import notification_values
from tocsin.store.merged_write import MergePlan, notification_of, write_on_postgres
from tocsin.store.schema import notifications, users
from tocsin.store.users import ensure_users


def bump_users(db: SqlDatabase) -> Any:
    """The statement that gives each user (parameters `id`, `now`) their next seq and one more
    unread: created on a user's first notification, under the row's lock on PostgreSQL."""
    upsert = db.insert(users).values(
        id=sa.bindparam("id"), unread_count=1, last_seq=1, count_version=1,
        created_at=sa.bindparam("now"), updated_at=sa.bindparam("now"))
    # One cached statement, executed with one parameter set per user: SQLAlchemy compiles it
    # once per process (rows written into the statement itself would be compiled every time,
    # which the profile showed costing more than the database's own work).
    return upsert.on_conflict_do_update(
        index_elements=["id"],
        set_={"last_seq": users.c.last_seq + 1, "unread_count": users.c.unread_count + 1,
              "count_version": users.c.count_version + 1,
              "updated_at": upsert.excluded.updated_at},
    ).returning(users.c.id, users.c.last_seq, users.c.unread_count, users.c.count_version,
                sort_by_parameter_order=True)


def bump_users_by(db: SqlDatabase) -> Any:
    """As `bump_users`, by `n` at once (parameters `id`, `n`, `now`): a user's `n`
    notifications of a merged group take `last_seq + 1 … last_seq + n`. The version rises by
    `n` too, so each of them can be answered with the count, seq and version it would have had
    alone."""
    upsert = db.insert(users).values(
        id=sa.bindparam("id"), unread_count=sa.bindparam("n"), last_seq=sa.bindparam("n"),
        count_version=sa.bindparam("n"), created_at=sa.bindparam("now"),
        updated_at=sa.bindparam("now"))
    return upsert.on_conflict_do_update(
        index_elements=["id"],
        set_={"last_seq": users.c.last_seq + upsert.excluded.last_seq,
              "unread_count": users.c.unread_count + upsert.excluded.unread_count,
              "count_version": users.c.count_version + upsert.excluded.count_version,
              "updated_at": upsert.excluded.updated_at},
    ).returning(users.c.id, users.c.last_seq, users.c.unread_count, users.c.count_version,
                sort_by_parameter_order=True)


class Publishing:
    def __init__(self, db: SqlDatabase, idempotency: IdempotencyKeys,
                 fanouts: FanoutRecords) -> None:
        self._db = db
        self._idempotency = idempotency
        self._fanouts = fanouts
        self._bump_users = bump_users(db)
        self._groups = Groups(db)
        # PostgreSQL: a few groups in flight, so the database and this process work side by
        # side; SQLite writes one transaction at a time whatever is asked of it.
        self._commits = GroupCommit(
            db, writers=1 if db.is_sqlite else 4, merge=self._merge,
            merge_alone=self._merge_alone if db.is_postgres else None)
        self._bump_users_by = bump_users_by(db)
        self._ensure_users = ensure_users(db)

    async def publish(self, batch: PublishBatch, now: datetime, ttl_seconds: int
                      ) -> PublishOutcome:
        for draft in batch.drafts:
            if draft.status not in ("created", "suppressed", "scheduled"):
                raise ValueError(f"the store has no way yet to commit a {draft.status!r} draft")

        async def work(conn: AsyncConnection) -> PublishOutcome:
            if batch.step is not None:
                # First, before any user row is locked: the fan-out's row is the one lock
                # every worker running this fan-out takes, so a second one waits here, then
                # finds the cursor moved and rolls back having written nothing.
                await self._fanouts.advance(conn, batch.step, now)
                if self._db.is_postgres and _plain(batch):
                    # The cursor's UPDATE began the transaction: the batch's one statement
                    # runs inside it, so batch and progress still commit together.
                    raw = await conn.get_raw_connection()
                    pg = raw.driver_connection
                    if pg is not None and pg.is_in_transaction():
                        (outcome,) = await write_on_postgres(pg, MergePlan([(batch, now)]))
                        return outcome
            if batch.idempotency_key is not None:
                earlier = await self._idempotency.claim(
                    conn, batch.publisher, batch.idempotency_key, batch.fingerprint, now,
                    ttl_seconds)
                if earlier is not None:
                    return PublishOutcome(notifications=earlier, replayed=True)
            rows, unread, joined = await self._insert(conn, batch, now)
            drafts = batch.drafts
            queued = await insert_jobs(
                self._db, conn, [*_deliveries(drafts, rows, now, joined),
                                 *_releases(drafts, rows)], now)
            await insert_events(conn, _throttled(drafts, rows, now))
            response = [
                Published(id=item.id, user_id=item.user_id, seq=item.seq,
                          status="grouped" if index in joined else draft.status,
                          channels=_receipt_channels(draft, index in joined)).to_json()
                for index, (draft, item) in enumerate(zip(drafts, rows, strict=True))
            ]
            if batch.idempotency_key is not None:
                await self._idempotency.record(conn, batch.publisher, batch.idempotency_key,
                                               response)
            stored = [item for item in rows if item.seq is not None]
            return PublishOutcome(notifications=response, stored=stored, unread=unread,
                                  queued=queued)

        if batch.step is not None:  # committed with its fan-out's cursor, on its own
            return await self._db.transact(work)
        outcome: PublishOutcome = await self._commits.run(
            work, [draft.user_id for draft in batch.drafts],
            merged=(batch, now) if mergeable(batch) else None)
        return outcome

    async def _merge(self, conn: AsyncConnection,
                     items: list[tuple[PublishBatch, datetime]]) -> list[PublishOutcome]:
        """Plain publishes (see `mergeable`) written together in the group's transaction:
        one upsert for all their users (in sorted order: the lock order), one insert for all
        their notifications (see `store/merged_write.py`)."""
        plan = MergePlan(items)
        bumped = await conn.execute(self._bump_users_by, [
            {"id": uid, "n": plan.counts[uid], "now": plan.latest[uid]} for uid in plan.users])
        final = {uid: (seq, count, version) for uid, seq, count, version in bumped.all()}
        stored = plan.notifications(final)
        await conn.execute(notifications.insert(), [
            notification_values(item, idempotency_key=None,
                                publisher=items[each.batch][0].publisher,
                                status=each.draft.status,
                                decisions=each.draft.receipt_channels(), send_at=None)
            for each, item in zip(plan.planned, stored, strict=True)])
        return plan.outcomes(final, stored)

    async def _merge_alone(self, items: list[tuple[PublishBatch, datetime]]
                           ) -> list[PublishOutcome]:
        """A group of nothing but plain publishes, on PostgreSQL: one autocommitted statement,
        outside any transaction (see `store/merged_write.py`)."""
        async with self._db.reading() as conn:
            raw = await conn.get_raw_connection()
            return await write_on_postgres(raw.driver_connection, MergePlan(items))

    async def _insert(self, conn: AsyncConnection, batch: PublishBatch, now: datetime
                      ) -> tuple[list[Notification], dict[str, UnreadCount], set[int]]:
        """Every draft's row, in the batch's order: those in the inbox with their seq, the
        suppressed and scheduled ones without (and without touching their user's counter),
        grouped ones as their group's item; and the indexes of the drafts that joined a group
        that already existed. The drafts are not changed: a retried transaction sees them as
        they were."""
        drafts = batch.drafts
        if len({draft.user_id for draft in drafts}) != len(drafts):
            raise ValueError("a batch holds at most one draft per user")
        grouping = {i for i, draft in enumerate(drafts)
                    if draft.in_inbox and draft.group_key is not None}
        counted = sorted(draft.user_id for i, draft in enumerate(drafts)
                         if draft.in_inbox and i not in grouping)
        unread: dict[str, UnreadCount] = {}
        if counted:
            bumped = await conn.execute(self._bump_users,
                                        [{"id": uid, "now": now} for uid in counted])
            unread = {uid: UnreadCount(count=count, seq=seq, version=version)
                      for uid, seq, count, version in bumped.all()}
        uncounted = sorted(draft.user_id for draft in drafts if not draft.in_inbox)
        if uncounted:  # their rows must exist for the notifications' foreign key
            await conn.execute(self._ensure_users,
                               [{"id": uid, "now": now} for uid in uncounted])
        rows: dict[int, Notification] = {}
        joined: set[int] = set()
        # In user order, as the bump above: one lock order for every writer.
        for i in sorted(grouping, key=lambda index: drafts[index].user_id):
            item, count, existed = await self._groups.add(
                conn, drafts[i], now, publisher=batch.publisher,
                idempotency_key=batch.idempotency_key)
            rows[i], unread[item.user_id] = item, count
            if existed:
                joined.add(i)
        plain = [i for i in range(len(drafts)) if i not in grouping]
        for i in plain:
            draft = drafts[i]
            rows[i] = _notification(draft, unread[draft.user_id].seq if draft.in_inbox else None,
                                    now)
        if plain:
            await conn.execute(notifications.insert(), [
                notification_values(rows[i], idempotency_key=batch.idempotency_key,
                                    publisher=batch.publisher, status=drafts[i].status,
                                    decisions=drafts[i].receipt_channels(),
                                    send_at=drafts[i].send_at)
                for i in plain])
        return [rows[i] for i in range(len(drafts))], unread, joined


def mergeable(batch: PublishBatch) -> bool:
    """A publish `_merge` can write with others: to users' inboxes, with no Idempotency-Key,
    nothing grouped and nothing outbound (no jobs, no analytics events to write), and not a
    fan-out's batch (committed with its cursor)."""
    return batch.step is None and _plain(batch)


def _plain(batch: PublishBatch) -> bool:
    """What `store/merged_write.py` can write: the drafts' rows and their users' bumps only."""
    return batch.idempotency_key is None and all(
        draft.in_inbox and draft.group_key is None and draft.send_at is None
        and not any(decision.enqueues or decision.outcome == THROTTLED
                    for decision in draft.channels.values())
        for draft in batch.drafts)


def _notification(draft: NotificationDraft, seq: int | None, now: datetime) -> Notification:
    return notification_of(draft, uuid.uuid4(), seq, now)


def _deliveries(drafts: list[NotificationDraft], stored: list[Notification], now: datetime,
                joined: set[int]) -> list[JobDraft]:
    """One delivery job per recipient and outbound channel the pipeline decided to use; none
    for a notification that joined an existing group (a group sends once per window). A
    held delivery (quiet hours) is skipped when it falls due if its notification has been
    read in the meantime."""
    return [
        JobDraft(kind=DELIVERY, due_at=decision.due_at or now, notification_id=item.id,
                 user_id=item.user_id, channel=name, notification_type=item.type,
                 payload={SKIP_IF_READ: True} if decision.is_held else {})
        for index, (draft, item) in enumerate(zip(drafts, stored, strict=True))
        if index not in joined
        for name, decision in sorted(draft.channels.items()) if decision.enqueues
    ]


def _receipt_channels(draft: NotificationDraft, joined: bool) -> dict[str, str]:
    channels = draft.receipt_channels()
    if joined:  # outbound channels already went out for this group in its window
        return {name: "grouped" if draft.channels[name].enqueues else outcome
                for name, outcome in channels.items()}
    return channels


def _releases(drafts: list[NotificationDraft], stored: list[Notification]) -> list[JobDraft]:
    """One release job per scheduled notification, due at its `send_at`."""
    return [
        JobDraft(kind=RELEASE, due_at=draft.send_at, notification_id=item.id,
                 user_id=item.user_id, key=f"release:{item.id}")
        for draft, item in zip(drafts, stored, strict=True)
        if draft.status == "scheduled" and draft.send_at is not None
    ]


def _throttled(drafts: list[NotificationDraft], stored: list[Notification], now: datetime
               ) -> list[dict[str, Any]]:
    """A `throttled` analytics event per recipient and channel a rate limit kept from
    sending, beside the `queued` events of the deliveries that were not."""
    return [
        event_row(item.id, item.user_id, item.type, name, THROTTLED, now)
        for draft, item in zip(drafts, stored, strict=True)
        for name, decision in sorted(draft.channels.items()) if decision.outcome == THROTTLED
    ]
