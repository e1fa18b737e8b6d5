"""Publisher API keys, stored by the hash of their secret only."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tocsin.domain.errors import NotFound
from tocsin.domain.models import ApiKey
from tocsin.store.database import SqlDatabase
from tocsin.store.mapping import api_key_from
from tocsin.store.schema import api_keys


class ApiKeys:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def create(self, key_id: str, name: str, secret_hash: str, now: datetime) -> ApiKey:
        async def work(conn: AsyncConnection) -> None:
            await conn.execute(api_keys.insert().values(
                id=key_id, name=name, secret_hash=secret_hash, created_at=now))

        await self._db.transact(work)
        return ApiKey(id=key_id, name=name, created_at=now)

    async def find(self, secret_hash: str) -> ApiKey | None:
        async with self._db.reading() as conn:
            row = (await conn.execute(
                sa.select(api_keys).where(api_keys.c.secret_hash == secret_hash))).first()
        return None if row is None else api_key_from(row)

    async def all(self) -> list[ApiKey]:
        async with self._db.reading() as conn:
            rows = (await conn.execute(
                sa.select(api_keys).order_by(api_keys.c.created_at.desc()))).all()
        return [api_key_from(row) for row in rows]

    async def revoke(self, key_id: str, now: datetime) -> ApiKey:
        async def work(conn: AsyncConnection) -> ApiKey:
            await conn.execute(
                api_keys.update()
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now))
            row = (await conn.execute(
                sa.select(api_keys).where(api_keys.c.id == key_id))).first()
            if row is None:
                raise NotFound(f"no API key with id {key_id!r}")
            return api_key_from(row)

        return await self._db.transact(work)
