"""The migration ledger: batches, subscription states and the audit log, in any SQLAlchemy database.

Usage::

    from shadowbill.ledger import open_ledger

    with open_ledger() as ledger:  # SHADOWBILL_LEDGER_URL, else sqlite:///.shadowbill/ledger.db
        batch = ledger.create_batch(2, plan, {"rollout": ..., "snapshot": ...})
        ledger.record_gate(batch, "pass")
        ledger.set_batch_status(batch, "applying")
        ...
"""

from __future__ import annotations

from shadowbill.ledger.errors import (
    BatchExistsError,
    DuplicateObjectError,
    LeaseHeldError,
    LedgerError,
    SecretInLedgerError,
    SubscriptionTakenError,
    TransitionError,
)
from shadowbill.ledger.store import (
    DEFAULT_URL,
    URL_ENV,
    Batch,
    Ledger,
    LedgerStatus,
    PlannedFrom,
    default_url,
    open_ledger,
)

__all__ = [
    "DEFAULT_URL",
    "URL_ENV",
    "Batch",
    "BatchExistsError",
    "DuplicateObjectError",
    "LeaseHeldError",
    "Ledger",
    "LedgerError",
    "LedgerStatus",
    "PlannedFrom",
    "SecretInLedgerError",
    "SubscriptionTakenError",
    "TransitionError",
    "default_url",
    "open_ledger",
]
