"""Fan-outs: a publish to a topic, recorded before it is acknowledged, expanded in steps.

- `start` records the fan-out and queues its job (kind `fanout`) in one transaction, with the
  Idempotency-Key's claim and response: the 202 means both are committed, and a retry gets the
  first fan-out's id and records nothing.
- `advance` runs inside a batch's publish transaction (`store/publishing.py`): a compare and
  set on the cursor (`UPDATE … WHERE cursor = <where the step began>`). On PostgreSQL the
  UPDATE locks the row, so a second worker on the same fan-out waits for the first to commit,
  re-reads the row, finds the cursor moved and rolls its batch back; on SQLite writers are
  serial. Either way a subscriber's notification and the cursor past them commit together.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tocsin.domain.errors import NotFound
from tocsin.domain.topics import Fanout, FanoutStarted, FanoutStep, StaleFanout
from tocsin.jobs.base import FANOUT, JobDraft
from tocsin.jobs.sql import insert_jobs
from tocsin.store.database import SqlDatabase
from tocsin.store.idempotency import IdempotencyKeys
from tocsin.store.schema import fanouts, topic_subscribers, topics


class FanoutRecords:
    def __init__(self, db: SqlDatabase, idempotency: IdempotencyKeys) -> None:
        self._db = db
        self._idempotency = idempotency

    async def start(self, topic: str, publisher: str, request: dict[str, Any],
                    exclude: Sequence[str], now: datetime, ttl_seconds: int, *,
                    idempotency_key: str | None = None, fingerprint: str | None = None
                    ) -> FanoutStarted:
        async def work(conn: AsyncConnection) -> FanoutStarted:
            if idempotency_key is not None:
                earlier = await self._idempotency.claim(conn, publisher, idempotency_key,
                                                        fingerprint, now, ttl_seconds)
                if earlier is not None:
                    return FanoutStarted(fanout_id=uuid.UUID(earlier["fanout_id"]),
                                         recipients=int(earlier["recipients"]), replayed=True)
            known = (await conn.execute(
                sa.select(topics.c.name).where(topics.c.name == topic))).first()
            if known is None:  # rolled back: the key's claim goes with it
                raise NotFound(f"no topic {topic!r}", details={"field": "topic"})
            recipients = (await conn.execute(
                _subscribers(sa.select(sa.func.count()), topic, exclude))).scalar_one()
            started = FanoutStarted(fanout_id=uuid.uuid4(), recipients=int(recipients))
            await conn.execute(fanouts.insert().values(
                id=started.fanout_id, topic=topic, publisher=publisher, request=request,
                status="running", recipients=started.recipients, processed=0, cursor=None,
                created_at=now, updated_at=now))
            await insert_jobs(self._db, conn, [JobDraft(
                kind=FANOUT, due_at=now, payload={"fanout_id": str(started.fanout_id)},
                key=f"fanout:{started.fanout_id}")], now)
            if idempotency_key is not None:
                await self._idempotency.record(conn, publisher, idempotency_key,
                                               started.to_json())
            return started

        return await self._db.transact(work)

    async def get(self, fanout_id: uuid.UUID) -> Fanout:
        async with self._db.reading() as conn:
            row = (await conn.execute(sa.select(fanouts).where(fanouts.c.id == fanout_id))
                   ).first()
        if row is None:
            raise NotFound("no fan-out with this id")
        return Fanout(id=row.id, topic=row.topic, publisher=row.publisher, request=row.request,
                      status=row.status, recipients=row.recipients, processed=row.processed,
                      cursor=row.cursor)

    async def next_recipients(self, topic: str, *, after: str | None,
                              exclude: Sequence[str], limit: int) -> list[str]:
        """The next `limit` subscribers after `after`, in user-id order, but the excluded."""
        query = _subscribers(sa.select(topic_subscribers.c.user_id), topic, exclude)
        if after is not None:
            query = query.where(topic_subscribers.c.user_id > after)
        async with self._db.reading() as conn:
            return list((await conn.execute(
                query.order_by(topic_subscribers.c.user_id).limit(limit))).scalars())

    async def advance(self, conn: AsyncConnection, step: FanoutStep, now: datetime) -> None:
        """Inside the step's batch transaction: move the cursor, or raise `StaleFanout`."""
        moved = await conn.execute(
            fanouts.update()
            .where(fanouts.c.id == step.fanout_id, fanouts.c.status == "running",
                   _at(step.after))
            .values(cursor=step.to, processed=fanouts.c.processed + step.count,
                    updated_at=now))
        if moved.rowcount != 1:
            raise StaleFanout(step.fanout_id)

    async def finish(self, fanout_id: uuid.UUID, cursor: str | None, now: datetime) -> bool:
        """Mark the fan-out done if its cursor is still `cursor` (nothing was expanded after
        the last subscriber was found missing); False if it moved or was done already."""
        async def work(conn: AsyncConnection) -> bool:
            result = await conn.execute(
                fanouts.update()
                .where(fanouts.c.id == fanout_id, fanouts.c.status == "running", _at(cursor))
                .values(status="done", updated_at=now))
            return bool(result.rowcount == 1)

        return await self._db.transact(work)


def _at(cursor: str | None) -> sa.ColumnElement[bool]:
    return fanouts.c.cursor.is_(None) if cursor is None else fanouts.c.cursor == cursor


def _subscribers(query: sa.Select[Any], topic: str, exclude: Sequence[str]) -> sa.Select[Any]:
    query = query.select_from(topic_subscribers).where(topic_subscribers.c.topic == topic)
    if exclude:
        query = query.where(topic_subscribers.c.user_id.not_in(list(exclude)))
    return query
