"""the retention sweep's indexes: purgeable notifications and finished jobs by age

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Spelled as store/schema.py spells it (PURGEABLE_NOTIFICATION); a migration keeps its own
# copy, so that a later change to the schema module cannot rewrite history.
_PURGEABLE_PG = "status IN ('expired', 'cancelled', 'suppressed') OR read"
_PURGEABLE_SQLITE = "status IN ('expired', 'cancelled', 'suppressed') OR read = 1"


def upgrade() -> None:
    op.create_index("ix_notifications_purgeable", "notifications", ["created_at"],
                    postgresql_where=sa.text(_PURGEABLE_PG),
                    sqlite_where=sa.text(_PURGEABLE_SQLITE))
    op.create_index("ix_jobs_status_updated_at", "jobs", ["status", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_status_updated_at", table_name="jobs")
    op.drop_index("ix_notifications_purgeable", table_name="notifications")
