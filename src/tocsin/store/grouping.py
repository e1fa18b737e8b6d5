"""Grouped items: a notification of a grouping type folds into its user's open group instead
of adding a row.

Everything happens under the user's row lock (taken first, on PostgreSQL), so concurrent
publishes into one group queue on it: the first creates the item, each next one finds it and
updates it. Folding in gives the item the user's next seq (it moves to the top of the list),
makes it unread again, and changes the counter by one only if it had been read: an unread
group is counted once however many notifications it holds.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tocsin.domain.drafts import NotificationDraft
from tocsin.domain.models import Notification, UnreadCount
from tocsin.domain.types import merged_actors
from tocsin.store.database import SqlDatabase
from tocsin.store.mapping import notification_from, notification_values
from tocsin.store.schema import notifications, users
from tocsin.store.users import ensure_users


class Groups:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db
        self._ensure_user = ensure_users(db)
        self._next_seq = (
            users.update().where(users.c.id == sa.bindparam("uid"))
            .values(last_seq=users.c.last_seq + 1,
                    unread_count=users.c.unread_count + sa.bindparam("more"),
                    count_version=users.c.count_version + 1, updated_at=sa.bindparam("now"))
            .returning(users.c.last_seq, users.c.unread_count, users.c.count_version))

    async def add(self, conn: AsyncConnection, draft: NotificationDraft, now: datetime, *,
                  publisher: str, idempotency_key: str | None
                  ) -> tuple[Notification, UnreadCount, bool]:
        """The group item after `draft` joined it, the user's count, and whether the item
        existed (False: `draft` started the group)."""
        assert draft.group_key is not None and draft.group_text is not None
        await conn.execute(self._ensure_user, [{"id": draft.user_id, "now": now}])
        await conn.execute(self._db.for_update(
            sa.select(users.c.id).where(users.c.id == draft.user_id)))
        current = (await conn.execute(
            sa.select(notifications).where(
                notifications.c.user_id == draft.user_id, notifications.c.type == draft.type,
                notifications.c.group_key == draft.group_key,
                notifications.c.seq.is_not(None), notifications.c.group_until > now)
            .order_by(notifications.c.group_until.desc()).limit(1))).first()
        if current is None:
            return await self._start(conn, draft, now, publisher, idempotency_key)
        count = int(current.group_count or 1) + 1
        actors = merged_actors(current.group_actors, draft.actor)
        title, message = draft.group_text(count, actors, draft.data)
        seq, unread, version = (await conn.execute(self._next_seq, {
            "uid": draft.user_id, "more": 1 if current.read else 0, "now": now})).one()
        changed = (await conn.execute(
            notifications.update().where(notifications.c.id == current.id)
            .values(seq=seq, read=False, read_at=None, group_count=count, group_actors=actors,
                    data=draft.data, title=title, message=message,
                    action_url=draft.action_url, priority=draft.priority,
                    expires_at=draft.expires_at, quiet=draft.quiet, updated_at=now)
            .returning(*notifications.c))).one()
        return notification_from(changed), UnreadCount(unread, seq, version), True

    async def _start(self, conn: AsyncConnection, draft: NotificationDraft, now: datetime,
                     publisher: str, idempotency_key: str | None
                     ) -> tuple[Notification, UnreadCount, bool]:
        assert draft.group_text is not None and draft.group_window is not None
        actors = merged_actors(None, draft.actor)
        title, message = draft.group_text(1, actors, draft.data)
        seq, unread, version = (await conn.execute(self._next_seq, {
            "uid": draft.user_id, "more": 1, "now": now})).one()
        item = Notification(
            id=uuid.uuid4(), user_id=draft.user_id, seq=seq, type=draft.type, title=title,
            message=message, data=draft.data, action_url=draft.action_url,
            priority=draft.priority, read=False, read_at=None, created_at=now,
            expires_at=draft.expires_at, quiet=draft.quiet, group_key=draft.group_key,
            group_count=1, group_actors=actors)
        extra: dict[str, Any] = {
            "idempotency_key": idempotency_key, "publisher": publisher, "status": "created",
            "decisions": draft.receipt_channels(),
            "group_until": now + timedelta(seconds=draft.group_window)}
        await conn.execute(notifications.insert(), [notification_values(item, **extra)])
        return item, UnreadCount(unread, seq, version), False
