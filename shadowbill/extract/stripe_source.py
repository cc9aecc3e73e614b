"""Stripe as a source: a Stripe account read back into the canonical snapshot tables.

After a cut-over, the new platform's own objects are what must be compared with the model
(comparison D). ``read_stripe`` pages through the account (``stripe_pages``), maps Stripe's
vocabulary onto the canonical tables as text rows (the mapping is written down in
docs/extract-spec.md), and hands them to the same validation and quarantine as every other
source: a Stripe object that does not fit the canonical model lands in ``quarantine`` with
the rule it broke, never nowhere.

Ids: objects shadowbill created carry their legacy ids in metadata
(``legacy_customer_id``, ``legacy_subscription_id``) and prices their catalog id
(``shadowbill_price_id``); those ids are used, so the snapshot lines up with the legacy one
and the plan. Objects without them keep their Stripe ids.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from shadowbill.extract.stripe_pages import ReadStats, StripePages
from shadowbill.snapshot.tables import TABLES

SOURCE_PREFIX = "stripe:"


def _ts(seconds: Any) -> str:
    if seconds in (None, ""):
        return ""
    return dt.datetime.fromtimestamp(int(seconds), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _decimal_text(value: Any) -> str:
    if value in (None, ""):
        return ""
    return f"{Decimal(str(value)).normalize():f}"


def _id(value: Any) -> str:
    """An expandable field's id (the field is an id or an expanded object)."""
    if isinstance(value, Mapping):
        return _text(value.get("id"))
    return _text(value)


class _Ids:
    """Stripe ids to the ids of the snapshot (legacy ids and catalog price ids where known)."""

    def __init__(self, pages: StripePages) -> None:
        self.customer: dict[str, str] = {}
        for c in pages.objects("customers"):
            self.customer[c["id"]] = (
                _text((c.get("metadata") or {}).get("legacy_customer_id")) or c["id"]
            )
        self.subscription: dict[str, str] = {}
        for s in pages.objects("subscriptions"):
            meta = s.get("metadata") or {}
            self.subscription[s["id"]] = _text(meta.get("legacy_subscription_id")) or s["id"]
        self.meter = {
            m["id"]: _text(m.get("event_name")) or m["id"] for m in pages.objects("meters")
        }
        self.price: dict[str, str] = {}
        self.metered: set[str] = set()
        self.price_meter: dict[str, str] = {}
        for p in pages.objects("prices"):
            meta = p.get("metadata") or {}
            self.price[p["id"]] = (
                _text(meta.get("shadowbill_price_id")) or _text(p.get("lookup_key")) or p["id"]
            )
            recurring = p.get("recurring") or {}
            if recurring.get("usage_type") == "metered":
                self.metered.add(p["id"])
                meter = _text(recurring.get("meter"))
                self.price_meter[p["id"]] = self.meter.get(meter, meter)
        self.coupons = {c["id"]: c for c in pages.objects("coupons")}

    def price_of(self, obj: Mapping[str, Any]) -> tuple[str, str]:
        """(Stripe price id, snapshot price id) of an item or an invoice line, any API shape."""
        price = obj.get("price") or obj.get("plan")
        stripe_id = _id(price)
        if not stripe_id:
            details = ((obj.get("pricing") or {}).get("price_details") or {}).get("price")
            stripe_id = _id(details)
        if isinstance(price, Mapping) and stripe_id and stripe_id not in self.price:
            meta = price.get("metadata") or {}
            self.price[stripe_id] = (
                _text(meta.get("shadowbill_price_id"))
                or _text(price.get("lookup_key"))
                or stripe_id
            )
            if (price.get("recurring") or {}).get("usage_type") == "metered":
                self.metered.add(stripe_id)
        return stripe_id, self.price.get(stripe_id, stripe_id)


