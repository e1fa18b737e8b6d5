"""Looking at the database directly, to check what the API says against what is stored."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

from tocsin.jobs.base import SWEEP
from tocsin.store.schema import jobs, metadata, notifications, users
from tocsin.store.sql import SqlStore

S = TypeVar("S", bound=SqlStore)


@asynccontextmanager
async def migrated(store: S) -> AsyncIterator[S]:
    """`store`, migrated, closed afterwards."""
    await store.migrate()
    try:
        yield store
    finally:
        await store.close()


_template_lock = threading.Lock()
_template: Path | None = None
_template_dir: tempfile.TemporaryDirectory[str] | None = None


def migrated_sqlite(path: Path) -> str:
    """The URL of a SQLite file at `path` holding the migrated, empty schema: a copy of one
    migrated once per run (migrating a new file costs some 0.15 s, and hundreds of tests each
    start from one)."""
    global _template, _template_dir
    with _template_lock:
        if _template is None:
            _template_dir = tempfile.TemporaryDirectory(prefix="tocsin-template-")
            made = Path(_template_dir.name) / "template.db"
            # In a thread of its own: callers may be inside a running event loop.
            worker = threading.Thread(target=asyncio.run, args=(_migrate(made),))
            worker.start()
            worker.join()
            if not made.exists():
                raise RuntimeError("the SQLite template could not be migrated")
            _template = made
    shutil.copyfile(_template, path)
    return f"sqlite:///{path}"


async def _migrate(path: Path) -> None:
    the_store = SqlStore(f"sqlite:///{path}")
    try:
        await the_store.migrate()
    finally:
        await the_store.close()  # the last connection's close checkpoints the WAL into it


async def row_counts(store: SqlStore) -> dict[str, int]:
    """How many rows every table holds: compared before and after a refused request."""
    counts: dict[str, int] = {}
    async with store.engine.connect() as conn:
        for table in metadata.sorted_tables:
            query = sa.select(sa.func.count()).select_from(table)
            if table is jobs:  # the worker's own periodic sweep comes and goes on its own
                query = query.where(jobs.c.kind != SWEEP)
            counts[table.name] = (await conn.execute(query)).scalar_one()
    return counts


async def counter_and_rows(store: SqlStore, user_id: str) -> tuple[int, int, int]:
    """(the stored unread counter, the unread rows in the inbox counted, the stored last
    seq). Rows without a seq (suppressed, scheduled, expired) are not in the inbox."""
    async with store.engine.connect() as conn:
        counter = (await conn.execute(
            sa.select(users.c.unread_count, users.c.last_seq).where(users.c.id == user_id)
        )).first()
        unread = (await conn.execute(
            sa.select(sa.func.count()).select_from(notifications).where(
                notifications.c.user_id == user_id, notifications.c.read == sa.false(),
                notifications.c.seq.is_not(None))
        )).scalar_one()
    if counter is None:
        return 0, unread, 0
    return counter[0], unread, counter[1]


async def assert_counter_matches(store: SqlStore, user_id: str) -> int:
    """The counter equals the unread rows; returns it."""
    counter, unread, _ = await counter_and_rows(store, user_id)
    assert counter == unread, f"unread counter {counter} drifted from {unread} unread rows"
    return counter


async def seqs_of(store: SqlStore, user_id: str) -> list[int]:
    async with store.engine.connect() as conn:
        return list((await conn.execute(
            sa.select(notifications.c.seq).where(notifications.c.user_id == user_id)
            .order_by(notifications.c.seq)
        )).scalars())


#: Deep enough that orjson (limit 255) can store it but not encode it inside a response.
ENCODER_LIMIT_DEPTH = 254


def deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


async def poison(store: SqlStore, notification_id: str) -> None:
    """Give a stored notification data that can be stored but not encoded back."""
    async with store.engine.begin() as conn:
        await conn.execute(notifications.update()
                           .where(notifications.c.id == uuid.UUID(notification_id))
                           .values(data=deep(ENCODER_LIMIT_DEPTH)))
