"""Outbox rows and analytics rows, written in the transaction of the change they record."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from tocsin.domain.models import Notification
from tocsin.store.schema import analytics_events, outbox

PENDING, SENT, DEAD, SKIPPED = "pending", "sent", "dead", "skipped"


async def enqueue(conn: AsyncConnection, stored: Sequence[Notification],
                  channels: Sequence[str], now: datetime) -> None:
    """Queue every stored notification on every outbound channel; runs inside the publish."""
    rows, events = [], []
    for item in stored:
        for name in channels:
            rows.append({"id": uuid.uuid4(), "notification_id": item.id, "user_id": item.user_id,
                         "channel": name, "status": PENDING, "attempts": 0,
                         "available_at": now, "created_at": now, "updated_at": now})
            events.append(analytics_row(item.id, item.user_id, item.type, name, "queued", now))
    for start in range(0, len(rows), 500):
        await conn.execute(outbox.insert().values(rows[start:start + 500]))
        await conn.execute(analytics_events.insert().values(events[start:start + 500]))


def analytics_row(notification_id: uuid.UUID, user_id: str, type_: str, channel: str,
                  event: str, now: datetime) -> dict[str, Any]:
    return {"notification_id": notification_id, "user_id": user_id, "type": type_,
            "channel": channel, "event": event, "created_at": now}