def _customers(
    pages: StripePages, ids: _Ids, sales: set[str], currencies: Mapping[str, str]
) -> list[dict[str, str]]:
    rows = []
    for c in pages.objects("customers"):
        address = c.get("address") or {}
        meta = c.get("metadata") or {}
        rows.append(
            {
                "customer_id": ids.customer[c["id"]],
                "name": _text(c.get("name")),
                "email": _text(c.get("email")),
                "country": _text(address.get("country") or meta.get("country")),
                # a customer's currency is set by its first subscription; prefer that
                "currency": (currencies.get(c["id"]) or _text(c.get("currency"))).upper(),
                "segment": _text(meta.get("segment"))
                or ("sales" if c["id"] in sales else "self_serve"),
                "created_at": _ts(c.get("created")),
                "tax_exempt": "true" if c.get("tax_exempt") in ("exempt", "reverse") else "false",
            }
        )
    return rows


def _subscription_tables(
    pages: StripePages, ids: _Ids, currencies: dict[str, str]
) -> tuple[list[dict[str, str]], list[dict[str, str]], list[dict[str, str]], set[str]]:
    subs, items, discounts = [], [], []
    sales: set[str] = set()
    for s in pages.objects("subscriptions"):
        currencies.setdefault(_id(s.get("customer")), _text(s.get("currency")))
        sid = ids.subscription[s["id"]]
        data = list((s.get("items") or {}).get("data") or [])
        first = data[0] if data else {}
        price = first.get("price") or first.get("plan") or {}
        recurring = price.get("recurring") or price
        if s.get("collection_method") == "send_invoice":
            sales.add(_id(s.get("customer")))
        subs.append(
            {
                "subscription_id": sid,
                "customer_id": ids.customer.get(_id(s.get("customer")), _id(s.get("customer"))),
                "status": _text(s.get("status")),
                "interval": _text(recurring.get("interval")),
                "interval_count": _text(recurring.get("interval_count") or 1),
                # API 2025-03-31 moved the current period onto the items
                "current_period_start": _ts(
                    s.get("current_period_start") or first.get("current_period_start")
                ),
                "current_period_end": _ts(
                    s.get("current_period_end") or first.get("current_period_end")
                ),
                "started_at": _ts(s.get("start_date") or s.get("created")),
                "canceled_at": _ts(s.get("canceled_at")),
                "trial_end": _ts(s.get("trial_end")),
                "currency": _text(s.get("currency")).upper(),
            }
        )
        for item in data:
            stripe_price, price_id = ids.price_of(item)
            metered = stripe_price in ids.metered
            items.append(
                {
                    "item_id": _text(item.get("id")),
                    "subscription_id": sid,
                    "price_id": price_id,
                    "quantity": "0"
                    if metered
                    else _text(item.get("quantity") if item.get("quantity") is not None else 1),
                    "valid_from": _ts(item.get("created") or s.get("start_date")),
                    "valid_to": "",
                }
            )
        for d in s.get("discounts") or []:
            if not isinstance(d, Mapping):
                continue  # an id only: the page was read without expand
            source = d.get("source") or {}
            coupon = d.get("coupon") or source.get("coupon") or {}
            if not isinstance(coupon, Mapping):
                coupon = ids.coupons.get(_text(coupon), {"id": _text(coupon)})
            discounts.append(
                {
                    "discount_id": _text(d.get("id")),
                    "subscription_id": sid,
                    "item_id": _text(d.get("subscription_item")),
                    "coupon_id": _text(coupon.get("id")),
                    "percent_off": _decimal_text(coupon.get("percent_off")),
                    "amount_off": _text(coupon.get("amount_off")),
                    "starts_at": _ts(d.get("start")),
                    "ends_at": _ts(d.get("end")),
                }
            )
    return subs, items, discounts, sales


def _invoice_subscription(inv: Mapping[str, Any]) -> str:
    parent = ((inv.get("parent") or {}).get("subscription_details") or {}).get("subscription")
    return _id(parent or inv.get("subscription"))


