"""The Jobs port on the store's database: the `jobs` table.

A claim is a lease: `lease_until` and `lease_owner` are set together. An outcome is recorded
only while its worker still owns the lease; a lease that expires (the worker was killed or
stalled) is claimed again by any worker. On PostgreSQL the claim is `FOR UPDATE SKIP LOCKED`,
so workers never wait on each other; on SQLite it runs in a `BEGIN IMMEDIATE` transaction,
which makes it exclusive.

Deliveries write their analytics events in the transaction of each change (queued, sent,
failed, dead, skipped), so the counts can never disagree with the queue.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tocsin.domain.errors import NotFound
from tocsin.jobs.base import DEAD, DELIVERY, DONE, PENDING, SKIPPED, DeadLetter, Job, JobDraft
from tocsin.store.analytics import event_row, insert_events
from tocsin.store.database import SqlDatabase
from tocsin.store.schema import UtcDateTime, analytics_events, jobs, notifications

_CHUNK = 500  # rows per INSERT: well under every backend's limit on bound parameters


async def insert_jobs(db: SqlDatabase, conn: AsyncConnection, drafts: Sequence[JobDraft],
                      now: datetime) -> int:
    """Queue `drafts` inside the caller's transaction (the publish's, for deliveries); jobs
    whose key is already queued are left out. Returns how many were queued."""
    if not drafts:
        return 0
    pairs = [({"id": uuid.uuid4(), "kind": d.kind, "key": d.key, "payload": d.payload or None,
               "notification_id": d.notification_id, "user_id": d.user_id,
               "channel": d.channel, "status": PENDING, "attempts": 0,
               "available_at": d.due_at, "created_at": now, "updated_at": now}, d)
             for d in drafts]
    fresh = [(row, draft) for row, draft in pairs if draft.key is None]
    keyed: dict[str, tuple[dict[str, Any], JobDraft]] = {}
    for row, draft in pairs:
        if draft.key is not None:
            keyed.setdefault(draft.key, (row, draft))  # a key twice in one call: the first
    inserted: set[uuid.UUID] = set()
    if keyed:  # the rare path: insert what no job holds the key of, and learn which those were
        # ON CONFLICT, not a look-up first: a concurrent enqueue of the same key waits on the
        # first one's row (PostgreSQL) and then inserts nothing, instead of failing on the
        # unique index.
        inserted.update((await conn.execute(
            db.insert(jobs).on_conflict_do_nothing(index_elements=[jobs.c.key])
            .returning(jobs.c.id),
            [row for row, _ in keyed.values()])).scalars())
    rows = [row for row, _ in fresh]
    for start in range(0, len(rows), _CHUNK):
        await conn.execute(jobs.insert(), rows[start:start + _CHUNK])
    fresh += [(row, draft) for row, draft in keyed.values() if row["id"] in inserted]
    await insert_events(conn, [
        event_row(d.notification_id, d.user_id, d.notification_type, d.channel, "queued", now)
        for _, d in fresh if d.kind == DELIVERY and d.notification_type is not None])
    return len(fresh)


class SqlJobs:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def enqueue(self, drafts: Sequence[JobDraft], now: datetime) -> int:
        async def work(conn: AsyncConnection) -> int:
            return await insert_jobs(self._db, conn, drafts, now)

        return await self._db.transact(work)

    async def claim(self, kinds: Collection[str], owner: str, now: datetime,
                    lease_seconds: float, limit: int) -> list[Job]:
        due = (
            sa.select(jobs.c.id)
            .where(jobs.c.status == PENDING, jobs.c.available_at <= now,
                   jobs.c.kind.in_(list(kinds)),
                   sa.or_(jobs.c.lease_until.is_(None), jobs.c.lease_until < now))
            .order_by(jobs.c.available_at)
            .limit(limit)
        )
        if self._db.is_postgres:
            due = due.with_for_update(skip_locked=True)

        async def work(conn: AsyncConnection) -> list[Job]:
            leased = (await conn.execute(
                jobs.update()
                .where(jobs.c.id.in_(due.scalar_subquery()))
                .values(lease_until=now + timedelta(seconds=lease_seconds), lease_owner=owner,
                        attempts=jobs.c.attempts + 1, updated_at=now)
                .returning(jobs.c.id, jobs.c.kind, jobs.c.attempts, jobs.c.available_at,
                           jobs.c.payload, jobs.c.notification_id, jobs.c.user_id,
                           jobs.c.channel)
            )).all()
            return sorted((_job(row, owner) for row in leased), key=lambda job: job.due_at)

        return await self._db.transact(work)

    async def renew(self, owner: str, job_ids: Collection[uuid.UUID], now: datetime,
                    lease_seconds: float) -> int:
        if not job_ids:
            return 0

        async def work(conn: AsyncConnection) -> int:
            result = await conn.execute(
                jobs.update()
                .where(jobs.c.id.in_(list(job_ids)), jobs.c.lease_owner == owner,
                       jobs.c.status == PENDING)
                .values(lease_until=now + timedelta(seconds=lease_seconds))
            )
            return int(result.rowcount)

        return await self._db.transact(work)

    async def complete(self, job: Job, now: datetime, skipped: str | None = None) -> bool:
        if skipped is not None:
            return await self._finish(job, now, status=SKIPPED, events=("skipped",),
                                      error=skipped)
        return await self._finish(job, now, status=DONE, events=("sent",), error=None)

    async def retry(self, job: Job, now: datetime, error: str, due_at: datetime) -> bool:
        return await self._finish(job, now, status=PENDING, events=("failed",), error=error,
                                  available_at=due_at)

    async def bury(self, job: Job, now: datetime, error: str) -> bool:
        # A dead letter is also a failed attempt.
        return await self._finish(job, now, status=DEAD, events=("failed", "dead"),
                                  error=error)

    async def _finish(self, job: Job, now: datetime, *, status: str, events: tuple[str, ...],
                      error: str | None, available_at: datetime | None = None) -> bool:
        values: dict[str, Any] = {"status": status, "lease_until": None, "lease_owner": None,
                                  "last_error": error, "updated_at": now}
        if available_at is not None:
            values["available_at"] = available_at

        async def work(conn: AsyncConnection) -> bool:
            result = await conn.execute(
                jobs.update()
                .where(jobs.c.id == job.id, jobs.c.lease_owner == job.lease_owner,
                       jobs.c.status == PENDING)
                .values(**values)
            )
            if result.rowcount != 1:
                return False  # the lease lapsed and another worker holds it now
            if job.kind == DELIVERY and job.notification_id is not None:
                for name in events:  # the type comes from the notification, in one statement
                    await conn.execute(analytics_events.insert().from_select(
                        ["notification_id", "user_id", "type", "channel", "event",
                         "created_at"],
                        sa.select(notifications.c.id, notifications.c.user_id,
                                  notifications.c.type,
                                  sa.literal(job.channel, sa.String()).label("channel"),
                                  sa.literal(name, sa.String()).label("event"),
                                  sa.literal(now, UtcDateTime()).label("created_at"))
                        .where(notifications.c.id == job.notification_id)))
            return True

        return await self._db.transact(work)

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        async with self._db.reading() as conn:
            rows = (await conn.execute(
                sa.select(jobs).where(jobs.c.status == DEAD)
                .order_by(jobs.c.updated_at.desc()).limit(limit)
            )).all()
        return [_dead(row) for row in rows]

    async def replay(self, job_id: uuid.UUID, now: datetime) -> DeadLetter:
        async def work(conn: AsyncConnection) -> DeadLetter:
            row = (await conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.status == DEAD)
                .values(status=PENDING, attempts=0, available_at=now, lease_until=None,
                        lease_owner=None, updated_at=now)
                .returning(*jobs.c)
            )).first()
            if row is None:
                raise NotFound("no dead letter with this id")
            return _dead(row)

        return await self._db.transact(work)

    async def counts(self) -> dict[str, int]:
        async with self._db.reading() as conn:
            rows = (await conn.execute(
                sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status)
            )).all()
        return {status: count for status, count in rows}


def _job(row: Any, owner: str) -> Job:
    return Job(id=row.id, kind=row.kind, attempts=row.attempts, lease_owner=owner,
               due_at=row.available_at, payload=row.payload or {},
               notification_id=row.notification_id, user_id=row.user_id, channel=row.channel)


def _dead(row: Any) -> DeadLetter:
    return DeadLetter(id=row.id, kind=row.kind, notification_id=row.notification_id,
                      user_id=row.user_id, channel=row.channel, attempts=row.attempts,
                      last_error=row.last_error, updated_at=row.updated_at)
