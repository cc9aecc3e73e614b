"""Legacy customers who already exist on Stripe: found once, attached, never duplicated.

A company that already takes card payments through Stripe has its paying customers there
already, each with its default payment method. A migrated subscription must hang on that
customer: a new one would have no payment method and its first automatic charge would
fail. :func:`link_customers` finds, per legacy customer of a batch, the Stripe customer
it is, trying in this order and stopping at the first that answers:

1. ``snapshot``: the snapshot's optional ``customers.stripe_customer_id`` column;
2. ``mapping``: a mapping file, CSV with the columns ``legacy_id,stripe_id``
   (:func:`read_customer_map`);
3. ``metadata``: Stripe's Search API, ``metadata['<key>']:'<legacy id>'`` (the key the
   company keeps its own customer id under, ``legacy_customer_id`` by default);
4. ``email``: Stripe's Search API, ``email:'<email>'``; two or more customers with the
   same email are ambiguous and never guessed: the plan stops and names them.

Searches (https://docs.stripe.com/search) go through the target's search bucket (20
requests per second, https://docs.stripe.com/rate-limits) and are eventually consistent.
A customer named by the snapshot or the mapping file is retrieved when a target is given,
so that one that does not exist stops the plan instead of the apply, and so that the plan
knows whether it has a default payment method (``invoice_settings.default_payment_method``
or a ``default_source``). Customers no way finds are created by the batch.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Protocol

import pandas as pd

from shadowbill.errors import InputError, TargetError
from shadowbill.listing import first_few

LINK_COLUMN: Final = "stripe_customer_id"
# Customers shadowbill created carry this metadata key: a search never attaches to them
# (a resumed apply finds them again as its own, and a rollback may remove them).
CREATED_MARK: Final = "shadowbill_key"
DEFAULT_METADATA_KEY: Final = "legacy_customer_id"
SEARCHES: Final = ("metadata", "email")
LINK_COLUMNS: Final[dict[str, str]] = {
    "customer_id": "string",
    "stripe_customer_id": "string",  # empty: the batch creates the customer
    "linked_by": "string",  # snapshot | mapping | metadata | email | "" (created)
    "has_payment_method": "boolean",  # NA: not known (no target was asked)
}
_MAP_HEADER: Final = ("legacy_id", "stripe_id")


class CustomerFinder(Protocol):
    """What :func:`link_customers` asks of a target (``StripeTarget`` implements it)."""

    def retrieve_customer(self, customer_id: str) -> Mapping[str, Any] | None:
        """The customer, or None when it does not exist (or was deleted)."""
        ...  # pragma: no cover

    def search_customers(self, query: str) -> Sequence[Mapping[str, Any]]:
        """Every customer matching a Search API query."""
        ...  # pragma: no cover


def search_literal(value: str) -> str:
    """A value quoted for Stripe's search query language."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def has_payment_method(customer: Mapping[str, Any]) -> bool:
    """True when automatic charges have something to charge: a default payment method or source."""
    settings = customer.get("invoice_settings") or {}
    return bool(settings.get("default_payment_method") or customer.get("default_source"))


def _stripe_id(value: str, where: str) -> str:
    text = value.strip()
    if not text.startswith("cus_") or len(text) > 255 or any(c.isspace() for c in text):
        raise InputError(f"{where}: {value!r} is not a Stripe customer id (cus_...)")
    return text


