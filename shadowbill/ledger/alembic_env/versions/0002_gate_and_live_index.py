"""Gate verdict columns on batches; at most one live batch per subscription; lookup indexes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-02-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

LIVE = "state <> 'rolled_back'"


def upgrade() -> None:
    """Add the gate columns, the live-subscription unique index and the lookup indexes."""
    op.add_column("batches", sa.Column("gate_verdict", sa.String(8)))
    op.add_column("batches", sa.Column("gate_forced_reason", sa.Text))
    op.add_column("batches", sa.Column("gate_at", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_batch_subscriptions_subscription", "batch_subscriptions", ["subscription_id"]
    )
    if op.get_bind().dialect.name in ("sqlite", "postgresql"):
        # A partial unique index: the database itself refuses a subscription in two live
        # batches. Databases without partial indexes rely on the ledger's own check.
        op.create_index(
            "ux_batch_subscriptions_live",
            "batch_subscriptions",
            ["subscription_id"],
            unique=True,
            sqlite_where=sa.text(LIVE),
            postgresql_where=sa.text(LIVE),
        )
    op.create_index("ix_target_objects_op_key", "target_objects", ["op_key"])
    op.create_index("ix_audit_log_subscription", "audit_log", ["subscription_id"])


def downgrade() -> None:
    """Remove what upgrade added."""
    op.drop_index("ix_audit_log_subscription", table_name="audit_log")
    op.drop_index("ix_target_objects_op_key", table_name="target_objects")
    if op.get_bind().dialect.name in ("sqlite", "postgresql"):
        op.drop_index("ux_batch_subscriptions_live", table_name="batch_subscriptions")
    op.drop_index("ix_batch_subscriptions_subscription", table_name="batch_subscriptions")
    op.drop_column("batches", "gate_at")
    op.drop_column("batches", "gate_forced_reason")
    op.drop_column("batches", "gate_verdict")
