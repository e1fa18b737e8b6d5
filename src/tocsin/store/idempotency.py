"""Idempotency keys: a retried publish returns the first response and writes nothing.

Keys are scoped per publisher. A request claims its key inside its own publish transaction
(`INSERT … ON CONFLICT DO NOTHING`); on PostgreSQL a racer's insert waits on the first
request's uncommitted row, then sees the conflict and reads the committed response, so all
racers get the same answer. The response is kept as plain JSON (not JSONB), so a replay is the
first response byte for byte. Publishes to users and to topics share the keys: a response is
any JSON (receipts, or a fan-out's id), and the fingerprint tells the two bodies apart.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tocsin.domain.errors import IdempotencyInFlight, IdempotencyMismatch
from tocsin.store.database import SqlDatabase
from tocsin.store.errors import Retry
from tocsin.store.schema import idempotency_keys


class IdempotencyKeys:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def claim(self, conn: AsyncConnection, publisher: str, key: str,
                    fingerprint: str | None, now: datetime, ttl_seconds: int) -> Any:
        """Claim `key` for this request: None, or the committed response of the earlier
        request that holds it. Raises `IdempotencyMismatch` for another body and
        `IdempotencyInFlight` while the earlier request has not committed."""
        key_filter = self._filter(publisher, key)
        await conn.execute(
            idempotency_keys.delete().where(key_filter, idempotency_keys.c.expires_at <= now))
        claim = (
            self._db.insert(idempotency_keys)
            .values(publisher=publisher, key=key, fingerprint=fingerprint, created_at=now,
                    expires_at=now + timedelta(seconds=ttl_seconds))
            .on_conflict_do_nothing(index_elements=["publisher", "key"])
            .returning(idempotency_keys.c.key)
        )
        if (await conn.execute(claim)).first() is not None:
            return None
        row = (await conn.execute(
            sa.select(idempotency_keys.c.fingerprint, idempotency_keys.c.response)
            .where(key_filter)
        )).first()
        if row is None:  # the holder rolled back between our insert and select: run again
            raise Retry
        if row.fingerprint != fingerprint:
            raise IdempotencyMismatch(
                "this Idempotency-Key was used with a different request body",
                details={"idempotency_key": key},
            )
        if row.response is None:
            raise IdempotencyInFlight("a request with this Idempotency-Key is still in flight")
        return row.response

    async def record(self, conn: AsyncConnection, publisher: str, key: str,
                     response: Any) -> None:
        """Keep the response of the request that claimed the key, in its transaction."""
        await conn.execute(idempotency_keys.update().where(self._filter(publisher, key))
                           .values(response=response))

    async def purge(self, now: datetime) -> int:
        async def work(conn: AsyncConnection) -> int:
            result = await conn.execute(
                idempotency_keys.delete().where(idempotency_keys.c.expires_at <= now))
            return int(result.rowcount or 0)

        return await self._db.transact(work)

    @staticmethod
    def _filter(publisher: str, key: str) -> sa.ColumnElement[bool]:
        return sa.and_(idempotency_keys.c.publisher == publisher,
                       idempotency_keys.c.key == key)
