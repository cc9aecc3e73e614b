"""The apply lease on batches: who is applying a batch now, their last heartbeat, until when.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the lease columns (empty: no batch is being applied)."""
    with op.batch_alter_table("batches") as table:
        table.add_column(sa.Column("lease_holder", sa.String(200)))
        table.add_column(sa.Column("lease_heartbeat", sa.DateTime(timezone=True)))
        table.add_column(sa.Column("lease_expires", sa.DateTime(timezone=True)))


def downgrade() -> None:
    """Remove the lease columns."""
    with op.batch_alter_table("batches") as table:
        table.drop_column("lease_expires")
        table.drop_column("lease_heartbeat")
        table.drop_column("lease_holder")
