"""Scheduled notifications: released at their `send_at`, or cancelled before.

A release is one transaction: the row still `scheduled` (locked on PostgreSQL), the user's
next seq and one more unread, the row `created`. Run twice (a worker killed after the commit,
before it recorded the job done), the second finds nothing scheduled and changes nothing: a
notification is released once.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tocsin.domain.drafts import PublishOutcome
from tocsin.domain.errors import Conflict, NotFound
from tocsin.domain.models import UnreadCount
from tocsin.jobs.base import PENDING, SKIPPED
from tocsin.store.database import SqlDatabase
from tocsin.store.mapping import notification_from
from tocsin.store.publishing import bump_users
from tocsin.store.schema import jobs, notifications

SCHEDULED, CANCELLED = "scheduled", "cancelled"


class Schedule:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db
        self._bump = bump_users(db)

    async def release(self, notification_id: uuid.UUID, now: datetime) -> PublishOutcome | None:
        """Give a scheduled notification its seq; None if it is not scheduled (any more)."""
        async def work(conn: AsyncConnection) -> PublishOutcome | None:
            row = (await conn.execute(self._db.for_update(
                sa.select(notifications.c.user_id).where(
                    notifications.c.id == notification_id,
                    notifications.c.status == SCHEDULED)))).first()
            if row is None:
                return None
            [(_, seq, count, version)] = (await conn.execute(
                self._bump, [{"id": row.user_id, "now": now}])).all()
            released = (await conn.execute(
                notifications.update().where(notifications.c.id == notification_id)
                .values(seq=seq, status="created", created_at=now)
                .returning(*notifications.c))).one()
            notification = notification_from(released)
            return PublishOutcome(notifications=[], stored=[notification],
                                  unread={row.user_id: UnreadCount(count, seq, version)})

        return await self._db.transact(work)

    async def cancel(self, publisher: str, notification_id: uuid.UUID, now: datetime) -> None:
        """Cancel a scheduled notification of this publisher, and its pending jobs.

        `NotFound` for another publisher's or an unknown one; `Conflict` once released."""
        async def work(conn: AsyncConnection) -> None:
            row = (await conn.execute(self._db.for_update(
                sa.select(notifications.c.status).where(
                    notifications.c.id == notification_id,
                    notifications.c.publisher == publisher)))).first()
            if row is None:
                raise NotFound("no such notification")
            if row.status == CANCELLED:
                return  # idempotent: cancelling twice is what was asked
            if row.status != SCHEDULED:
                raise Conflict("this notification was already sent; only a scheduled one "
                               "can be cancelled", details={"status": row.status})
            await conn.execute(notifications.update()
                               .where(notifications.c.id == notification_id)
                               .values(status=CANCELLED))
            await conn.execute(jobs.update()
                               .where(jobs.c.notification_id == notification_id,
                                      jobs.c.status == PENDING)
                               .values(status=SKIPPED, last_error="cancelled", updated_at=now,
                                       lease_until=None, lease_owner=None))

        await self._db.transact(work)
