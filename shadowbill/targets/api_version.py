"""The Stripe API version shadowbill speaks, pinned.

Stripe's API changes behind the same endpoints from one version to the next: from
``2025-03-31.basil`` usage records and ``/v1/invoices/upcoming`` are gone (meters and
``create_preview`` instead), from ``2025-09-30.clover`` new subscriptions default to
``billing_mode: flexible``, which changes proration and discount arithmetic
(https://docs.stripe.com/changelog, https://docs.stripe.com/billing/subscriptions/billing-mode).
So the SDK client sends this version on every request (``Stripe-Version``), the ledger
records it per batch, and the contract check validates requests against the OpenAPI spec
of this same version (``2026-05-27.dahlia`` is the spec the test dependency ships).
"""

from __future__ import annotations

from typing import Final

STRIPE_API_VERSION: Final = "2026-05-27.dahlia"
