"""The reads of an opening stream, on asyncpg directly: a user's count, and a replay.

Every stream that opens reads its user's count, and one that resumes reads what it missed. In a
reconnect storm (`bench/storm.py`: 5,000 streams back at once after a node's restart) these two
reads were half of what a reconnect cost the server, and most of that was SQLAlchemy's own
work around two one-line statements: the statements' cache keys, compiling their parameters,
the result machinery, the bridge from asyncio to its greenlets. Here they are two fixed SQL
texts run on the pooled connection's asyncpg connection (prepared once per connection by
asyncpg), as the publish path's write already is (`store/merged_write.py`).

The rows come back as the SQLAlchemy path would give them: each column's value goes through
that column type's own result processing for this dialect (UTC datetimes, UUIDs), and JSON is
decoded by the codecs SQLAlchemy's asyncpg dialect installs on every connection it opens. A
contract test compares the two paths field by field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Dialect

from tocsin.domain.models import Notification, UnreadCount
from tocsin.store.mapping import NOTIFICATION_FIELDS
from tocsin.store.schema import notifications

COUNT_SQL = "SELECT unread_count, last_seq, count_version FROM users WHERE id = $1"
# The column names are the model's field names (store/mapping.py), never input: quoted, and
# fixed when this module loads.
_COLUMNS = ", ".join(f'"{name}"' for name in NOTIFICATION_FIELDS)
AFTER_SQL = (f"SELECT {_COLUMNS} FROM notifications "  # noqa: S608
             "WHERE user_id = $1 AND seq > $2 ORDER BY seq LIMIT $3")

Processor = Callable[[Any], Any] | None


def processors(dialect: Dialect) -> tuple[Processor, ...]:
    """Per field of `Notification`, what SQLAlchemy does to that column's value on the way
    out, for `dialect` (None where it does nothing)."""
    found: list[Processor] = []
    for name in NOTIFICATION_FIELDS:
        column_type = notifications.c[name].type.dialect_impl(dialect)
        found.append(column_type.result_processor(dialect, None))
    return tuple(found)


async def count_on(pg: Any, user_id: str) -> UnreadCount:
    """The counter and the seq it is valid at; (0, 0) for a user never published to."""
    row = await pg.fetchrow(COUNT_SQL, user_id)
    return UnreadCount(0, 0) if row is None else UnreadCount(row[0], row[1], row[2])


async def after_on(pg: Any, procs: tuple[Processor, ...], user_id: str, after: int,
                   limit: int) -> list[Notification]:
    rows = await pg.fetch(AFTER_SQL, user_id, after, limit)
    fields = NOTIFICATION_FIELDS
    return [Notification(**{name: (value if proc is None else proc(value))
                            for name, proc, value in zip(fields, procs, row, strict=True)})
            for row in rows]
