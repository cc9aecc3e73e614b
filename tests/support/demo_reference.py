"""An independent, slow and literal reading of docs/billing-model.md, for a few legacy invoices.

It shares no code with shadowbill.demo: it reads the legacy SQLite tables, the extract
spec (for the SKU and channel codes) and the legacy catalog YAML, and bills one invoice at a
time with Python Decimals and datetimes, so that the vectorized generator is held to the
document rather than to itself.
"""

from __future__ import annotations

import calendar
import datetime as dt
import sqlite3
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path
from typing import Any

import yaml

EXPONENT = {"USD": 2, "GBP": 2, "EUR": 2, "JPY": 0, "KWD": 3}
UTC = dt.UTC


def round_half_up(value: Decimal) -> int:
    """Ties away from zero, on the exact value."""
    return int(value.to_integral_value(rounding=ROUND_HALF_UP))


def exact_ratio(numerator: Decimal, denominator: int) -> Decimal:
    """numerator / denominator with enough digits that half-up rounding decides correctly."""
    with localcontext() as ctx:
        ctx.prec = 80
        return numerator / Decimal(denominator)


def add_months(moment: dt.datetime, months: int) -> dt.datetime:
    """Months added to an anchor: day clamped to the month's length, time of day kept."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(
        year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1])
    )


def minor(text: str, currency: str) -> int:
    """A major-unit decimal text as integer minor units (exact)."""
    value = Decimal(text).scaleb(EXPONENT[currency])
    assert value == value.to_integral_value(), (text, currency)
    return int(value)


def from_epoch(seconds: int | None) -> dt.datetime | None:
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, UTC)


def from_naive(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass(frozen=True)
class Line:
    """One invoice line: kind, price id (None for discount/tax), amount, the item it bills."""

    kind: str
    price_id: str | None
    amount: int
    item: str | None = None


@dataclass(frozen=True)
class Invoice:
    lines: list[Line]
    subtotal: int
    discount: int
    tax: int

    @property
    def total(self) -> int:
        return self.subtotal - self.discount + self.tax


class LegacyBook:
    """The legacy database, its spec's code maps and the legacy catalog, read plainly."""

    def __init__(self, db: Path, spec: Path, catalog: Path) -> None:
        self.conn = sqlite3.connect(db)
        self.conn.row_factory = sqlite3.Row
        spec_data = yaml.safe_load(spec.read_text())
        tables = spec_data["tables"]
        self.sku_to_price: dict[str, str] = tables["subscription_items"]["columns"]["price_id"][
            "map"
        ]
        self.channel_to_meter: dict[str, str] = tables["usage"]["columns"]["meter"]["map"]
        cat = yaml.safe_load(catalog.read_text())
        self.engine: dict[str, Any] = cat["engine"]
        assert self.engine == {
            "proration": "days",
            "rounding": "half_up",
            "discount_rounding": "per_invoice",
            "tax_rounding": "per_invoice",
            "prorations_discountable": True,
        }
        self.prices: dict[str, dict[str, Any]] = {p["id"]: p for p in cat["prices"]}
        self.tax_by_country = {t["country"]: Decimal(t["percentage"]) for t in cat["tax_rates"]}

    def unit(self, price_id: str, currency: str) -> Decimal:
        """The unit amount (minor units, maybe fractional) of a price in a currency."""
        price = self.prices[price_id]
        options = {k.upper(): v for k, v in (price.get("currency_options") or {}).items()}
        options[price["currency"].upper()] = price
        entry = options[currency]
        if entry.get("unit_amount_decimal") is not None:
            return Decimal(str(entry["unit_amount_decimal"]))
        return Decimal(int(entry["unit_amount"]))

    def metered(self, price_id: str) -> bool:
        return self.prices[price_id]["recurring"].get("usage_type") == "metered"

    def rows(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        return list(self.conn.execute(sql, args))

    def bill(self, bill_no: str) -> sqlite3.Row:
        return self.rows("SELECT * FROM bills WHERE bill_no = ?", bill_no)[0]

    def bill_lines(self, bill_no: str) -> list[Line]:
        """The legacy engine's own lines of a bill: canonical kinds, amounts, billed item."""
        kinds = {
            "RECUR": "recurring",
            "PRORATE": "proration",
            "USAGE": "usage",
            "DISC": "discount",
            "TAX": "tax",
        }
        plan = self.bill(bill_no)["plan_ref"]
        item_of = {
            r["sku"]: r["line_ref"]
            for r in self.rows("SELECT sku, line_ref FROM plan_lines WHERE plan_ref = ?", plan)
        }
        out = []
        for r in self.rows("SELECT * FROM bill_items WHERE bill_no = ? ORDER BY item_no", bill_no):
            price = self.sku_to_price[r["sku"]] if r["sku"] is not None else None
            item = item_of.get(r["sku"]) if r["sku"] is not None else None
            out.append(Line(kinds[r["item_type"]], price, minor(r["amount"], r["cur"]), item))
        return out

    # ------------------------------------------------------------------ billing ----

    def check_period(self, plan: sqlite3.Row, start: dt.datetime, end: dt.datetime) -> None:
        """The bill's period must be period k of the subscription for some k."""
        anchor = from_naive(plan["trial_until"]) or from_epoch(plan["signup_epoch"])
        assert anchor is not None
        every = 12 if plan["billing_cycle"] == "Y" else 1
        k = 0
        while add_months(anchor, k * every) < start:
            k += 1
        assert add_months(anchor, k * every) == start, (plan["plan_ref"], start)
        assert add_months(anchor, (k + 1) * every) == end, (plan["plan_ref"], end)

    def charges(self, bill_no: str) -> list[Line]:
        """Recurring, proration and usage lines of a bill, per the document."""
        b = self.bill(bill_no)
        cur = b["cur"]
        start, end = from_naive(b["period_from"]), from_naive(b["period_to"])
        assert start is not None and end is not None
        plan = self.rows("SELECT * FROM plans_active WHERE plan_ref = ?", b["plan_ref"])[0]
        self.check_period(plan, start, end)
        lines: list[Line] = []
        days = (end.date() - start.date()).days
        for r in self.rows(
            "SELECT * FROM plan_lines WHERE plan_ref = ? ORDER BY hist_id", b["plan_ref"]
        ):
            price = self.sku_to_price[r["sku"]]
            vf, vt = from_epoch(r["eff_from"]), from_epoch(r["eff_to"])
            assert vf is not None
            if self.metered(price):
                continue
            unit, qty = self.unit(price, cur), r["qty"]
            if vf <= start and (vt is None or start < vt) and qty > 0:
                lines.append(Line("recurring", price, round_half_up(qty * unit), r["line_ref"]))
            for t, sign in ((vf, 1), (vt, -1)):
                if t is not None and start < t < end:
                    left = (end.date() - t.date()).days
                    amount = round_half_up(exact_ratio(qty * unit * left, days))
                    lines.append(Line("proration", price, sign * amount, r["line_ref"]))
        for r in self.rows(
            "SELECT * FROM plan_lines WHERE plan_ref = ? ORDER BY hist_id", b["plan_ref"]
        ):
            price = self.sku_to_price[r["sku"]]
            vf, vt = from_epoch(r["eff_from"]), from_epoch(r["eff_to"])
            assert vf is not None
            if not self.metered(price) or not (vf < end and (vt is None or vt > start)):
                continue
            meter = self.prices[price]["recurring"]["meter"]
            for u in self.rows("SELECT * FROM meter_readings WHERE plan_ref = ?", b["plan_ref"]):
                if (
                    self.channel_to_meter[u["channel"]] == meter
                    and from_epoch(u["period_from"]) == start
                    and u["units"] > 0
                ):
                    amount = round_half_up(u["units"] * self.unit(price, cur))
                    lines.append(Line("usage", price, amount, r["line_ref"]))
        return lines

    def finish(self, bill_no: str, charges: list[Line]) -> Invoice:
        """Discount and tax lines and the totals, from the given charge lines."""
        b = self.bill(bill_no)
        cur = b["cur"]
        start = from_naive(b["period_from"])
        subtotal = sum(x.amount for x in charges)
        lines = list(charges)
        discount = 0
        grants = self.rows("SELECT * FROM promo_grants WHERE plan_ref = ?", b["plan_ref"])
        active = [
            g
            for g in grants
            if from_epoch(g["valid_from"]) <= start  # type: ignore[operator]
            and (g["valid_until"] == 0 or start < from_epoch(g["valid_until"]))  # type: ignore[operator]
        ]
        for line_level in (True, False):
            for g in (g for g in active if (g["line_ref"] is not None) == line_level):
                if line_level:
                    base = sum(x.amount for x in charges if x.item == g["line_ref"])
                else:
                    base = subtotal - discount
                base = max(base, 0)
                if g["pct"] is not None:
                    off = round_half_up(exact_ratio(base * Decimal(g["pct"]), 100))
                else:
                    off = min(minor(g["amt"], cur), base)
                discount += off
                lines.append(Line("discount", None, -off))
        acct = self.rows("SELECT * FROM accounts WHERE acct_no = ?", b["acct_no"])[0]
        rate = self.tax_by_country.get(acct["country_code"].upper())
        tax = 0
        if rate is not None and acct["vat_exempt"] == "N":
            tax = round_half_up(exact_ratio((subtotal - discount) * rate, 100))
            lines.append(Line("tax", None, tax))
        return Invoice(lines, subtotal, discount, tax)

    def invoice(self, bill_no: str) -> Invoice:
        """The whole invoice the document says this bill should be."""
        return self.finish(bill_no, self.charges(bill_no))


def read_table(db: Path, table: str) -> list[sqlite3.Row]:
    """A whole legacy table, values exactly as stored (text stays text)."""
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute(f"SELECT * FROM {table} ORDER BY rowid"))
    finally:
        conn.close()