def _invoice_tables(
    pages: StripePages, ids: _Ids
) -> tuple[list[dict[str, str]], list[dict[str, str]], list[dict[str, str]]]:
    invoices, lines = [], []
    usage: dict[tuple[str, str, str, str], int] = {}
    for inv in pages.objects("invoices"):
        data = list((inv.get("lines") or {}).get("data") or [])
        stripe_sub = _invoice_subscription(inv)
        sid = ids.subscription.get(stripe_sub, stripe_sub)
        kinds, prices = [], []
        for line in data:
            stripe_price, price_id = ids.price_of(line)
            sub_item = (line.get("parent") or {}).get("subscription_item_details") or {}
            proration = bool(sub_item.get("proration") or line.get("proration"))
            if proration:
                kind = "proration"
            elif stripe_price in ids.metered:
                kind = "usage"
            elif stripe_price:
                kind = "recurring"
            else:
                kind = "one_off"
            kinds.append(kind)
            prices.append((stripe_price, price_id))
        recurring = [ln for ln, k in zip(data, kinds, strict=True) if k == "recurring"] or data
        starts = [int((ln.get("period") or {}).get("start") or 0) for ln in recurring]
        ends = [int((ln.get("period") or {}).get("end") or 0) for ln in recurring]
        start = min(starts) if starts else inv.get("period_start")
        end = max(ends) if ends else inv.get("period_end")
        taxes = inv.get("total_taxes")
        tax = (
            sum(int(t.get("amount") or 0) for t in taxes)
            if isinstance(taxes, list)
            else int(inv.get("tax") or 0)
        )
        invoices.append(
            {
                "invoice_id": _text(inv.get("id")),
                "subscription_id": sid,
                "customer_id": ids.customer.get(_id(inv.get("customer")), _id(inv.get("customer"))),
                "period_start": _ts(start),
                "period_end": _ts(end),
                "currency": _text(inv.get("currency")).upper(),
                "subtotal": _text(inv.get("subtotal")),
                "discount": str(
                    sum(int(d.get("amount") or 0) for d in inv.get("total_discount_amounts") or [])
                ),
                "tax": str(tax),
                "total": _text(inv.get("total")),
                "status": _text(inv.get("status")),
                "issued_at": _ts(
                    (inv.get("status_transitions") or {}).get("finalized_at") or inv.get("created")
                ),
            }
        )
        for line, kind, (stripe_price, price_id) in zip(data, kinds, prices, strict=True):
            period = line.get("period") or {}
            pricing = line.get("pricing") or {}
            price = line.get("price") if isinstance(line.get("price"), Mapping) else {}
            unit = (
                pricing.get("unit_amount_decimal")
                or (price or {}).get("unit_amount_decimal")
                or (price or {}).get("unit_amount")
            )
            if (price or {}).get("billing_scheme") == "tiered":
                unit = None  # a tiered line has no single unit price (as the engine writes it)
            lines.append(
                {
                    "line_id": _text(line.get("id")),
                    "invoice_id": _text(inv.get("id")),
                    "price_id": price_id,
                    "kind": kind,
                    "description": _text(line.get("description")),
                    "quantity": _text(line.get("quantity")),
                    "unit_amount_decimal": _decimal_text(unit),
                    "amount": _text(line.get("amount")),
                    "period_start": _ts(period.get("start")),
                    "period_end": _ts(period.get("end")),
                }
            )
            if kind == "usage" and stripe_price in ids.price_meter:
                key = (
                    sid,
                    ids.price_meter[stripe_price],
                    _ts(period.get("start")),
                    _ts(period.get("end")),
                )
                usage[key] = usage.get(key, 0) + int(line.get("quantity") or 0)
    usage_rows = [
        {"subscription_id": s, "meter": m, "period_start": a, "period_end": b, "quantity": str(q)}
        for (s, m, a, b), q in usage.items()
    ]
    return invoices, lines, usage_rows


def _tax_rates(pages: StripePages) -> list[dict[str, str]]:
    return [
        {
            "tax_rate_id": _text(t.get("id")),
            "percentage": _decimal_text(t.get("percentage")),
            "inclusive": "true" if t.get("inclusive") else "false",
            "country": _text(t.get("country")),
        }
        for t in pages.objects("tax_rates")
    ]


def canonical_rows(pages: StripePages) -> dict[str, list[dict[str, str]]]:
    """The staged Stripe objects as canonical text rows, table by table."""
    ids = _Ids(pages)
    currencies: dict[str, str] = {}  # Stripe customer id -> its first subscription's currency
    subs, items, discounts, sales = _subscription_tables(pages, ids, currencies)
    invoices, lines, usage = _invoice_tables(pages, ids)
    return {
        "customers": _customers(pages, ids, sales, currencies),
        "subscriptions": subs,
        "subscription_items": items,
        "discounts": discounts,
        "usage": usage,
        "invoices": invoices,
        "invoice_lines": lines,
        "tax_rates": _tax_rates(pages),
    }


