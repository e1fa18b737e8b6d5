"""The migrations produce exactly the schema the code declares, on every backend."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from tocsin.store.schema import metadata
from tocsin.store.sql import SqlStore


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_migrated_schema_matches_the_declared_one(store: SqlStore) -> None:
    async with store.engine.connect() as conn:
        differences = await conn.run_sync(_differences)
    assert differences == []


async def test_migrations_record_their_head(store: SqlStore) -> None:
    from alembic.script import ScriptDirectory

    from tocsin.store.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    async with store.engine.connect() as conn:
        current = await conn.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision())
    assert current == head is not None
