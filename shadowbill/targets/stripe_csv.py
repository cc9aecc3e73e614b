"""Stripe's Billing migration toolkit CSV: one row per subscription of a batch.

Followed: "Migrate subscriptions to Stripe Billing using toolkit"
(https://docs.stripe.com/billing/subscriptions/import-subscriptions-toolkit), its
"Multi-price items" template and "Full CSV specification", also published as the
"Toolkit CSV reference" (https://docs.stripe.com/billing/subscriptions/toolkit-reference).

Columns, in this order (the multi-price template's, plus ``currency`` from the full
specification because the catalog's prices carry several currencies)::

    customer, start_date, items.0.price, items.0.quantity, ..., items.N.price,
    items.N.quantity, metadata.third_party_sub_id, metadata.<key>..., automatic_tax,
    billing_cycle_anchor, coupon, currency, trial_end, proration_behavior,
    collection_method, default_tax_rate, backdate_start_date, days_until_due,
    cancel_at_period_end, add_invoice_items.0.amount, add_invoice_items.0.product,
    add_invoice_items.0.currency

- ``items.x.price`` / ``items.x.quantity``: every item of the first phase, in the
  operation's order; as many pairs as the batch's largest subscription needs; metered
  prices leave the quantity empty (usage comes from the meter).
- Dates are Unix timestamps in seconds. ``billing_cycle_anchor`` is the legacy
  paid-through instant and ``proration_behavior`` is ``none``, the toolkit's "paid
  subscription in the middle of a billing period" use case: nothing is charged until the
  anchor, the first full invoice is on it. ``start_date`` (when the toolkit creates the
  subscription; it must be at least 24 hours after the upload) is the ``start_date``
  argument, else each row's anchor. A ``start_date`` after a row's anchor would leave
  the time in between unbilled, so it is refused.
- ``metadata.third_party_sub_id`` is the legacy subscription id (the templates' own
  column); the operation's metadata follow as ``metadata.<key>`` columns.
- ``automatic_tax`` is ``TRUE`` when the target catalog's tax is ``external`` (and then
  ``default_tax_rate`` is empty: the two are incompatible), else ``FALSE`` with the
  catalog's manual tax rate in ``default_tax_rate``. ``collection_method`` and
  ``days_until_due`` are the subscription's (``send_invoice`` needs both and a customer
  email, which a created customer without one is refused for); ``cancel_at_period_end``
  is ``FALSE``; ``trial_end``, ``backdate_start_date`` and ``add_invoice_items.0.*`` stay
  empty (the toolkit backdates only with prorations off and starts at least 24 hours
  after the upload, so a paid-through already past is for the API target, which
  backdates at apply). The toolkit has no ``billing_mode`` column: it creates with the
  account's default mode.

References. The toolkit only creates subscriptions: customers, prices, coupons and tax
rates must exist first (create them with the API target from the same operations). A
reference is written as the created object's id when ``id_map`` (operation key -> target
id, e.g. ``{"customer:ACC-1": "cus_..."}``) has it, else as a placeholder to replace
before the upload: customers by their legacy customer id (an attached customer by its
existing Stripe id), prices by their
``lookup_key``, coupons and products by their id (shadowbill chooses it, so it is
already the Stripe id), tax rates by their catalog id (``vat_gb``).

What the toolkit cannot import. It takes one coupon per subscription, no item-level
discount, and no second phase ("Migrate subscriptions with multiple phases": import the
first phase, then add the others to the schedule the toolkit created with
``POST /v1/subscription_schedules/{id}``). A subscription that needs more gets its first
coupon in the row and a follow-up: the complete phases (items, all discounts, tax rates,
end dates, with references resolved as above) to set on its schedule after the import;
the toolkit's reference warns that such an update unsets a coupon, so the follow-up
lists every coupon again. Follow-ups are written as JSONL to ``followups_path``; without
one, a batch that needs follow-ups is refused rather than imported incompletely.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import pandas as pd

from shadowbill.csv_cells import neutralise_row
from shadowbill.errors import StripeCsvError
from shadowbill.listing import first_few
from shadowbill.targets.model import Operation, attached_customer_id, ref_key

TOOLKIT_URL: Final = "https://docs.stripe.com/billing/subscriptions/import-subscriptions-toolkit"
REFERENCE_URL: Final = "https://docs.stripe.com/billing/subscriptions/toolkit-reference"
THIRD_PARTY_ID: Final = "metadata.third_party_sub_id"
LEADING: Final = ("customer", "start_date")
TRAILING: Final = (
    "automatic_tax",
    "billing_cycle_anchor",
    "coupon",
    "currency",
    "trial_end",
    "proration_behavior",
    "collection_method",
    "default_tax_rate",
    "backdate_start_date",
    "days_until_due",
    "cancel_at_period_end",
    "add_invoice_items.0.amount",
    "add_invoice_items.0.product",
    "add_invoice_items.0.currency",
)
_SUBSCRIPTION_KINDS: Final = ("subscription", "subscription_schedule")


def placeholder(op: Operation) -> str:
    """What a reference to ``op`` becomes in the CSV when no target id is known."""
    attached = attached_customer_id(op)
    if attached is not None:
        return attached  # an existing Stripe customer: its id is known at plan
    if op.kind == "customer" and op.customer_id:
        return op.customer_id
    if op.kind == "price" and "lookup_key" in op.lookup:
        return op.lookup["lookup_key"]
    if op.kind in ("coupon", "product") and "id" in op.lookup:
        return op.lookup["id"]
    if op.kind == "tax_rate":
        meta = op.params.get("metadata", {})
        if isinstance(meta, Mapping) and meta.get("shadowbill_tax_rate_id"):
            return str(meta["shadowbill_tax_rate_id"])
    return op.key


class _Resolver:
    """Replaces ``ref()`` placeholders by target ids or the documented placeholders."""

    def __init__(self, operations: Sequence[Operation], id_map: Mapping[str, str] | None):
        self.by_key = {op.key: op for op in operations}
        self.id_map = dict(id_map or {})

    def one(self, value: Any, where: str) -> Any:
        key = ref_key(value)
        if key is None:
            return value
        if key in self.id_map:
            return self.id_map[key]
        op = self.by_key.get(key)
        if op is None:
            raise StripeCsvError(
                f"{where} refers to {key}, which is neither in the operations nor in id_map"
            )
        return placeholder(op)

    def deep(self, value: Any, where: str) -> Any:
        if isinstance(value, Mapping):
            return {k: self.deep(v, where) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.deep(v, where) for v in value]
        return self.one(value, where)


def _seconds(value: int | datetime | pd.Timestamp) -> int:
    if isinstance(value, int):
        return value
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.value // 1_000_000_000)


def _phases(op: Operation) -> tuple[list[dict[str, Any]], int]:
    """The operation's phases (a subscription is one phase) and its paid-through anchor."""
    p = op.params
    if op.kind == "subscription":
        names = ("items", "currency", "discounts", "default_tax_rates", "automatic_tax")
        phase = {k: p[k] for k in (*names, "collection_method") if k in p}
        if "days_until_due" in p:
            phase["invoice_settings"] = {"days_until_due": p["days_until_due"]}
        phase["proration_behavior"] = p.get("proration_behavior", "none")
        return [phase], int(p["billing_cycle_anchor"])
    return [dict(ph) for ph in p["phases"]], int(p["start_date"])


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def toolkit_rows(
    operations: Sequence[Operation],
    *,
    id_map: Mapping[str, str] | None = None,
    start_date: int | datetime | pd.Timestamp | None = None,
) -> tuple[list[str], list[dict[str, str]], list[dict[str, Any]]]:
    """The CSV header, one row per subscription (sorted by legacy id) and the follow-ups
    the toolkit cannot import (see the module docstring)."""
    resolver = _Resolver(operations, id_map)
    by_key = {o.key: o for o in operations}
    subs = sorted(
        (op for op in operations if op.kind in _SUBSCRIPTION_KINDS),
        key=lambda o: (o.subscription_id or "", o.key),
    )
    start = None if start_date is None else _seconds(start_date)
    rows: list[dict[str, str]] = []
    followups: list[dict[str, Any]] = []
    width = 0
    meta_keys: set[str] = set()
    for op in subs:
        phases, anchor = _phases(op)
        first = phases[0]
        where = f"subscription {op.subscription_id} ({op.key})"
        begins = anchor if start is None else start
        if begins > anchor:
            raise StripeCsvError(
                f"{where}: start_date {begins} is after its legacy paid-through {anchor}; "
                "the time in between would be billed by nobody (upload earlier, or bill that "
                "time in the legacy system and re-plan)"
            )
        items = first["items"]
        width = max(width, len(items))
        row: dict[str, str] = {
            "customer": _text(resolver.one(op.params["customer"], where)),
            "start_date": str(begins),
            THIRD_PARTY_ID: op.subscription_id or "",
        }
        for i, item in enumerate(items):
            row[f"items.{i}.price"] = _text(resolver.one(item["price"], where))
            row[f"items.{i}.quantity"] = _text(item.get("quantity"))
        metadata = op.params.get("metadata", {})
        for k, v in metadata.items():
            row[f"metadata.{k}"] = _text(v)
            meta_keys.add(f"metadata.{k}")
        discounts = list(first.get("discounts", []))
        taxes = list(first.get("default_tax_rates", []))
        automatic = bool((first.get("automatic_tax") or {}).get("enabled"))
        method = str(first.get("collection_method", "charge_automatically"))
        days = (first.get("invoice_settings") or {}).get("days_until_due")
        if method == "send_invoice":
            customer = by_key.get(ref_key(op.params["customer"]) or "")
            created = customer is not None and attached_customer_id(customer) is None
            if created and customer is not None and not customer.params.get("email"):
                raise StripeCsvError(
                    f"{where} is billed by invoice (send_invoice) but its customer "
                    f"{customer.customer_id} has no email; the toolkit needs one "
                    f"({REFERENCE_URL})"
                )
        row.update(
            {
                "automatic_tax": "TRUE" if automatic else "FALSE",
                "billing_cycle_anchor": str(anchor),
                "coupon": _text(resolver.one(discounts[0]["coupon"], where)) if discounts else "",
                "currency": _text(first.get("currency", "")),
                "proration_behavior": "none",
                "collection_method": method,
                "default_tax_rate": _text(resolver.one(taxes[0], where)) if taxes else "",
                "days_until_due": _text(days) if method == "send_invoice" else "",
                "cancel_at_period_end": "FALSE",
            }
        )
        rows.append(row)
        reasons = []
        if len(phases) > 1:
            reasons.append(f"{len(phases)} phases (the toolkit imports the first)")
        if len(discounts) > 1:
            reasons.append(f"{len(discounts)} subscription coupons (the toolkit takes one)")
        if any(item.get("discounts") for item in items):
            reasons.append("item-level discounts")
        if len(taxes) > 1:
            reasons.append(f"{len(taxes)} tax rates (the toolkit takes one)")
        if reasons:
            followups.append(
                {
                    "subscription_id": op.subscription_id,
                    "operation_key": op.key,
                    "action": "update the subscription schedule the toolkit created "
                    "(POST /v1/subscription_schedules/{id}) with these phases",
                    "reasons": reasons,
                    "start_date": begins,
                    "phases": resolver.deep(phases, where),
                }
            )
    header = [*LEADING]
    for i in range(width):
        header += [f"items.{i}.price", f"items.{i}.quantity"]
    header += [THIRD_PARTY_ID, *sorted(meta_keys - {THIRD_PARTY_ID}), *TRAILING]
    return header, rows, followups


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(text.encode("utf-8"))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def csv_text(header: Sequence[str], rows: Sequence[Mapping[str, str]]) -> str:
    """The CSV text of a header and rows (missing cells empty, ``\\n`` line ends)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(header), restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_stripe_csv(
    operations: Sequence[Operation],
    path: Path | str,
    *,
    id_map: Mapping[str, str] | None = None,
    start_date: int | datetime | pd.Timestamp | None = None,
    followups_path: Path | str | None = None,
) -> Path:
    """Write the batch's subscriptions as a Stripe Billing migration toolkit CSV.

    What a row cannot carry goes to ``followups_path`` (JSONL); a batch that needs
    follow-ups without a ``followups_path`` is refused with a StripeCsvError.
    """
    header, rows, followups = toolkit_rows(operations, id_map=id_map, start_date=start_date)
    if followups and followups_path is None:
        named = [f"{f['subscription_id']} ({'; '.join(f['reasons'])})" for f in followups]
        raise StripeCsvError(
            f"{len(followups)} subscriptions need steps the migration toolkit cannot import: "
            f"{first_few(named, 3)}; pass followups_path to write them for after the import"
        )
    target = Path(path)
    user_text = frozenset(h for h in header if h == THIRD_PARTY_ID or h.startswith("metadata."))
    rows = [neutralise_row(r, user_text) for r in rows]
    _atomic_write(target, csv_text(header, rows))
    if followups_path is not None:
        lines = "".join(
            json.dumps(f, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"
            for f in followups
        )
        _atomic_write(Path(followups_path), lines)
    return target
