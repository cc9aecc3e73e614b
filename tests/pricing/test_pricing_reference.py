"""The vectorized engine equals the one-invoice-at-a-time Decimal reference on random
catalogs and item histories, and keeps the invoice invariants while doing so."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pricing_builders import catalog as make_catalog
from pricing_builders import snapshot
from pricing_reference import RefInvoice, period_start, reference_price

from shadowbill.pricing.catalog import Catalog
from shadowbill.pricing.engine import PricedInvoices, price
from shadowbill.snapshot.tables import Snapshot

EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
END = pd.Timestamp("2025-10-01T00:00:00Z")
CURRENCIES = ("usd", "eur", "jpy", "kwd")


def _iso(when: dt.datetime) -> str:
    return when.isoformat()


def _moment(draw: st.DrawFn, lo_days: int = 0, hi_days: int = 600) -> dt.datetime:
    days = draw(st.integers(lo_days, hi_days))
    seconds = draw(st.sampled_from([0, 0, 3600 * 10, draw(st.integers(0, 86_399))]))
    return EPOCH + dt.timedelta(days=days, seconds=seconds)


amounts = st.integers(0, 60_000)
decimals = st.builds(
    lambda whole, frac, places: str(Decimal(whole) + Decimal(frac).scaleb(-places)),
    st.integers(0, 500),
    st.integers(0, 9999),
    st.integers(1, 4),
)


@st.composite
def unit(draw: st.DrawFn, key: str = "unit_amount") -> dict[str, Any]:
    """A unit amount as an integer or a decimal string."""
    if draw(st.booleans()):
        return {key: draw(amounts)}
    return {f"{key}_decimal": draw(decimals)}


@st.composite
def tiers(draw: st.DrawFn) -> list[dict[str, Any]]:
    """1-3 ascending tiers ending with inf, with unit and/or flat amounts."""
    n = draw(st.integers(1, 3))
    bounds = sorted(draw(st.sets(st.integers(1, 20_000), min_size=n - 1, max_size=n - 1)))
    out = []
    for i in range(n):
        tier: dict[str, Any] = {"up_to": bounds[i] if i < n - 1 else "inf"}
        tier |= draw(unit())
        if draw(st.booleans()):
            tier |= draw(unit("flat_amount"))
        out.append(tier)
    return out


@st.composite
def price_amounts(draw: st.DrawFn, scheme: str) -> dict[str, Any]:
    """The amounts of a price in one currency."""
    if scheme == "tiered":
        return {"tiers": draw(tiers())}
    return draw(unit())


@st.composite
def prices(draw: st.DrawFn) -> list[dict[str, Any]]:
    """1-4 prices of random schemes, licensed or metered, in all test currencies."""
    out = []
    for i in range(draw(st.integers(1, 4))):
        scheme = draw(st.sampled_from(["per_unit", "per_unit", "tiered", "package"]))
        metered = draw(st.booleans())
        body: dict[str, Any] = {
            "id": f"p{i}",
            "product": f"prod{i % 3}",
            "currency": "usd",
            "billing_scheme": "tiered" if scheme == "tiered" else "per_unit",
            "recurring": {
                "interval": "month",
                "usage_type": "metered" if metered else "licensed",
                **({"meter": f"m{i}"} if metered else {}),
            },
        }
        body |= draw(price_amounts(body["billing_scheme"]))
        if scheme == "tiered":
            body["tiers_mode"] = draw(st.sampled_from(["graduated", "volume"]))
        if scheme == "package":
            body["transform_quantity"] = {
                "divide_by": draw(st.integers(1, 1000)),
                "round": draw(st.sampled_from(["up", "down"])),
            }
        body["currency_options"] = {
            c: draw(price_amounts(body["billing_scheme"])) for c in CURRENCIES[1:]
        }
        out.append(body)
    return out


@st.composite
def coupons(draw: st.DrawFn, products: list[str]) -> list[dict[str, Any]]:
    """0-2 coupons: percent or amount, once/repeating/forever, maybe restricted."""
    out = []
    for i in range(draw(st.integers(0, 2))):
        coupon: dict[str, Any] = {"id": f"C{i}"}
        if draw(st.booleans()):
            coupon["percent_off"] = str(draw(st.decimals(Decimal("0.5"), 100, places=2)))
        else:
            coupon["amount_off"] = draw(st.integers(1, 20_000))
            coupon["currency"] = "usd"
            coupon["currency_options"] = {c: {"amount_off": draw(amounts)} for c in CURRENCIES[1:]}
        coupon["duration"] = draw(st.sampled_from(["once", "repeating", "forever"]))
        if coupon["duration"] == "repeating":
            coupon["duration_in_months"] = draw(st.integers(1, 6))
        if draw(st.booleans()):
            coupon["applies_to"] = {
                "products": draw(st.lists(st.sampled_from(products), min_size=1, unique=True))
            }
        out.append(coupon)
    return out


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Snapshot, Catalog, pd.Timestamp | None]:
    """A random catalog and a few subscriptions with item histories, usage and discounts."""
    price_list = draw(prices())
    products = sorted({p["product"] for p in price_list})
    coupon_list = draw(coupons(products))
    rates = [
        {
            "id": rid,
            "display_name": rid.upper(),
            "percentage": str(draw(st.decimals(0, 30, places=3))),
            "inclusive": draw(st.booleans()),
            **({"country": "GB"} if rid == "vat" else {}),
        }
        for rid in ("vat", "state", "city")
    ]
    rate_ids = st.lists(st.sampled_from(["vat", "state", "city"]), max_size=3, unique=True)
    for body in price_list:  # a line's own rates replace the default (Stripe)
        body["tax_rates"] = draw(rate_ids) if draw(st.booleans()) else []
    cat = make_catalog(
        price_list,
        coupons=coupon_list,
        tax_rates=rates,
        default_tax_rates=draw(rate_ids) if draw(st.booleans()) else [],
        billing_mode=draw(st.sampled_from(["classic", "flexible"])),
        tax_mode=draw(st.sampled_from(["computed", "computed", "computed", "none"])),
        engine={
            "proration": draw(st.sampled_from(["seconds", "days", "none"])),
            "rounding": draw(st.sampled_from(["half_up", "half_even"])),
            "discount_rounding": draw(st.sampled_from(["per_line", "per_invoice"])),
            "tax_rounding": draw(st.sampled_from(["per_line", "per_invoice"])),
            "prorations_discountable": draw(st.booleans()),
        },
    )
    subs, items, usage_rows, discounts, customers = [], [], [], [], []
    for s in range(draw(st.integers(1, 3))):
        sid = f"s{s}"
        currency = draw(st.sampled_from(CURRENCIES)).upper()
        interval = draw(st.sampled_from(["month", "month", "month", "year", "week", "day"]))
        count = draw(st.integers(1, 3)) if interval in ("month", "week") else 1
        if interval == "day":
            count = draw(st.integers(7, 40))
        started = _moment(draw, 0, 500)
        trial = started + dt.timedelta(days=14) if draw(st.booleans()) else None
        canceled = (
            started + dt.timedelta(seconds=draw(st.integers(86_400, 500 * 86_400)))
            if draw(st.booleans())
            else None
        )
        anchor = trial or started
        subs.append(
            {
                "subscription_id": sid,
                "customer_id": f"c{s}",
                "status": "active",
                "interval": interval,
                "interval_count": count,
                "current_period_start": _iso(started),
                "current_period_end": _iso(started),
                "started_at": _iso(started),
                "canceled_at": canceled and _iso(canceled),
                "trial_end": trial and _iso(trial),
                "currency": currency,
            }
        )
        customers.append(
            {
                "customer_id": f"c{s}",
                "name": f"c{s}",
                "country": draw(st.sampled_from(["GB", "US"])),
                "currency": currency,
                "segment": "sales",
                "created_at": _iso(started),
                "tax_exempt": draw(st.booleans()),
            }
        )
        for i in range(draw(st.integers(1, 3))):
            t = started
            if draw(st.booleans()):
                t = started + dt.timedelta(seconds=draw(st.integers(1, 300 * 86_400)))
            for r in range(draw(st.integers(1, 3))):
                nxt = t + dt.timedelta(seconds=draw(st.integers(3600, 120 * 86_400)))
                last = r == 2 or draw(st.booleans())
                items.append(
                    {
                        "item_id": f"{sid}-i{i}",
                        "subscription_id": sid,
                        "price_id": draw(st.sampled_from([p["id"] for p in price_list])),
                        "quantity": draw(st.integers(0, 40)),
                        "valid_from": _iso(t),
                        "valid_to": None if last and draw(st.booleans()) else _iso(nxt),
                    }
                )
                t = nxt
                if last:
                    break
        meters = [p["recurring"]["meter"] for p in price_list if "meter" in p["recurring"]]
        for k in range(25):
            ps = period_start(anchor, interval, count, k)
            for meter in meters:
                if draw(st.booleans()):
                    usage_rows.append(
                        {
                            "subscription_id": sid,
                            "meter": meter,
                            "period_start": _iso(ps),
                            "period_end": _iso(ps),
                            "quantity": draw(st.integers(0, 30_000)),
                        }
                    )
        for d in range(draw(st.integers(0, 2))):
            row: dict[str, Any] = {
                "discount_id": f"{sid}-d{d}",
                "subscription_id": sid,
                "item_id": f"{sid}-i0" if draw(st.booleans()) else None,
                "starts_at": _iso(_moment(draw, 0, 600)),
                "ends_at": _iso(_moment(draw, 300, 700)) if draw(st.booleans()) else None,
            }
            choice = draw(st.sampled_from(["coupon", "percent", "amount"]))
            if choice == "coupon" and coupon_list:
                row["coupon_id"] = draw(st.sampled_from([c["id"] for c in coupon_list]))
            elif choice == "amount":
                row["amount_off"] = draw(st.integers(0, 30_000))
            else:
                row["percent_off"] = str(draw(st.decimals(0, 100, places=1)))
            discounts.append(row)
    snap = snapshot(
        subscriptions=subs,
        customers=customers,
        subscription_items=items,
        usage=usage_rows,
        discounts=discounts,
    )
    start = pd.Timestamp("2024-06-01T00:00:00Z") if draw(st.booleans()) else None
    return snap, cat, start


def _engine_invoices(result: PricedInvoices) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    for row in result.lines.itertuples():
        ref = row.line_id.split("/", 2)[2]
        q = None if pd.isna(row.quantity) else int(row.quantity)
        key = row.item_id if row.kind in ("recurring", "usage", "proration") else ref
        out.setdefault(row.invoice_key, []).append(
            (row.kind, None if pd.isna(row.price_id) else row.price_id, key, q, int(row.amount))
        )
    return out


def _reference_invoices(invoices: list[RefInvoice]) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    for inv in invoices:
        rows = []
        for line in inv.lines:
            key = line.item_id if line.kind in ("recurring", "usage", "proration") else line.ref
            rows.append((line.kind, line.price_id, key, line.quantity, line.amount))
        out[inv.key] = rows
    return out


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenarios())
def test_engine_equals_reference(case: tuple[Snapshot, Catalog, pd.Timestamp | None]) -> None:
    snap, cat, start = case
    result = price(snap, cat, start=start, end=END)
    expected, failed = reference_price(snap, cat, start, END)

    assert set(result.errors["subscription_id"]) == failed
    assert _engine_invoices(result) == _reference_invoices(expected)
    totals = {
        inv.key: (inv.subtotal, inv.discount, inv.tax, inv.total, inv.period_end)
        for inv in expected
    }
    got = {
        r.invoice_key: (
            int(r.subtotal),
            int(r.discount),
            int(r.tax),
            int(r.total),
            r.period_end.to_pydatetime(),
        )
        for r in result.invoices.itertuples()
    }
    assert got == totals
    _assert_invariants(result)


def _assert_invariants(result: PricedInvoices) -> None:
    """Integer minor units everywhere; lines sum to the totals; discounts within the base."""
    inv, lines = result.invoices, result.lines
    for column in ("subtotal", "discount", "tax", "total"):
        assert str(inv[column].dtype) == "Int64" and not inv[column].isna().any()
    assert str(lines["amount"].dtype) == "Int64" and not lines["amount"].isna().any()
    assert lines["line_id"].is_unique
    if not len(inv):
        assert not len(lines)
        return
    by_kind = lines.pivot_table(
        index="invoice_key", columns="kind", values="amount", aggfunc="sum", fill_value=0
    ).reindex(inv["invoice_key"], fill_value=0)
    for kind in ("recurring", "usage", "proration", "one_off", "discount", "tax"):
        if kind not in by_kind:
            by_kind[kind] = 0
    charge = by_kind[["recurring", "usage", "proration", "one_off"]].sum(axis=1)
    assert (charge.to_numpy() == inv["subtotal"].to_numpy()).all()
    assert ((-by_kind["discount"]).to_numpy() == inv["discount"].to_numpy()).all()
    # the lines add up to the total; exclusive tax is added, inclusive tax is inside the
    # subtotal (docs.stripe.com/api/invoices/object)
    total = charge - by_kind["discount"].mul(-1) + by_kind["tax"]
    assert (total.to_numpy() == inv["total"].to_numpy()).all()
    assert (inv["discount"] >= 0).all()
    assert (inv["discount"] <= inv["subtotal"].clip(lower=0)).all()
