"""Database URLs to SQLAlchemy async engines, tuned per backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tocsin.domain.errors import SettingsError

#: Execution option set on the writer engine: SQLite then opens `BEGIN IMMEDIATE`, so a
#: transaction that reads before it writes can never fail to upgrade its lock.
WRITE_OPTION = "tocsin_write"
#: Execution option set on the reader engine of SQLite: no BEGIN at all, each statement runs
#: on its own. (PostgreSQL's reader uses the AUTOCOMMIT isolation level instead; on SQLite
#: that level would hand transaction control back to the driver when the connection returns
#: to the pool.)
READ_OPTION = "tocsin_read"


def async_url(url: str) -> str:
    """`sqlite:///x.db` → aiosqlite, `postgresql://…` → asyncpg; an explicit driver is kept."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    if parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL, or None for other backends and in-memory SQLite."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def create_engine(url: str, *, pool_size: int = 10, connect_timeout: float = 5.0,
                  busy_timeout_ms: int = 10_000) -> AsyncEngine:
    full = async_url(url)
    if full.startswith("sqlite"):
        return _sqlite_engine(full, busy_timeout_ms)
    if full.startswith("postgresql"):
        try:
            import asyncpg  # noqa: F401
        except ImportError:
            raise SettingsError(
                "TOCSIN_DATABASE_URL is PostgreSQL but asyncpg is not installed: "
                "pip install 'tocsin[postgres]'"
            ) from None
        return create_async_engine(
            full,
            # A fixed pool: overflow connections would be closed on return and opened again
            # under load. Requests beyond it wait for a connection, up to 30 s.
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=30,
            pool_recycle=1800,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
            # Reads run in autocommit: there is nothing to roll back when they end.
            skip_autocommit_rollback=True,
            connect_args={
                "timeout": connect_timeout,
                "command_timeout": 30,
                "server_settings": {"application_name": "tocsin"},
            },
        )
    raise SettingsError(f"TOCSIN_DATABASE_URL: unsupported database {url!r}")


def _sqlite_engine(url: str, busy_timeout_ms: int) -> AsyncEngine:
    path = sqlite_path(url)
    if path is not None and path.parent and not path.parent.exists():
        raise SettingsError(f"TOCSIN_DATABASE_URL: directory {path.parent} does not exist")
    engine = create_async_engine(
        url, json_serializer=_json_dumps, json_deserializer=orjson.loads,
        # No skip_autocommit_rollback here: the driver runs in autocommit (transactions are
        # begun by hand, see below), so skipping would leave those open in the pool.
        connect_args={"timeout": busy_timeout_ms / 1000},
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver, so we decide how each one begins.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable across app crashes under WAL
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        options = conn.get_execution_options()
        if options.get(READ_OPTION):
            return  # reads: each statement on its own, no transaction at all
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(WRITE_OPTION) else "BEGIN")

    return engine
