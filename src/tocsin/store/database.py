"""One SQL database and how work runs on it: reads, write transactions, migrations, health.

Shared by every SQL adapter (the store, the jobs queue), so each is written against this and
none reaches into another's internals.

- Reads run on autocommit connections: one round trip per statement, no BEGIN and ROLLBACK
  around it. A read that must be consistent across tables is written as one statement.
- Writes run in a transaction (`transact`), retried when the database reports a lost race
  (deadlock, serialisation failure). On SQLite every write transaction is `BEGIN IMMEDIATE`
  and this process's writers queue on one lock, so there is one writer at a time and a
  transaction that reads before it writes can never fail to upgrade its lock.
- Any failure to reach the database is `StoreUnavailable` (see `store/errors.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tocsin.domain.errors import StoreUnavailable
from tocsin.store import migrate as migrations
from tocsin.store.engine import READ_OPTION, WRITE_OPTION, create_engine
from tocsin.store.errors import Retry, reraise

T = TypeVar("T")
_ATTEMPTS = 5


class SqlDatabase:
    def __init__(self, url: str, *, engine: AsyncEngine | None = None, pool_size: int = 10,
                 connect_timeout: float = 5.0, busy_timeout_ms: int = 10_000) -> None:
        self.url = url
        self._pool_size = pool_size
        self.engine = engine or create_engine(
            url, pool_size=pool_size, connect_timeout=connect_timeout,
            busy_timeout_ms=busy_timeout_ms,
        )
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.is_postgres = self.engine.dialect.name == "postgresql"
        #: `INSERT … ON CONFLICT` of this dialect.
        self.insert: Any = sqlite.insert if self.is_sqlite else postgresql.insert
        self._writer = self.engine.execution_options(**{WRITE_OPTION: True})
        self._reader = self.engine.execution_options(
            **({READ_OPTION: True} if self.is_sqlite else {"isolation_level": "AUTOCOMMIT"}))
        # SQLite has one writer; queueing here keeps this process's writers off the busy loop.
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    def for_update(self, select: Any) -> Any:
        """`select … FOR UPDATE` on PostgreSQL; SQLite's writes are serial already."""
        return select.with_for_update() if self.is_postgres else select

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads: each statement its own round trip, no transaction."""
        try:
            async with self._reader.connect() as conn:
                yield conn
        except Exception as exc:
            reraise(exc)

    @asynccontextmanager
    async def _write_once(self) -> AsyncIterator[AsyncConnection]:
        try:
            if self._write_lock is not None:
                async with self._write_lock, self._writer.begin() as conn:
                    yield conn
            else:
                async with self._writer.begin() as conn:
                    yield conn
        except Exception as exc:
            reraise(exc)

    async def transact(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `work(conn)` in a write transaction, retrying deadlocks and serialisation
        failures; committed when `work` returns, rolled back when it raises."""
        for attempt in range(_ATTEMPTS):
            try:
                async with self._write_once() as conn:
                    return await work(conn)
            except Retry:
                if attempt == _ATTEMPTS - 1:
                    raise StoreUnavailable("the database kept aborting the transaction") from None
                await asyncio.sleep(0.005 * 2**attempt)
        raise AssertionError("unreachable")

    async def migrate(self) -> None:
        """Bring the schema to the newest version. Safe when several processes call it."""
        try:
            await migrations.upgrade(self.engine, self.url)
        except Exception as exc:
            reraise(exc)

    async def warm(self) -> None:
        """Open the pool's connections side by side, then hand them back to it. Measured: in
        a storm of 5,000 streams reconnecting to a restarted node, the connections the pool
        opened under it took longer than the connect timeout with the loop that busy, and
        the streams waiting on them were closed (1013). SQLite opens a file: nothing to do."""
        if not self.is_postgres:
            return
        opened: list[AsyncConnection] = []

        async def one() -> None:
            opened.append(await self._reader.connect())

        # Every attempt is waited for (a failure is no error: the pool opens connections when
        # needed), so that every connection opened goes back to the pool.
        await asyncio.gather(*(one() for _ in range(self._pool_size)), return_exceptions=True)
        for conn in opened:
            await conn.close()

    async def ping(self) -> None:
        async with self.reading() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()
