"""The ledger's typed errors: each names the batch, subscription or object it refuses."""

from __future__ import annotations

from shadowbill.errors import ShadowbillError


class LedgerError(ShadowbillError):
    """A ledger that cannot be opened, or an operation the ledger refuses."""


class TransitionError(LedgerError):
    """A state change the transition table does not allow (names subscription, state, asked state)."""


class BatchExistsError(LedgerError):
    """A batch id the ledger already has (another planner may have taken it meanwhile)."""


class SubscriptionTakenError(LedgerError):
    """Subscriptions asked for a new batch while they are still in a live batch."""


class DuplicateObjectError(LedgerError):
    """One operation recorded with two different target ids: a duplicate on the target."""


class LeaseHeldError(LedgerError):
    """A batch that another process is applying right now (its lease is live)."""


class SecretInLedgerError(LedgerError):
    """A value that looks like a Stripe secret key; the ledger never stores secrets."""
