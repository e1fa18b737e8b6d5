"""grouped items, scheduled notifications, expiry index, topics and fan-outs

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("notifications") as batch_op:
        batch_op.add_column(sa.Column("group_key", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("group_count", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("group_actors", _JSON, nullable=True))
        batch_op.add_column(sa.Column("group_until", _WHEN, nullable=True))
        batch_op.add_column(sa.Column("updated_at", _WHEN, nullable=True))
        batch_op.add_column(sa.Column("send_at", _WHEN, nullable=True))
    op.create_index("ix_notifications_group", "notifications", ["user_id", "type", "group_key"],
                    postgresql_where=sa.text("group_key IS NOT NULL"),
                    sqlite_where=sa.text("group_key IS NOT NULL"))
    op.create_index("ix_notifications_expires_at", "notifications", ["expires_at"],
                    postgresql_where=sa.text("expires_at IS NOT NULL"),
                    sqlite_where=sa.text("expires_at IS NOT NULL"))
    op.create_table(
        "topics",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("self_subscribe", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_topics"),
    )
    op.create_table(
        "topic_subscribers",
        sa.Column("topic", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("topic", "user_id", name="pk_topic_subscribers"),
    )
    op.create_table(
        "fanouts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("topic", sa.String(length=128), nullable=False),
        sa.Column("publisher", sa.String(length=64), nullable=False),
        sa.Column("request", _JSON, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("processed", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("cursor", sa.String(length=255), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_fanouts"),
    )


def downgrade() -> None:
    op.drop_table("fanouts")
    op.drop_table("topic_subscribers")
    op.drop_table("topics")
    op.drop_index("ix_notifications_expires_at", table_name="notifications")
    op.drop_index("ix_notifications_group", table_name="notifications")
    with op.batch_alter_table("notifications") as batch_op:
        for column in ("send_at", "updated_at", "group_until", "group_actors", "group_count",
                       "group_key"):
            batch_op.drop_column(column)
