"""How every row of a customer table reaches its customer: the one routing table that the
snapshot's buckets and partitions, the extraction's spill and the per-customer
fingerprints all use. A row is routed on a key column, directly when that column is the
customer id, else through a parent table's key -> customer map (an orphan, whose parent
is missing, is routed on its own key)."""

from __future__ import annotations

from typing import Final

# Tables every partition reads whole: they belong to no customer.
SHARED_TABLES: Final = ("tax_rates",)
# table -> (the column it is routed on, the parent table that column is a key of, or None)
ROUTES: Final[dict[str, tuple[str, str | None]]] = {
    "customers": ("customer_id", None),
    "subscriptions": ("customer_id", None),
    "invoices": ("customer_id", None),
    "subscription_items": ("subscription_id", "subscriptions"),
    "discounts": ("subscription_id", "subscriptions"),
    "usage": ("subscription_id", "subscriptions"),
    "invoice_lines": ("invoice_id", "invoices"),
}
# parent table -> its key column (each parent row names its customer in customer_id)
PARENT_KEY: Final[dict[str, str]] = {"subscriptions": "subscription_id", "invoices": "invoice_id"}
