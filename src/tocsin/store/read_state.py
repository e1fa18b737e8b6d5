"""Marking notifications read: the row and the user's counter change in one transaction.

Lock order is always the notification rows first, then the user's row (publishes lock only
the user's row, and new rows conflict with nothing), so no lock cycle exists. The counter
drops by exactly the number of rows the update changed: ten concurrent reads of one
notification change one row, and the counter drops by one."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tocsin.domain.errors import NotFound
from tocsin.domain.models import ReadChange, UnreadCount
from tocsin.store.database import SqlDatabase
from tocsin.store.inbox import count_of
from tocsin.store.schema import notifications, users


class ReadState:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def mark_read(self, user_id: str, notification_id: uuid.UUID, now: datetime
                        ) -> ReadChange:
        async def work(conn: AsyncConnection) -> ReadChange:
            changed = (await conn.execute(
                notifications.update()
                .where(notifications.c.id == notification_id,
                       notifications.c.user_id == user_id,
                       notifications.c.seq.is_not(None),  # suppressed: not in the inbox
                       notifications.c.read == sa.false())
                .values(read=True, read_at=now)
                .returning(notifications.c.id)
            )).scalars().all()
            if not changed:
                exists = (await conn.execute(
                    sa.select(notifications.c.id).where(notifications.c.id == notification_id,
                                                        notifications.c.user_id == user_id,
                                                        notifications.c.seq.is_not(None))
                )).first()
                if exists is None:
                    raise NotFound("no such notification")
                return ReadChange(ids=[], unread=await count_of(conn, user_id))
            return ReadChange(ids=list(changed),
                              unread=await _decrement(conn, user_id, len(changed)))

        return await self._db.transact(work)

    async def mark_all_read(self, user_id: str, now: datetime, up_to_seq: int | None = None
                            ) -> ReadChange:
        async def work(conn: AsyncConnection) -> ReadChange:
            newest = (await count_of(conn, user_id)).seq
            # The bound is fixed before the update, so the event can name it exactly, and a
            # notification committed after this point stays unread.
            bound = newest if up_to_seq is None else min(up_to_seq, newest)
            changed = (await conn.execute(
                notifications.update()
                .where(notifications.c.user_id == user_id,
                       notifications.c.read == sa.false(),
                       notifications.c.seq <= bound)
                .values(read=True, read_at=now)
                .returning(notifications.c.id)
            )).scalars().all()
            if not changed:
                return ReadChange(ids=[], unread=await count_of(conn, user_id), up_to=bound)
            return ReadChange(ids=list(changed), up_to=bound,
                              unread=await _decrement(conn, user_id, len(changed)))

        return await self._db.transact(work)


async def _decrement(conn: AsyncConnection, user_id: str, by: int) -> UnreadCount:
    row = (await conn.execute(
        users.update().where(users.c.id == user_id)
        .values(unread_count=users.c.unread_count - by,
                count_version=users.c.count_version + 1)
        .returning(users.c.unread_count, users.c.last_seq, users.c.count_version)
    )).one()
    return UnreadCount(row[0], row[1], row[2])