def read_customer_map(path: Path | str) -> dict[str, str]:
    """A mapping file (CSV ``legacy_id,stripe_id``) as legacy id -> Stripe customer id."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(
            f"{file}: cannot read the customer mapping file ({exc.strerror})"
        ) from None
    rows = list(csv.reader(text.splitlines()))
    if not rows or tuple(c.strip() for c in rows[0]) != _MAP_HEADER:
        raise InputError(f"{file} row 1: the header must be exactly {','.join(_MAP_HEADER)}")
    out: dict[str, str] = {}
    for n, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != 2 or not row[0].strip():
            raise InputError(f"{file} row {n}: expected legacy_id,stripe_id, got {row!r}")
        legacy = row[0].strip()
        stripe_id = _stripe_id(row[1], f"{file} row {n}")
        if out.get(legacy, stripe_id) != stripe_id:
            raise InputError(
                f"{file} row {n}: legacy customer {legacy} is mapped twice "
                f"({out[legacy]} and {stripe_id})"
            )
        out[legacy] = stripe_id
    return out


def _snapshot_ids(customers: pd.DataFrame) -> dict[str, str]:
    if LINK_COLUMN not in customers.columns:
        return {}
    col = customers[LINK_COLUMN].astype("string").str.strip()
    present = col.notna() & (col != "")
    ids = customers["customer_id"].astype(str)[present.to_numpy(dtype=bool)]
    return {
        cid: _stripe_id(str(v), f"customers row {cid}: {LINK_COLUMN}")
        for cid, v in zip(ids, col[present], strict=True)
    }


def _found(finder: CustomerFinder, query: str, legacy_id: str, by: str) -> Mapping[str, Any] | None:
    hits = [
        h
        for h in finder.search_customers(query)
        if not h.get("deleted") and not (h.get("metadata") or {}).get(CREATED_MARK)
    ]
    if len(hits) > 1:
        ids = sorted(str(h.get("id")) for h in hits)
        raise TargetError(
            f"legacy customer {legacy_id}: {len(hits)} Stripe customers match by {by} "
            f"({first_few(ids, 3)}); name the right one in a mapping file "
            "(legacy_id,stripe_id) or the snapshot's stripe_customer_id"
        )
    return hits[0] if hits else None


def link_customers(
    customers: pd.DataFrame,
    *,
    mapping: Mapping[str, str] | None = None,
    finder: CustomerFinder | None = None,
    search: Sequence[str] = (),
    metadata_key: str = DEFAULT_METADATA_KEY,
) -> pd.DataFrame:
    """Per legacy customer (rows of the canonical ``customers`` table), the Stripe customer
    it already is, how it was found and whether it has a payment method (``LINK_COLUMNS``).

    ``search`` names the Search API ways to try (``metadata``, ``email``), in that order,
    after the snapshot column and ``mapping``; they need a ``finder``. With a ``finder``
    every linked customer is retrieved (a missing one is a TargetError naming it).
    """
    unknown = sorted(set(search) - set(SEARCHES))
    if unknown:
        raise TargetError(f"unknown customer search {', '.join(unknown)}; use metadata or email")
    if search and finder is None:
        raise TargetError("searching Stripe for existing customers needs the target (an API key)")
    from_snapshot = _snapshot_ids(customers)
    mapping = dict(mapping or {})
    emails = (
        customers["email"].astype("string")
        if "email" in customers.columns
        else pd.Series(pd.NA, index=customers.index, dtype="string")
    )
    rows: list[dict[str, Any]] = []
    for cid, email in zip(customers["customer_id"].astype(str), emails, strict=True):
        stripe_id: str | None = None
        by = ""
        found: Mapping[str, Any] | None = None
        if cid in from_snapshot:
            stripe_id, by = from_snapshot[cid], "snapshot"
        elif cid in mapping:
            stripe_id, by = mapping[cid], "mapping"
        else:
            for way in search:
                if way == "metadata":
                    query = f"metadata[{search_literal(metadata_key)}]:{search_literal(cid)}"
                elif pd.notna(email) and str(email).strip():
                    query = f"email:{search_literal(str(email).strip())}"
                else:
                    continue
                found = _found(finder, query, cid, way)  # type: ignore[arg-type]
                if found is not None:
                    stripe_id, by = str(found["id"]), way
                    break
        payment: bool | None = None
        if stripe_id is not None and finder is not None:
            if found is None:
                found = finder.retrieve_customer(stripe_id)
            if found is None:
                raise TargetError(
                    f"legacy customer {cid} is linked to Stripe customer {stripe_id} (by {by}), "
                    "which does not exist on the target"
                )
            payment = has_payment_method(found)
        rows.append(
            {
                "customer_id": cid,
                "stripe_customer_id": stripe_id,
                "linked_by": by,
                "has_payment_method": payment,
            }
        )
    frame = pd.DataFrame(rows, columns=list(LINK_COLUMNS))
    return frame.astype(LINK_COLUMNS).sort_values("customer_id", ignore_index=True)


def linked_ids(links: pd.DataFrame) -> dict[str, str]:
    """Legacy customer id -> Stripe customer id of the linked customers only."""
    hit = links["stripe_customer_id"].notna().to_numpy(dtype=bool)
    return dict(
        zip(
            links["customer_id"].astype(str)[hit],
            links["stripe_customer_id"].astype(str)[hit],
            strict=True,
        )
    )


def stripe_setup(
    operations: Sequence[Any], links: pd.DataFrame, *, tax_mode: str, billing_mode: str
) -> dict[str, Any]:
    """What a batch does to Stripe's customers and how it bills, for ``plan`` and its JSON.

    Keys: ``customers_attached`` / ``customers_created``; ``attached_by`` (per way found);
    ``without_payment_method`` (customers of a ``charge_automatically`` subscription with no
    default payment method on Stripe, every created customer included: their first
    automatic charge would fail) and its ``_ids``; ``payment_method_unknown`` (attached
    customers whose payment method was not looked up: no target at plan);
    ``collection_methods`` (subscriptions per method); ``tax_mode``; ``billing_mode``.
    """
    attached = linked_ids(links)
    customers = sorted({str(op.customer_id) for op in operations if op.kind == "customer"})
    automatic: set[str] = set()
    methods: dict[str, int] = {}
    for op in operations:
        if op.kind not in ("subscription", "subscription_schedule"):
            continue
        first = op.params if op.kind == "subscription" else op.params["phases"][0]
        method = str(first.get("collection_method", "charge_automatically"))
        methods[method] = methods.get(method, 0) + 1
        if method == "charge_automatically" and op.customer_id is not None:
            automatic.add(str(op.customer_id))
    payment = dict(
        zip(
            links["customer_id"].astype(str),
            links["has_payment_method"].astype("boolean"),
            strict=True,
        )
    )
    missing: list[str] = []
    unknown = 0
    for cid in sorted(automatic):
        if cid not in attached:
            missing.append(cid)
        elif payment.get(cid) is pd.NA or payment.get(cid) is None:
            unknown += 1
        elif not bool(payment[cid]):
            missing.append(cid)
    ways = links.loc[links["stripe_customer_id"].notna(), "linked_by"].astype(str)
    return {
        "customers_attached": sum(1 for c in customers if c in attached),
        "customers_created": sum(1 for c in customers if c not in attached),
        "attached_by": {k: int(v) for k, v in ways.value_counts().sort_index().items()},
        "without_payment_method": len(missing),
        "without_payment_method_ids": missing[:50],
        "payment_method_unknown": unknown,
        "collection_methods": dict(sorted(methods.items())),
        "tax_mode": tax_mode,
        "billing_mode": billing_mode,
    }
