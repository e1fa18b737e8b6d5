"""Reading the outbox and its analytics straight from the database, and queueing emails.

The outbox is claimed across the whole database, not per user, so a test that claims must own
its database: the outbox test modules each take a PostgreSQL database of their own (not the
session's shared one), and `clear_outbox` empties the queue before each test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tocsin.domain.models import NotificationDraft, PublishBatch, PublishOutcome, UserProfile
from tocsin.store.schema import analytics_events, outbox
from tocsin.store.sql import SqlStore

TTL = 24 * 3600


async def clear_outbox(store: SqlStore) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(outbox.delete())


async def outbox_rows(store: SqlStore, notification_ids: Iterable[uuid.UUID] | None = None
                      ) -> list[Any]:
    """The outbox rows (of these notifications), oldest first."""
    query = sa.select(outbox).order_by(outbox.c.created_at, outbox.c.id)
    if notification_ids is not None:
        query = query.where(outbox.c.notification_id.in_(list(notification_ids)))
    async with store.engine.connect() as conn:
        return list((await conn.execute(query)).all())


async def outbox_row(store: SqlStore, delivery_id: uuid.UUID) -> Any:
    async with store.engine.connect() as conn:
        row = (await conn.execute(sa.select(outbox).where(outbox.c.id == delivery_id))).first()
    assert row is not None, f"no outbox row {delivery_id}"
    return row


async def status_of(store: SqlStore, delivery_id: uuid.UUID) -> str:
    return str((await outbox_row(store, delivery_id)).status)


async def events_of(store: SqlStore, notification_id: uuid.UUID) -> list[tuple[str, str | None]]:
    """(event, channel) of one notification's analytics rows, in the order they were written."""
    async with store.engine.connect() as conn:
        rows = (await conn.execute(
            sa.select(analytics_events.c.event, analytics_events.c.channel)
            .where(analytics_events.c.notification_id == notification_id)
            .order_by(analytics_events.c.id)
        )).all()
    return [(row.event, row.channel) for row in rows]


async def with_profiles(store: SqlStore, profiles: Sequence[UserProfile], now: datetime) -> None:
    for profile in profiles:
        await store.put_user(profile, now)


async def publish_email(store: SqlStore, user_ids: Sequence[str], now: datetime, *,
                        key: str | None = None, **fields: Any) -> PublishOutcome:
    """Publish one notification to each user, queued on the email channel too."""
    values: dict[str, Any] = {"type": "comment", "data": {"post": 7}, "title": "Alice commented"}
    values.update(fields)
    batch = PublishBatch(
        publisher="pub-outbox", drafts=[NotificationDraft(user_id=u, **values) for u in user_ids],
        idempotency_key=key, fingerprint="fp" if key else None, outbound=("email",),
    )
    return await store.publish(batch, now, TTL)


def ids_of(outcome: PublishOutcome) -> list[uuid.UUID]:
    return [item.id for item in outcome.stored]
