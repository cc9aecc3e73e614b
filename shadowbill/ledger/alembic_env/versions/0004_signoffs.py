"""Sign-offs of reconciliation reports: who signed which report, when, and what it held.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the signoffs table."""
    op.create_table(
        "signoffs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("role", sa.String(255), nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("phase", sa.Integer),
        sa.Column("report", sa.Text, nullable=False),
        sa.Column("summary_sha256", sa.String(128), nullable=False),
        sa.Column("fingerprints_json", sa.Text, nullable=False),
    )


def downgrade() -> None:
    """Drop the signoffs table."""
    op.drop_table("signoffs")
