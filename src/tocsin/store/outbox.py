"""The outbox: outbound deliveries, queued in the publish transaction and claimed by workers.

A claim is a lease: `lease_until` and `lease_owner` are set together. A worker records the
result only while it still owns the lease; a lease that expires (the worker was killed or
stalled) is claimed again by any worker. So a delivery is attempted at least once, and more than
once only when a lease expired. Every state change writes an analytics event in the same
transaction: queued, sent, failed, dead, skipped.

On PostgreSQL the claim is `FOR UPDATE SKIP LOCKED`, so workers never wait on each other; on
SQLite the claim runs in a `BEGIN IMMEDIATE` transaction, which makes it exclusive.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tocsin.domain.errors import NotFound
from tocsin.domain.models import DeadLetter, Delivery, Notification, UserProfile
from tocsin.store.deliveries import DEAD, PENDING, SENT, SKIPPED, analytics_row
from tocsin.store.schema import analytics_events, notifications, outbox, users
from tocsin.store.sql import SqlStore


class SqlOutbox:
    """The outbox on the same database (and engine) as the store."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self._pg = store.engine.dialect.name == "postgresql"

    async def claim(self, owner: str, now: datetime, lease_seconds: float, limit: int
                    ) -> list[Delivery]:
        """Lease up to `limit` due deliveries: pending and available, or with a lapsed lease."""
        due = (
            sa.select(outbox.c.id)
            .where(outbox.c.status == PENDING, outbox.c.available_at <= now,
                   sa.or_(outbox.c.lease_until.is_(None), outbox.c.lease_until < now))
            .order_by(outbox.c.available_at)
            .limit(limit)
        )
        if self._pg:
            due = due.with_for_update(skip_locked=True)

        async def work(conn: AsyncConnection) -> list[Delivery]:
            leased = (await conn.execute(
                outbox.update()
                .where(outbox.c.id.in_(due.scalar_subquery()))
                .values(lease_until=now + timedelta(seconds=lease_seconds), lease_owner=owner,
                        attempts=outbox.c.attempts + 1, updated_at=now)
                .returning(outbox.c.id, outbox.c.channel, outbox.c.attempts,
                           outbox.c.notification_id)
            )).all()
            if not leased:
                return []
            by_notification = {row.notification_id for row in leased}
            found = (await conn.execute(
                sa.select(notifications, users.c.email, users.c.name.label("user_name"),
                          users.c.locale, users.c.timezone)
                .join(users, users.c.id == notifications.c.user_id)
                .where(notifications.c.id.in_(by_notification))
            )).all()
            details = {row.id: row for row in found}
            return [_delivery(row.id, row.channel, row.attempts, details[row.notification_id],
                              owner) for row in leased]

        deliveries: list[Delivery] = await self._store.transact(work)
        return deliveries

    async def renew(self, owner: str, delivery_ids: Collection[uuid.UUID], now: datetime,
                    lease_seconds: float) -> int:
        """Extend the leases `owner` still holds on these deliveries; returns how many.

        A batch can take longer than one lease (a slow SMTP server, deliveries queued behind the
        channel's concurrency limit): renewed, they are not taken and sent again by another
        worker while this one still works on them. A lease already taken over stays taken."""
        if not delivery_ids:
            return 0

        async def work(conn: AsyncConnection) -> int:
            result = await conn.execute(
                outbox.update()
                .where(outbox.c.id.in_(list(delivery_ids)), outbox.c.lease_owner == owner,
                       outbox.c.status == PENDING)
                .values(lease_until=now + timedelta(seconds=lease_seconds))
            )
            return int(result.rowcount)

        renewed: int = await self._store.transact(work)
        return renewed

    async def sent(self, delivery: Delivery, now: datetime) -> bool:
        return await self._finish(delivery, now, status=SENT, event="sent", error=None)

    async def skipped(self, delivery: Delivery, now: datetime, reason: str) -> bool:
        return await self._finish(delivery, now, status=SKIPPED, event="skipped", error=reason)

    async def failed(self, delivery: Delivery, now: datetime, error: str,
                     retry_at: datetime | None) -> bool:
        """Record a failed attempt: retried at `retry_at`, or a dead letter when it is None."""
        if retry_at is None:
            return await self._finish(delivery, now, status=DEAD, event="dead", error=error)
        return await self._finish(delivery, now, status=PENDING, event="failed", error=error,
                                  available_at=retry_at)

    async def _finish(self, delivery: Delivery, now: datetime, *, status: str, event: str,
                      error: str | None, available_at: datetime | None = None) -> bool:
        values: dict[str, Any] = {"status": status, "lease_until": None, "lease_owner": None,
                                  "last_error": error, "updated_at": now}
        if available_at is not None:
            values["available_at"] = available_at
        item = delivery.notification

        async def work(conn: AsyncConnection) -> bool:
            result = await conn.execute(
                outbox.update()
                .where(outbox.c.id == delivery.id, outbox.c.lease_owner == delivery.lease_owner,
                       outbox.c.status == PENDING)
                .values(**values)
            )
            if result.rowcount != 1:
                return False  # the lease lapsed and another worker holds it now
            events = [analytics_row(item.id, item.user_id, item.type, delivery.channel, event, now)]
            if event == "dead":  # a dead letter is also a failed attempt
                events.insert(0, analytics_row(item.id, item.user_id, item.type, delivery.channel,
                                        "failed", now))
            await conn.execute(analytics_events.insert().values(events))
            return True

        done: bool = await self._store.transact(work)
        return done

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        async with self._store.reading() as conn:
            rows = (await conn.execute(
                sa.select(outbox).where(outbox.c.status == DEAD)
                .order_by(outbox.c.updated_at.desc()).limit(limit)
            )).all()
        return [_dead(row) for row in rows]

    async def replay(self, delivery_id: uuid.UUID, now: datetime) -> DeadLetter:
        """Queue a dead letter again, with a fresh count of attempts."""
        async def work(conn: AsyncConnection) -> DeadLetter:
            row = (await conn.execute(
                outbox.update()
                .where(outbox.c.id == delivery_id, outbox.c.status == DEAD)
                .values(status=PENDING, attempts=0, available_at=now, lease_until=None,
                        lease_owner=None, updated_at=now)
                .returning(*outbox.c)
            )).first()
            if row is None:
                raise NotFound("no dead letter with this id")
            return _dead(row)

        replayed: DeadLetter = await self._store.transact(work)
        return replayed

    async def status_counts(self) -> dict[str, int]:
        async with self._store.reading() as conn:
            rows = (await conn.execute(
                sa.select(outbox.c.status, sa.func.count()).group_by(outbox.c.status)
            )).all()
        return {status: count for status, count in rows}


def _delivery(delivery_id: uuid.UUID, channel: str, attempts: int, row: Any, owner: str
              ) -> Delivery:
    notification = Notification(
        id=row.id, user_id=row.user_id, seq=row.seq, type=row.type, title=row.title,
        message=row.message, data=row.data, action_url=row.action_url, priority=row.priority,
        read=row.read, read_at=row.read_at, created_at=row.created_at, expires_at=row.expires_at,
    )
    user = UserProfile(id=row.user_id, email=row.email, name=row.user_name, locale=row.locale,
                       timezone=row.timezone)
    return Delivery(id=delivery_id, channel=channel, attempts=attempts,
                    notification=notification, user=user, lease_owner=owner)


def _dead(row: Any) -> DeadLetter:
    return DeadLetter(id=row.id, notification_id=row.notification_id, user_id=row.user_id,
                      channel=row.channel, attempts=row.attempts, last_error=row.last_error,
                      updated_at=row.updated_at)
