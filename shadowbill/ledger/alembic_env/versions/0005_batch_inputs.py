"""A batch's inputs as columns of batches: the instant it was planned at and its files.

Until 0004 they were kept only in the batch's plan row of the audit log (JSON), which
every step had to find again; the upgrade copies them from there.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import datetime as dt
import json

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = ("snapshot_dir", "rollout_path", "policy_path", "out_dir")


def _instant(text: str) -> dt.datetime:
    """An ISO-8601 instant as naive UTC for databases without time zones, else aware."""
    stamp = dt.datetime.fromisoformat(text)
    stamp = stamp.replace(tzinfo=dt.UTC) if stamp.tzinfo is None else stamp.astimezone(dt.UTC)
    return stamp if op.get_bind().dialect.name == "postgresql" else stamp.replace(tzinfo=None)


def upgrade() -> None:
    """Add the columns and fill them from each batch's plan row of the audit log."""
    op.add_column("batches", sa.Column("as_of", sa.DateTime(timezone=True)))
    for name in COLUMNS:
        op.add_column("batches", sa.Column(name, sa.Text))
    conn = op.get_bind()
    rows = conn.execute(
        sa.text(
            "SELECT batch_id, detail_json FROM audit_log WHERE action = 'plan' "
            "AND subscription_id IS NULL AND detail_json IS NOT NULL ORDER BY id"
        )
    ).all()
    seen: set[str] = set()
    for batch_id, detail_json in rows:
        if batch_id in seen:
            continue
        try:
            detail = json.loads(detail_json)
        except ValueError:
            continue
        if not isinstance(detail, dict) or not detail.get("as_of"):
            continue
        seen.add(batch_id)
        values = {name: detail.get(name) for name in COLUMNS}
        conn.execute(
            sa.text(
                "UPDATE batches SET as_of = :as_of, snapshot_dir = :snapshot_dir, "
                "rollout_path = :rollout_path, policy_path = :policy_path, out_dir = :out_dir "
                "WHERE batch_id = :batch_id"
            ),
            {"as_of": _instant(str(detail["as_of"])), "batch_id": batch_id, **values},
        )


def downgrade() -> None:
    """Remove the columns (the audit log still has the plan rows they came from)."""
    for name in reversed(COLUMNS):
        op.drop_column("batches", name)
    op.drop_column("batches", "as_of")
