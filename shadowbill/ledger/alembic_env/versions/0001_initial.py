"""Initial ledger: batches, their subscriptions, target objects, audit log.

Revision ID: 0001
Revises:
Create Date: 2026-01-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the four ledger tables."""
    op.create_table(
        "batches",
        sa.Column("batch_id", sa.String(64), primary_key=True),
        sa.Column("phase", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("rollout_fingerprint", sa.String(128)),
        sa.Column("snapshot_fingerprint", sa.String(128)),
        sa.Column("inputs_json", sa.Text, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_batches_phase", "batches", ["phase"])
    op.create_table(
        "batch_subscriptions",
        sa.Column("batch_id", sa.String(64), sa.ForeignKey("batches.batch_id"), primary_key=True),
        sa.Column("subscription_id", sa.String(255), primary_key=True),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("customer_fingerprint", sa.String(128)),
        sa.Column("target_subscription_id", sa.String(255)),
        sa.Column("target_customer_id", sa.String(255)),
        sa.Column("paid_through", TS),
        sa.Column("first_target_period_start", TS),
        sa.Column("error", sa.Text),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "target_objects",
        sa.Column("batch_id", sa.String(64), sa.ForeignKey("batches.batch_id"), primary_key=True),
        sa.Column("op_key", sa.String(255), primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("subscription_id", sa.String(255)),
        sa.Column("customer_id", sa.String(255)),
        sa.Column("target_id", sa.String(255), nullable=False),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("deleted_at", TS),
    )
    op.create_table(
        "audit_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("batch_id", sa.String(64), sa.ForeignKey("batches.batch_id")),
        sa.Column("subscription_id", sa.String(255)),
        sa.Column("from_state", sa.String(32)),
        sa.Column("to_state", sa.String(32)),
        sa.Column("detail_json", sa.Text),
        sa.Column("fingerprints_json", sa.Text),
    )
    op.create_index("ix_audit_log_batch", "audit_log", ["batch_id"])


def downgrade() -> None:
    """Drop the four ledger tables."""
    op.drop_index("ix_audit_log_batch", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("target_objects")
    op.drop_table("batch_subscriptions")
    op.drop_index("ix_batches_phase", table_name="batches")
    op.drop_table("batches")
