"""Types defined or changed through the API (the catalog merges them over the built-in ones
and those of `tocsin.toml`). A row without a definition removes a type from this server."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tocsin.store.database import SqlDatabase
from tocsin.store.schema import notification_types


class TypeRows:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def all(self) -> dict[str, dict[str, Any] | None]:
        async with self._db.reading() as conn:
            rows = (await conn.execute(sa.select(notification_types.c.name,
                                                 notification_types.c.definition))).all()
        return {row.name: row.definition for row in rows}

    async def put(self, name: str, definition: dict[str, Any] | None, now: datetime) -> None:
        async def work(conn: AsyncConnection) -> None:
            values = {"definition": definition, "updated_at": now}
            stmt = self._db.insert(notification_types).values(name=name, **values)
            await conn.execute(stmt.on_conflict_do_update(index_elements=["name"],
                                                          set_=values))

        await self._db.transact(work)
