"""Reading the jobs table and its analytics straight from the database, and queueing emails.

Jobs are claimed across the whole database, not per user, so a test that claims must own its
database: the modules that claim each take a PostgreSQL database of their own (not the
session's shared one), and `clear_jobs` empties the queue before each test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tocsin.domain.drafts import (
    LIVE_CHANNEL,
    ChannelDecision,
    NotificationDraft,
    PublishBatch,
    PublishOutcome,
)
from tocsin.domain.models import UserProfile
from tocsin.store.schema import analytics_events, jobs
from tocsin.store.sql import SqlStore

TTL = 24 * 3600


def email_channels() -> dict[str, ChannelDecision]:
    """What the pipeline decides for a publish with `"channels": ["web", "email"]`."""
    return {LIVE_CHANNEL: ChannelDecision.live(), "email": ChannelDecision.queued()}


async def clear_jobs(store: SqlStore) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(jobs.delete())


async def job_rows(store: SqlStore, notification_ids: Iterable[uuid.UUID] | None = None
                   ) -> list[Any]:
    """The jobs rows (of these notifications), oldest first."""
    query = sa.select(jobs).order_by(jobs.c.created_at, jobs.c.id)
    if notification_ids is not None:
        query = query.where(jobs.c.notification_id.in_(list(notification_ids)))
    async with store.engine.connect() as conn:
        return list((await conn.execute(query)).all())


async def job_row(store: SqlStore, job_id: uuid.UUID) -> Any:
    async with store.engine.connect() as conn:
        row = (await conn.execute(sa.select(jobs).where(jobs.c.id == job_id))).first()
    assert row is not None, f"no jobs row {job_id}"
    return row


async def status_of(store: SqlStore, job_id: uuid.UUID) -> str:
    return str((await job_row(store, job_id)).status)


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
    """Publish one notification to each user, live and queued on the email channel too
    (`channels=` gives other decisions, the same for every user)."""
    values: dict[str, Any] = {"type": "comment", "data": {"post": 7}, "title": "Alice commented",
                              "channels": email_channels()}
    values.update(fields)
    batch = PublishBatch(
        publisher="pub-jobs",
        drafts=[NotificationDraft(user_id=u, **{**values, "channels": dict(values["channels"])})
                for u in user_ids],
        idempotency_key=key, fingerprint="fp" if key else None,
    )
    return await store.publish(batch, now, TTL)


def ids_of(outcome: PublishOutcome) -> list[uuid.UUID]:
    return [item.id for item in outcome.stored]
