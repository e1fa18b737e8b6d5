"""types, preferences and quiet hours: suppressed notifications take no seq

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("notifications") as batch_op:
        batch_op.alter_column("seq", existing_type=sa.BigInteger(), nullable=True)
        batch_op.add_column(sa.Column("quiet", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column("status", sa.String(length=16), nullable=False,
                                      server_default="created"))
        batch_op.add_column(sa.Column("decisions", _JSON, nullable=True))
    with op.batch_alter_table("preferences") as batch_op:
        batch_op.alter_column("enabled", existing_type=sa.Boolean(), nullable=True,
                              server_default=None)
    op.create_table(
        "user_settings",
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("muted", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("categories", _JSON, nullable=False),
        sa.Column("quiet_hours", _JSON, nullable=True),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name="fk_user_settings_user_id_users"),
        sa.PrimaryKeyConstraint("user_id", name="pk_user_settings"),
    )
    op.create_table(
        "notification_types",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("definition", _JSON, nullable=True),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_notification_types"),
    )


def downgrade() -> None:
    op.drop_table("notification_types")
    op.drop_table("user_settings")
    op.execute("DELETE FROM notifications WHERE seq IS NULL")
    op.execute("UPDATE preferences SET enabled = true WHERE enabled IS NULL")
    with op.batch_alter_table("preferences") as batch_op:
        batch_op.alter_column("enabled", existing_type=sa.Boolean(), nullable=False,
                              server_default=sa.true())
    with op.batch_alter_table("notifications") as batch_op:
        batch_op.drop_column("decisions")
        batch_op.drop_column("status")
        batch_op.drop_column("quiet")
        batch_op.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
