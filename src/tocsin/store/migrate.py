"""Run Alembic migrations, serialised across processes that start at the same time."""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tocsin.store.engine import sqlite_path

# Any constant works; it only has to be the same in every Tocsin process sharing a database.
_PG_LOCK_ID = 0x70C5_1A00


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", "tocsin.store:migrations")
    return config


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


@asynccontextmanager
async def _file_lock(path: Path) -> AsyncIterator[None]:
    fd = os.open(f"{path}.migrate-lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        # Waiting in a thread: a holder in this same process needs the event loop to finish.
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


async def upgrade(engine: AsyncEngine, url: str) -> None:
    """Upgrade to head. PostgreSQL: under an advisory lock; SQLite: under a file lock."""
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _PG_LOCK_ID})
            try:
                await conn.commit()
                await conn.run_sync(_upgrade)
                await conn.commit()
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _PG_LOCK_ID})
                await conn.commit()
        return
    path = sqlite_path(url)
    if path is None:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade)
        return
    async with _file_lock(path), engine.begin() as conn:
        await conn.run_sync(_upgrade)
