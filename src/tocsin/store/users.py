"""User profiles: the address book of the outbound channels (email, locale, time zone).

A profile write never touches the user's counter or seq: those belong to publishes and reads.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tocsin.domain.errors import NotFound
from tocsin.domain.models import UserProfile
from tocsin.store.database import SqlDatabase
from tocsin.store.mapping import profile_from, profile_values
from tocsin.store.schema import users


def ensure_users(db: SqlDatabase) -> Any:
    """The statement that makes each user's row (parameters `id`, `now`) if it is not there
    yet, and leaves an existing one as it is: for what refers to a user before, or without,
    their first notification in the inbox (preferences, grouped items, notifications kept out
    of the inbox). One cached statement, executed with one parameter set per user."""
    return db.insert(users).values(
        id=sa.bindparam("id"), created_at=sa.bindparam("now"),
        updated_at=sa.bindparam("now")).on_conflict_do_nothing(index_elements=["id"])


class Profiles:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def put(self, profile: UserProfile, now: datetime) -> UserProfile:
        fields = profile_values(profile)

        async def work(conn: AsyncConnection) -> None:
            stmt = self._db.insert(users).values(id=profile.id, created_at=now,
                                                 updated_at=now, **fields)
            await conn.execute(stmt.on_conflict_do_update(
                index_elements=["id"], set_={**fields, "updated_at": now}))

        await self._db.transact(work)
        return profile

    async def get(self, user_id: str) -> UserProfile:
        async with self._db.reading() as conn:
            row = (await conn.execute(sa.select(users).where(users.c.id == user_id))).first()
        if row is None:
            raise NotFound("no such user")
        return profile_from(row)
