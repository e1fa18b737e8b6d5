"""Expiry and retention: what the periodic sweep does to the notifications table.

- `expire`: notifications past their `expires_at` leave the inbox (no seq, status `expired`),
  and each user's unread counter goes down by their unread ones in the same transaction, so
  the counter stays exactly the number of unread rows in the inbox.
- `purge`: rows out of the inbox (expired, cancelled, suppressed) and read notifications,
  older than the retention, are deleted; so are finished jobs older than it.

Both work in bounded batches (`limit` rows a transaction), so a large backlog never makes one
long transaction, and two sweeps at once (two workers) skip each other's rows on PostgreSQL.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tocsin.domain.models import UnreadCount
from tocsin.jobs.base import DONE, SKIPPED
from tocsin.store.database import SqlDatabase
from tocsin.store.schema import (
    PURGEABLE_NOTIFICATION,
    jobs,
    notifications,
    users,
)

EXPIRED = "expired"


class Expiry:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def expire(self, now: datetime, limit: int = 1000
                     ) -> tuple[int, dict[str, UnreadCount]]:
        """Take up to `limit` expired notifications out of the inbox; how many, and the counts
        of the users whose counter changed."""
        due = (sa.select(notifications.c.id, notifications.c.user_id, notifications.c.read)
               .where(notifications.c.expires_at <= now, notifications.c.seq.is_not(None))
               .order_by(notifications.c.expires_at).limit(limit))
        if self._db.is_postgres:
            due = due.with_for_update(skip_locked=True)

        async def work(conn: AsyncConnection) -> tuple[int, dict[str, UnreadCount]]:
            rows = (await conn.execute(due)).all()
            if not rows:
                return 0, {}
            await conn.execute(notifications.update()
                               .where(notifications.c.id.in_([row.id for row in rows]))
                               .values(seq=None, status=EXPIRED))
            unread = Counter(row.user_id for row in rows if not row.read)
            counts: dict[str, UnreadCount] = {}
            for user_id in sorted(unread):  # one lock order for every writer of users
                changed = (await conn.execute(
                    users.update().where(users.c.id == user_id)
                    .values(unread_count=users.c.unread_count - unread[user_id],
                            count_version=users.c.count_version + 1, updated_at=now)
                    .returning(users.c.unread_count, users.c.last_seq, users.c.count_version)
                )).one()
                counts[user_id] = UnreadCount(*changed)
            return len(rows), counts

        return await self._db.transact(work)

    async def purge(self, before: datetime, limit: int = 1000) -> int:
        """Delete up to `limit` notifications (and as many finished jobs) older than `before`
        that are out of the inbox or read; how many notifications went."""
        old, finished = purge_candidates(self._db.engine.dialect.name, before, limit)

        async def work(conn: AsyncConnection) -> int:
            await conn.execute(jobs.delete().where(jobs.c.id.in_(finished.scalar_subquery())))
            deleted = await conn.execute(
                notifications.delete().where(notifications.c.id.in_(old.scalar_subquery())))
            return int(deleted.rowcount or 0)

        return await self._db.transact(work)


def purge_candidates(dialect: str, before: datetime, limit: int) -> tuple[sa.Select[Any],
                                                                          sa.Select[Any]]:
    """The ids the retention sweep deletes next: notifications, finished jobs.

    The notifications' condition is written as its partial index states it (store/schema.py),
    literally: a database uses a partial index only where it can prove that the query implies
    the index's condition, which neither PostgreSQL nor SQLite does through bound parameters.
    Finished jobs are a range of `(status, updated_at)` per status.
    """
    # In brackets: a text clause is spliced into the AND as it is, and `a AND b OR c` is not
    # `a AND (b OR c)`.
    old = (sa.select(notifications.c.id)
           .where(notifications.c.created_at < before,
                  sa.text(f"({PURGEABLE_NOTIFICATION[dialect]})"))
           .limit(limit))
    finished = (sa.select(jobs.c.id)
                .where(jobs.c.status.in_((DONE, SKIPPED)), jobs.c.updated_at < before)
                .limit(limit))
    return old, finished
