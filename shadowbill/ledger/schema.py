"""The ledger's tables at the newest schema revision, and a UTC timestamp column type.

The Alembic revisions in ``alembic_env/versions`` create these tables; a test checks
that migrating an empty database to head gives exactly this metadata. Ids are text,
timestamps are timezone-aware UTC, JSON is stored as text (portable to any database).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Final

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Dialect

VERSION_TABLE: Final = "shadowbill_ledger_version"
ALEMBIC_DIR: Final = Path(__file__).resolve().parent / "alembic_env"
ID: Final = 255
BATCH_ID: Final = 64


class UtcDateTime(sa.types.TypeDecorator[dt.datetime]):
    """A timestamp stored as UTC and always read back timezone-aware (naive input is UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        """UTC on the way in; naive UTC for databases without time zones (SQLite, MySQL)."""
        if value is None or value is pd.NaT:
            return None
        if isinstance(value, pd.Timestamp):
            value = value.to_pydatetime()
        if not isinstance(value, dt.datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        """Timezone-aware UTC on the way out."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)  # type: ignore[no-any-return]
        return value.astimezone(dt.UTC)  # type: ignore[no-any-return]


metadata = sa.MetaData()

batches = sa.Table(
    "batches",
    metadata,
    sa.Column("batch_id", sa.String(BATCH_ID), primary_key=True),
    sa.Column("phase", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("created_by", sa.String(ID), nullable=False),
    sa.Column("rollout_fingerprint", sa.String(128)),
    sa.Column("snapshot_fingerprint", sa.String(128)),
    sa.Column("inputs_json", sa.Text, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    # revision 0002
    sa.Column("gate_verdict", sa.String(8)),
    sa.Column("gate_forced_reason", sa.Text),
    sa.Column("gate_at", UtcDateTime),
    # revision 0003: the apply lease (holder, last heartbeat, expiry)
    sa.Column("lease_holder", sa.String(200)),
    sa.Column("lease_heartbeat", UtcDateTime),
    sa.Column("lease_expires", UtcDateTime),
    # revision 0005: what the batch was planned from (every later step reads it back)
    sa.Column("as_of", UtcDateTime),
    sa.Column("snapshot_dir", sa.Text),
    sa.Column("rollout_path", sa.Text),
    sa.Column("policy_path", sa.Text),
    sa.Column("out_dir", sa.Text),
    sa.Index("ix_batches_phase", "phase"),
)

batch_subscriptions = sa.Table(
    "batch_subscriptions",
    metadata,
    sa.Column("batch_id", sa.String(BATCH_ID), sa.ForeignKey("batches.batch_id"), primary_key=True),
    sa.Column("subscription_id", sa.String(ID), primary_key=True),
    sa.Column("customer_id", sa.String(ID), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("customer_fingerprint", sa.String(128)),
    sa.Column("target_subscription_id", sa.String(ID)),
    sa.Column("target_customer_id", sa.String(ID)),
    sa.Column("paid_through", UtcDateTime),
    sa.Column("first_target_period_start", UtcDateTime),
    sa.Column("error", sa.Text),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    # revision 0002: find a subscription's batches; at most one live batch per subscription
    sa.Index("ix_batch_subscriptions_subscription", "subscription_id"),
    sa.Index(
        "ux_batch_subscriptions_live",
        "subscription_id",
        unique=True,
        sqlite_where=sa.text("state <> 'rolled_back'"),
        postgresql_where=sa.text("state <> 'rolled_back'"),
    ),
)

target_objects = sa.Table(
    "target_objects",
    metadata,
    sa.Column("batch_id", sa.String(BATCH_ID), sa.ForeignKey("batches.batch_id"), primary_key=True),
    sa.Column("op_key", sa.String(ID), primary_key=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("subscription_id", sa.String(ID)),
    sa.Column("customer_id", sa.String(ID)),
    sa.Column("target_id", sa.String(ID), nullable=False),
    sa.Column("idempotency_key", sa.String(ID)),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("deleted_at", UtcDateTime),
    # revision 0002: shared catalog objects are found by operation key across batches
    sa.Index("ix_target_objects_op_key", "op_key"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("actor", sa.String(ID), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("batch_id", sa.String(BATCH_ID), sa.ForeignKey("batches.batch_id")),
    sa.Column("subscription_id", sa.String(ID)),
    sa.Column("from_state", sa.String(32)),
    sa.Column("to_state", sa.String(32)),
    sa.Column("detail_json", sa.Text),
    sa.Column("fingerprints_json", sa.Text),
    sa.Index("ix_audit_log_batch", "batch_id"),
    # revision 0002
    sa.Index("ix_audit_log_subscription", "subscription_id"),
)

TABLES: Final[tuple[sa.Table, ...]] = (batches, batch_subscriptions, target_objects, audit_log)


# Sign-offs of reconciliation reports (shadowbill signoff --ledger): who signed which
# report, when, and the fingerprints of what they signed.
signoffs = sa.Table(
    "signoffs",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("signed_at", UtcDateTime, nullable=False),
    sa.Column("name", sa.String(ID), nullable=False),
    sa.Column("role", sa.String(ID), nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("phase", sa.Integer),
    sa.Column("report", sa.Text, nullable=False),  # the report folder, as given
    sa.Column("summary_sha256", sa.String(128), nullable=False),
    sa.Column("fingerprints_json", sa.Text, nullable=False),
)
