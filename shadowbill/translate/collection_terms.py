"""Payment terms per customer segment, as the rollout file declares them.

Sales-led accounts are usually billed by invoice with payment terms, self-serve ones
charged automatically: Stripe's ``collection_method`` (``charge_automatically`` or
``send_invoice``) with ``days_until_due`` for invoices
(https://docs.stripe.com/billing/collection-method). A rollout's ``billing_terms`` lists
them per segment (an entry without ``segment`` is the default of every segment); the
legacy data's own terms per subscription (the snapshot's optional ``collection_method``
and ``days_until_due`` columns) win over the rollout's.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CollectionMethod = Literal["charge_automatically", "send_invoice"]
DEFAULT_COLLECTION: CollectionMethod = "charge_automatically"


class CollectionTerms(BaseModel):
    """One segment's payment terms (``segment`` absent: every segment's default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    segment: Literal["self_serve", "sales"] | None = None
    collection_method: CollectionMethod
    days_until_due: Annotated[int, Field(ge=0, le=730, strict=True)] | None = None

    @model_validator(mode="after")
    def _terms(self) -> CollectionTerms:
        if self.collection_method == "send_invoice" and self.days_until_due is None:
            raise ValueError("send_invoice needs days_until_due (the payment terms in days)")
        if self.collection_method == "charge_automatically" and self.days_until_due is not None:
            raise ValueError("days_until_due applies to send_invoice only")
        return self
