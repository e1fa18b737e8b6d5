"""The one schema for SQLite and PostgreSQL. Alembic migrations must produce exactly this.

Indexes are the ones the queries need: a user's list by seq, a user's unread items by seq, a
user's items of one type by seq, and the retention sweep's candidates by age. Nothing on the
hot path scans a table, and nothing that runs periodically does either (a query that reads
the whole table to find nothing grows with it; `bench/rows.py` measures a million rows).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite keeps no zone, so we add it back)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER only
UserId = sa.String(255)


def _created() -> sa.Column[Any]:
    return sa.Column("created_at", UtcDateTime(), nullable=False)


users = sa.Table(
    "users",
    metadata,
    sa.Column("id", UserId, primary_key=True),
    sa.Column("email", sa.String(320)),
    sa.Column("name", sa.String(255)),
    sa.Column("locale", sa.String(35)),
    sa.Column("timezone", sa.String(64)),
    # The unread counter and the last seq change in the same transaction as every insert and
    # every read change, under this row's lock; they are never recomputed with COUNT(*).
    sa.Column("unread_count", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("last_seq", sa.BigInteger(), nullable=False, server_default="0"),
    # Bumped by every change of the counter (publishes and reads alike), so two counts valid at
    # the same seq are still ordered.
    sa.Column("count_version", sa.BigInteger(), nullable=False, server_default="0"),
    _created(),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

#: What the retention sweep may delete once it is old enough: out of the inbox, or read. Per
#: dialect, as its partial index and the purge both spell it.
PURGEABLE_NOTIFICATION = {
    "postgresql": "status IN ('expired', 'cancelled', 'suppressed') OR read",
    "sqlite": "status IN ('expired', 'cancelled', 'suppressed') OR read = 1",
}
notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("user_id", UserId, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    # None for a notification kept out of the inbox (its user turned the type off, or its
    # live channel): it takes no seq, no count and no stream event, and stays for its
    # outbound deliveries and for what analytics say about it.
    sa.Column("seq", sa.BigInteger()),
    sa.Column("type", sa.String(128), nullable=False),
    sa.Column("title", sa.Text()),
    sa.Column("message", sa.Text()),
    sa.Column("data", Json, nullable=False),
    sa.Column("action_url", sa.Text()),
    sa.Column("priority", sa.String(8), nullable=False, server_default="normal"),
    sa.Column("read", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("read_at", UtcDateTime()),
    _created(),
    sa.Column("expires_at", UtcDateTime()),
    sa.Column("idempotency_key", sa.String(255)),
    sa.Column("publisher", sa.String(64)),
    # Sent during the user's quiet hours: clients may show it without a sound.
    sa.Column("quiet", sa.Boolean(), nullable=False, server_default=sa.false()),
    # `created` (in the inbox) or `suppressed` (kept out of it), and the receipt's decision
    # per channel, as the publisher was told.
    sa.Column("status", sa.String(16), nullable=False, server_default="created"),
    sa.Column("decisions", Json),
    # A grouped item: its key, how many notifications it stands for, the distinct actors
    # (newest first), and when its window closes (measured from its first notification).
    sa.Column("group_key", sa.String(255)),
    sa.Column("group_count", sa.Integer()),
    sa.Column("group_actors", Json),
    sa.Column("group_until", UtcDateTime()),
    # When a grouped item last changed; None for one never updated.
    sa.Column("updated_at", UtcDateTime()),
    # A scheduled notification is released then (status `scheduled` until it is).
    sa.Column("send_at", UtcDateTime()),
    sa.UniqueConstraint("user_id", "seq"),
    sa.Index(
        "ix_notifications_unread",
        "user_id",
        "seq",
        postgresql_where=sa.text("NOT read"),
        sqlite_where=sa.text("read = 0"),
    ),
    sa.Index("ix_notifications_user_id_type_seq", "user_id", "type", "seq"),
    sa.Index("ix_notifications_group", "user_id", "type", "group_key",
             postgresql_where=sa.text("group_key IS NOT NULL"),
             sqlite_where=sa.text("group_key IS NOT NULL")),
    sa.Index("ix_notifications_expires_at", "expires_at",
             postgresql_where=sa.text("expires_at IS NOT NULL"),
             sqlite_where=sa.text("expires_at IS NOT NULL")),
    # The retention sweep's candidates, by age: without it, each sweep read the whole table to
    # find that nothing was old enough (260 ms at 1,000,000 rows, once a minute, holding
    # SQLite's one writer meanwhile). The purge states the same condition, word for word, so
    # either database proves the index applies (store/expiry.py).
    sa.Index("ix_notifications_purgeable", "created_at",
             postgresql_where=sa.text(PURGEABLE_NOTIFICATION["postgresql"]),
             sqlite_where=sa.text(PURGEABLE_NOTIFICATION["sqlite"])),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("publisher", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    # Plain JSON, not JSONB: a replay must return the first response byte for byte.
    sa.Column("response", sa.JSON()),
    _created(),
    sa.Column("expires_at", UtcDateTime(), nullable=False, index=True),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
    _created(),
    sa.Column("last_used_at", UtcDateTime()),
    sa.Column("revoked_at", UtcDateTime()),
)

preferences = sa.Table(
    "preferences",
    metadata,
    sa.Column("user_id", UserId, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("type", sa.String(128), primary_key=True),
    # None: the user changed only channels, and whether the type is on stays the default.
    sa.Column("enabled", sa.Boolean()),
    sa.Column("channels", Json, nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

# A user's switches over every type: the global mute, one switch per category, quiet hours.
user_settings = sa.Table(
    "user_settings",
    metadata,
    sa.Column("user_id", UserId, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("muted", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("categories", Json, nullable=False),
    sa.Column("quiet_hours", Json),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

# Types defined or changed through the API; `definition` None removes a type (a built-in or
# one from tocsin.toml) from this server.
notification_types = sa.Table(
    "notification_types",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("definition", Json),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

devices = sa.Table(
    "devices",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("user_id", UserId, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False,
              index=True),
    sa.Column("kind", sa.String(16), nullable=False),  # fcm | apns | webpush
    sa.Column("address", sa.Text(), nullable=False),  # device token or Web Push endpoint
    sa.Column("keys", Json),  # Web Push p256dh and auth
    _created(),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("kind", "address"),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False, server_default="delivery"),
    # Idempotent queueing: a job with a key already present is not queued again.
    sa.Column("key", sa.String(255), unique=True),
    sa.Column("payload", Json),
    # Deliveries name what they deliver (other kinds leave these empty).
    sa.Column("notification_id", sa.Uuid(),
              sa.ForeignKey("notifications.id", ondelete="CASCADE"), index=True),
    sa.Column("user_id", UserId),
    sa.Column("channel", sa.String(16)),
    sa.Column("status", sa.String(16), nullable=False),  # pending | done | skipped | dead
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("available_at", UtcDateTime(), nullable=False),  # due at
    sa.Column("lease_until", UtcDateTime()),
    # Who holds the lease: a worker whose lease expired and was taken over cannot record a
    # result over the new holder's.
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("last_error", sa.Text()),
    _created(),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Index("ix_jobs_status_available_at", "status", "available_at"),
    # Finished jobs by age, for the retention sweep (as for notifications above): a range of
    # each finished status, where `status, available_at` read every finished job.
    sa.Index("ix_jobs_status_updated_at", "status", "updated_at"),
)

analytics_events = sa.Table(
    "analytics_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("notification_id", sa.Uuid()),
    sa.Column("user_id", UserId),
    sa.Column("type", sa.String(128), nullable=False),
    sa.Column("channel", sa.String(16)),
    sa.Column("event", sa.String(16), nullable=False),
    _created(),
    sa.Index("ix_analytics_events_type_created_at", "type", "created_at"),
    sa.Index("ix_analytics_events_created_at", "created_at"),
)

# Topics: named audiences a publisher notifies at once.
topics = sa.Table(
    "topics",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    # Users may subscribe and unsubscribe themselves (POST/DELETE /v1/me/topics/{topic}).
    sa.Column("self_subscribe", sa.Boolean(), nullable=False, server_default=sa.false()),
    _created(),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

topic_subscribers = sa.Table(
    "topic_subscribers",
    metadata,
    sa.Column("topic", sa.String(128), primary_key=True),
    sa.Column("user_id", UserId, primary_key=True),
    _created(),
)

# A publish to a topic: recorded first (the 202), expanded by the worker in batches.
fanouts = sa.Table(
    "fanouts",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("topic", sa.String(128), nullable=False),
    sa.Column("publisher", sa.String(64), nullable=False),
    sa.Column("request", Json, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # running | done
    sa.Column("recipients", sa.Integer(), nullable=False),
    sa.Column("processed", sa.Integer(), nullable=False, server_default="0"),
    # The last subscriber expanded (in user-id order): where a resumed expansion goes on.
    sa.Column("cursor", UserId),
    _created(),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)
