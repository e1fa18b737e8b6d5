"""Topics and their subscribers.

A topic's row exists once a publisher subscribed someone to it or set its options; users
subscribe themselves only to a topic that exists and allows it, checked in the transaction
that subscribes them. Subscribers are read in user-id order, through the primary key
(`topic`, `user_id`), so a page or a fan-out batch is one index range whatever the topic's
size.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tocsin.domain.errors import Forbidden, NotFound
from tocsin.domain.topics import Topic
from tocsin.store.database import SqlDatabase
from tocsin.store.schema import topic_subscribers, topics

_CHUNK = 1000  # subscribers per INSERT: well under every backend's limit on bound parameters


class Topics:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def get(self, name: str) -> Topic:
        async with self._db.reading() as conn:
            found = await _topic(conn, name)
        if found is None:
            raise NotFound(f"no topic {name!r}")
        return found

    async def put(self, name: str, self_subscribe: bool, now: datetime) -> Topic:
        async def work(conn: AsyncConnection) -> Topic:
            upsert = self._db.insert(topics).values(name=name, self_subscribe=self_subscribe,
                                                    created_at=now, updated_at=now)
            await conn.execute(upsert.on_conflict_do_update(
                index_elements=["name"],
                set_={"self_subscribe": self_subscribe, "updated_at": now}))
            return Topic(name=name, self_subscribe=self_subscribe)

        return await self._db.transact(work)

    async def subscribe(self, name: str, user_ids: Sequence[str], now: datetime) -> int:
        """Subscribe the users, creating the topic if it is new; returns how many were not
        subscribed already."""
        async def work(conn: AsyncConnection) -> int:
            await conn.execute(self._db.insert(topics).values(
                name=name, created_at=now, updated_at=now,
            ).on_conflict_do_nothing(index_elements=["name"]))
            return await self._add(conn, name, user_ids, now)

        return await self._db.transact(work)

    async def subscribe_self(self, name: str, user_id: str, now: datetime) -> bool:
        async def work(conn: AsyncConnection) -> bool:
            await self._allowed(conn, name)
            return await self._add(conn, name, [user_id], now) == 1

        return await self._db.transact(work)

    async def unsubscribe(self, name: str, user_id: str) -> bool:
        async def work(conn: AsyncConnection) -> bool:
            return await self._remove(conn, name, user_id)

        return await self._db.transact(work)

    async def unsubscribe_self(self, name: str, user_id: str) -> bool:
        async def work(conn: AsyncConnection) -> bool:
            await self._allowed(conn, name)
            return await self._remove(conn, name, user_id)

        return await self._db.transact(work)

    async def subscribers(self, name: str, *, after: str | None, limit: int) -> list[str]:
        """Up to `limit` subscribers in user-id order, after `after`; NotFound for a topic
        that does not exist (an existing topic may have none)."""
        async with self._db.reading() as conn:
            if await _topic(conn, name) is None:
                raise NotFound(f"no topic {name!r}")
            query = (sa.select(topic_subscribers.c.user_id)
                     .where(topic_subscribers.c.topic == name)
                     .order_by(topic_subscribers.c.user_id).limit(limit))
            if after is not None:
                query = query.where(topic_subscribers.c.user_id > after)
            return list((await conn.execute(query)).scalars())

    async def _add(self, conn: AsyncConnection, name: str, user_ids: Sequence[str],
                   now: datetime) -> int:
        added = 0
        rows = [{"topic": name, "user_id": uid, "created_at": now} for uid in user_ids]
        for start in range(0, len(rows), _CHUNK):
            result = await conn.execute(
                self._db.insert(topic_subscribers)
                .on_conflict_do_nothing(index_elements=["topic", "user_id"])
                .returning(topic_subscribers.c.user_id),
                rows[start:start + _CHUNK])
            added += len(result.all())
        return added

    @staticmethod
    async def _remove(conn: AsyncConnection, name: str, user_id: str) -> bool:
        result = await conn.execute(topic_subscribers.delete().where(
            topic_subscribers.c.topic == name, topic_subscribers.c.user_id == user_id))
        return bool(result.rowcount)

    @staticmethod
    async def _allowed(conn: AsyncConnection, name: str) -> None:
        found = await _topic(conn, name)
        if found is None:
            raise NotFound(f"no topic {name!r}")
        if not found.self_subscribe:
            raise Forbidden(f"topic {name!r} does not let users subscribe themselves")


async def _topic(conn: AsyncConnection, name: str) -> Topic | None:
    row = (await conn.execute(sa.select(topics.c.name, topics.c.self_subscribe)
                              .where(topics.c.name == name))).first()
    return None if row is None else Topic(name=row.name, self_subscribe=row.self_subscribe)
