"""Analytics events: rows written in the transaction of the change they count, so the counts
can never disagree with what happened."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from tocsin.store.schema import analytics_events

_CHUNK = 500  # rows per INSERT: well under every backend's limit on bound parameters


def event_row(notification_id: uuid.UUID | None, user_id: str | None, type_: str | None,
              channel: str | None, event: str, now: datetime) -> dict[str, Any]:
    return {"notification_id": notification_id, "user_id": user_id, "type": type_,
            "channel": channel, "event": event, "created_at": now}


async def insert_events(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Write `rows` (from `event_row`) inside the caller's transaction."""
    for start in range(0, len(rows), _CHUNK):
        await conn.execute(analytics_events.insert(), rows[start:start + _CHUNK])
