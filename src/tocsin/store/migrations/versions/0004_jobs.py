"""the outbox becomes the jobs queue: kinds, keys, payloads

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.rename_table("outbox", "jobs")
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=32), nullable=False,
                                      server_default="delivery"))
        batch_op.add_column(sa.Column("key", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("payload", _JSON, nullable=True))
        batch_op.alter_column("notification_id", existing_type=sa.Uuid(), nullable=True)
        batch_op.alter_column("user_id", existing_type=sa.String(length=255), nullable=True)
        batch_op.alter_column("channel", existing_type=sa.String(length=16), nullable=True)
        batch_op.drop_index("ix_outbox_notification_id")
        batch_op.drop_index("ix_outbox_status_available_at")
        batch_op.drop_constraint("fk_outbox_notification_id_notifications", type_="foreignkey")
        batch_op.drop_constraint("pk_outbox", type_="primary")
        batch_op.create_primary_key("pk_jobs", ["id"])
        batch_op.create_foreign_key("fk_jobs_notification_id_notifications", "notifications",
                                    ["notification_id"], ["id"], ondelete="CASCADE")
        batch_op.create_index("ix_jobs_notification_id", ["notification_id"])
        batch_op.create_index("ix_jobs_status_available_at", ["status", "available_at"])
        batch_op.create_unique_constraint("uq_jobs_key", ["key"])
    op.execute("UPDATE jobs SET status = 'done' WHERE status = 'sent'")


def downgrade() -> None:
    op.execute("UPDATE jobs SET status = 'sent' WHERE status = 'done'")
    op.execute("DELETE FROM jobs WHERE kind <> 'delivery'")
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_constraint("uq_jobs_key", type_="unique")
        batch_op.drop_index("ix_jobs_status_available_at")
        batch_op.drop_index("ix_jobs_notification_id")
        batch_op.drop_constraint("fk_jobs_notification_id_notifications", type_="foreignkey")
        batch_op.drop_constraint("pk_jobs", type_="primary")
        batch_op.create_primary_key("pk_outbox", ["id"])
        batch_op.create_foreign_key("fk_outbox_notification_id_notifications", "notifications",
                                    ["notification_id"], ["id"], ondelete="CASCADE")
        batch_op.create_index("ix_outbox_notification_id", ["notification_id"])
        batch_op.create_index("ix_outbox_status_available_at", ["status", "available_at"])
        batch_op.alter_column("channel", existing_type=sa.String(length=16), nullable=False)
        batch_op.alter_column("user_id", existing_type=sa.String(length=255), nullable=False)
        batch_op.alter_column("notification_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.drop_column("payload")
        batch_op.drop_column("key")
        batch_op.drop_column("kind")
    op.rename_table("jobs", "outbox")
