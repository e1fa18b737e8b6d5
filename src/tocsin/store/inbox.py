"""Reading a user's inbox: pages, replays, one notification, the count. No transactions: each
read is one statement, so what it returns is consistent by itself (a page and its count
included: they come from one statement, never from two reads around a concurrent write)."""

from __future__ import annotations

import uuid
from collections.abc import Collection

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tocsin.domain.errors import NotFound
from tocsin.domain.models import Notification, Page, UnreadCount, UserProfile
from tocsin.store.database import SqlDatabase
from tocsin.store.mapping import PROFILE_FIELDS, notification_from, profile_from
from tocsin.store.schema import notifications, users

_COUNT = (users.c.unread_count, users.c.last_seq, users.c.count_version)


async def count_of(conn: AsyncConnection, user_id: str) -> UnreadCount:
    """The counter and the seq it is valid at; (0, 0) for a user never published to."""
    row = (await conn.execute(sa.select(*_COUNT).where(users.c.id == user_id))).first()
    return UnreadCount(0, 0) if row is None else UnreadCount(row[0], row[1], row[2])


class Inbox:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def page(self, user_id: str, *, limit: int, before: int | None = None,
                   unread_only: bool = False, type: str | None = None) -> Page:
        # Suppressed notifications (no seq) are not in the inbox.
        wanted = sa.select(notifications).where(notifications.c.user_id == user_id,
                                                notifications.c.seq.is_not(None))
        if before is not None:
            wanted = wanted.where(notifications.c.seq < before)
        if unread_only:
            wanted = wanted.where(notifications.c.read == sa.false())
        if type is not None:
            wanted = wanted.where(notifications.c.type == type)
        page = wanted.order_by(notifications.c.seq.desc()).limit(limit + 1).subquery("page")
        # The user's row, joined to the page: the count and the items in one snapshot. A user
        # never published to has no row, hence no result at all.
        query = (sa.select(*_COUNT, page)
                 .select_from(users.outerjoin(page, sa.true()))
                 .where(users.c.id == user_id)
                 .order_by(page.c.seq.desc()))
        async with self._db.reading() as conn:
            rows = (await conn.execute(query)).all()
        if not rows:
            return Page(notifications=[], next=None, unread=UnreadCount(0, 0))
        count = UnreadCount(rows[0].unread_count, rows[0].last_seq, rows[0].count_version)
        found = [row for row in rows if row.id is not None]
        items = [notification_from(row) for row in found[:limit]]
        more = len(found) > limit
        return Page(notifications=items, next=items[-1].seq if more and items else None,
                    unread=count)

    async def after(self, user_id: str, after: int, limit: int) -> list[Notification]:
        query = (sa.select(notifications)
                 .where(notifications.c.user_id == user_id, notifications.c.seq > after)
                 .order_by(notifications.c.seq).limit(limit))
        async with self._db.reading() as conn:
            return [notification_from(row) for row in (await conn.execute(query)).all()]

    async def one(self, user_id: str, notification_id: uuid.UUID) -> Notification:
        async with self._db.reading() as conn:
            row = (await conn.execute(
                sa.select(notifications).where(notifications.c.id == notification_id,
                                               notifications.c.user_id == user_id,
                                               notifications.c.seq.is_not(None))
            )).first()
        if row is None:
            raise NotFound("no such notification")
        return notification_from(row)

    async def count(self, user_id: str) -> UnreadCount:
        async with self._db.reading() as conn:
            return await count_of(conn, user_id)

    async def with_profiles(self, notification_ids: Collection[uuid.UUID]
                            ) -> dict[uuid.UUID, tuple[Notification, UserProfile]]:
        if not notification_ids:
            return {}
        profile = [users.c[name].label(f"user_{name}") for name in PROFILE_FIELDS]
        query = (sa.select(notifications, *profile)
                 .join(users, users.c.id == notifications.c.user_id)
                 .where(notifications.c.id.in_(list(notification_ids))))
        async with self._db.reading() as conn:
            rows = (await conn.execute(query)).all()
        return {row.id: (notification_from(row),
                         profile_from(row, id_column="user_id", prefix="user_"))
                for row in rows}