def keep_customers(
    rows: dict[str, list[dict[str, str]]], customers: Iterable[str]
) -> dict[str, list[dict[str, str]]]:
    """Only the rows of these customers (legacy or Stripe ids), for ``--customers``/``--batch``."""
    wanted = set(customers)
    subs = {r["subscription_id"] for r in rows["subscriptions"] if r["customer_id"] in wanted}
    invoices = {r["invoice_id"] for r in rows["invoices"] if r["customer_id"] in wanted}
    keep = {
        "customers": lambda r: r["customer_id"] in wanted,
        "subscriptions": lambda r: r["subscription_id"] in subs,
        "subscription_items": lambda r: r["subscription_id"] in subs,
        "discounts": lambda r: r["subscription_id"] in subs,
        "usage": lambda r: r["subscription_id"] in subs,
        "invoices": lambda r: r["invoice_id"] in invoices,
        "invoice_lines": lambda r: r["invoice_id"] in invoices,
        "tax_rates": lambda r: True,
    }
    return {table: [r for r in table_rows if keep[table](r)] for table, table_rows in rows.items()}


def write_canonical_folder(rows: dict[str, list[dict[str, str]]], folder: Path) -> Path:
    """Write canonical rows as one CSV per table (the file source's input)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for table, table_rows in rows.items():
        columns = TABLES[table].column_names
        frame = pd.DataFrame(table_rows, columns=columns, dtype="string")
        frame.to_csv(folder / f"{table}.csv", index=False)
    return folder


def stats_dict(stats: ReadStats) -> dict[str, Any]:
    """Requests and objects per kind, for the manifest's neighbour file and the summary."""
    return {
        "requests": dict(sorted(stats.requests.items())),
        "objects": dict(sorted(stats.objects.items())),
        "total_requests": stats.total_requests,
    }


def stripe_client(base_url: str | None = None, *, env: Mapping[str, str] | None = None) -> Any:
    """A Stripe SDK client for reading, its key from ``STRIPE_API_KEY`` (never an argument)."""
    import os

    import stripe

    from shadowbill.errors import SourceError

    environ = os.environ if env is None else env
    key = environ.get("STRIPE_API_KEY", "")
    if not key:
        raise SourceError("reading Stripe needs STRIPE_API_KEY in the environment")
    if any(ch in key for ch in "\r\n \t"):
        raise SourceError("STRIPE_API_KEY contains whitespace or a newline; set the key alone")
    if base_url:
        return stripe.StripeClient(key, base_addresses={"api": base_url}, max_network_retries=3)
    return stripe.StripeClient(key, max_network_retries=3)


def extract_stripe(
    out_dir: Path,
    *,
    client: Any,
    created_since: dt.datetime | None = None,
    customers: Iterable[str] | None = None,
    rate: float = 20.0,
    progress: bool = False,
    label: str = "stripe:",
) -> tuple[Any, ReadStats]:
    """Read a Stripe account into a snapshot folder; an interrupted read resumes on the next call.

    The pages read are kept in ``<out>.stripe-read/`` until the snapshot is written; the
    request counts and the API version land in ``<out>.stripe-read.json`` beside it.
    """
    import json

    import stripe

    from shadowbill.extract.run import extract

    out_dir = Path(out_dir)
    staging = out_dir.parent / f"{out_dir.name}.stripe-read"
    since = int(created_since.timestamp()) if created_since is not None else None
    pages = StripePages(client, staging, created_since=since, rate=rate)
    stats = pages.read_all()
    rows = canonical_rows(pages)
    if customers is not None:
        rows = keep_customers(rows, customers)
    folder = write_canonical_folder(rows, staging / "canonical")
    result = extract(str(folder), None, out_dir, progress=progress, source_label=label)
    record = {
        "source": label,
        "api_version": stripe.api_version,
        "created_since": created_since.isoformat() if created_since else None,
        **stats_dict(stats),
        "cursor": pages.cursor,
    }
    sidecar = out_dir.parent / f"{out_dir.name}.stripe-read.json"
    sidecar.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", "utf-8")
    shutil.rmtree(staging, ignore_errors=True)
    return result, stats
