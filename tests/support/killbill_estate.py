"""A small Kill Bill estate, stored the way Kill Bill stores it, on MariaDB or PostgreSQL.

Schema: examples/killbill/schema (Kill Bill's tables; PostgreSQL gets Kill Bill's documented
``datetime`` shim first). Rows follow Kill Bill's conventions: event and creation times are
UTC DATETIMEs taken at the account's reference time of day; invoice item periods are the
account's local DATEs; amounts are NUMERIC(15,9) in major units; TAX items (a tax plugin's)
are linked to the item they tax; a plan change or an immediate cancellation writes a
REPAIR_ADJ credit; credits are CREDIT_ADJ/CBA_ADJ account-level items; a void invoice keeps
its items with status VOID. The estate is as of 2024-05-31.

Differences planted on purpose (what reconciliation must find, by name):

- ``trial_invoice``: Kill Bill issues a $0 invoice for each trial month (3 of them);
- ``cancellation_credit``: Tokyo's immediate cancellation credits the unused part
  (REPAIR_ADJ -2,581 JPY and its tax -258 JPY);
- ``item_adjustment``: New York's February invoice was adjusted down by 10.00 USD (ITEM_ADJ);
- ``price_typo``: New York's April invoice charged 55.00 USD instead of the catalog's 50.00.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa

SCHEMA = Path(__file__).resolve().parents[2] / "examples" / "killbill" / "schema"
TABLES = (
    "rolled_up_usage",
    "invoice_items",
    "invoices",
    "subscription_events",
    "subscriptions",
    "bundles",
    "accounts",
)
PLANTED = ("trial_invoice", "cancellation_credit", "item_adjustment", "price_typo")
AS_OF = dt.date(2024, 5, 31)
_ids = itertools.count(1)


def _id(kind: str) -> str:
    """Deterministic UUID-shaped ids (the same estate on every database)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"killbill-estate/{kind}/{next(_ids)}"))


def _money(value: Decimal, exponent: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-exponent), rounding=ROUND_HALF_UP)


@dataclass
class Account:
    """One Kill Bill account with its zone, currency and billing day."""

    name: str
    zone: str
    currency: str
    country: str
    bcd: int
    created: dt.datetime  # local wall time of creation: Kill Bill's reference time
    tax_pct: Decimal = Decimal(0)
    id: str = field(default_factory=lambda: _id("account"))

    @property
    def exponent(self) -> int:
        return 0 if self.currency == "JPY" else 2

    def at(self, day: dt.date) -> dt.datetime:
        """A local date at the account's reference time of day, as a naive UTC DATETIME."""
        local = dt.datetime.combine(day, self.created.time(), tzinfo=ZoneInfo(self.zone))
        return local.astimezone(dt.UTC).replace(tzinfo=None)


class Estate:
    """Rows to insert, per table, built scenario by scenario."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, object]]] = {t: [] for t in TABLES}
        self.record = itertools.count(1)

    def _add(self, table: str, **row: object) -> dict[str, object]:
        row.setdefault("created_by", "killbill")
        self.rows[table].append(row)
        return row

    def account(self, acct: Account) -> Account:
        created = acct.at(acct.created.date())
        self._add(
            "accounts",
            id=acct.id,
            external_key=acct.name.lower().replace(" ", "-"),
            email=f"billing@{acct.name.split()[0].lower()}.example",
            name=acct.name,
            currency=acct.currency,
            billing_cycle_day_local=acct.bcd,
            reference_time=created,
            time_zone=acct.zone,
            country=acct.country,
            migrated=False,
            created_date=created,
            tenant_record_id=1,
        )
        return acct

    def bundle(self, acct: Account, key: str) -> str:
        bundle_id = _id("bundle")
        when = acct.at(acct.created.date())
        self._add(
            "bundles",
            id=bundle_id,
            external_key=key,
            account_id=acct.id,
            original_created_date=when,
            created_date=when,
            updated_by="killbill",
            updated_date=when,
            account_record_id=1,
            tenant_record_id=1,
        )
        return bundle_id

    def subscription(self, acct: Account, bundle: str, category: str, start: dt.date) -> str:
        sub = _id("subscription")
        self._add(
            "subscriptions",
            id=sub,
            bundle_id=bundle,
            category=category,
            start_date=acct.at(start),
            bundle_start_date=acct.at(start),
            migrated=False,
            created_date=acct.at(start),
            updated_by="killbill",
            updated_date=acct.at(start),
            account_record_id=1,
            tenant_record_id=1,
        )
        return sub

    def event(
        self,
        acct: Account,
        sub: str,
        day: dt.date,
        event_type: str,
        user_type: str | None,
        plan: str | None,
        phase: str | None,
        *,
        active: bool = True,
    ) -> None:
        when = acct.at(day)
        self._add(
            "subscription_events",
            id=_id("event"),
            event_type=event_type,
            user_type=user_type,
            effective_date=when,
            subscription_id=sub,
            plan_name=plan,
            phase_name=phase,
            price_list_name="DEFAULT",
            is_active=active,
            created_date=when,
            updated_by="killbill",
            updated_date=when,
            account_record_id=1,
            tenant_record_id=1,
        )

    def invoice(self, acct: Account, day: dt.date, status: str = "COMMITTED") -> str:
        inv = _id("invoice")
        self._add(
            "invoices",
            id=inv,
            account_id=acct.id,
            invoice_date=day,
            target_date=day,
            currency=acct.currency,
            status=status,
            migrated=False,
            parent_invoice=False,
            created_date=acct.at(day),
            account_record_id=1,
            tenant_record_id=1,
        )
        return inv

    def item(
        self,
        acct: Account,
        inv: str,
        kind: str,
        amount: Decimal,
        start: dt.date | None,
        end: dt.date | None,
        *,
        bundle: str | None = None,
        sub: str | None = None,
        plan: str | None = None,
        phase: str | None = None,
        usage: str | None = None,
        rate: Decimal | None = None,
        quantity: int | None = None,
        linked: str | None = None,
        created: dt.date | None = None,
    ) -> str:
        item_id = _id("item")
        self._add(
            "invoice_items",
            id=item_id,
            type=kind,
            invoice_id=inv,
            account_id=acct.id,
            bundle_id=bundle,
            subscription_id=sub,
            description=f"{kind.lower()} {phase or usage or ''}".strip(),
            plan_name=plan,
            phase_name=phase,
            usage_name=usage,
            start_date=start,
            end_date=end,
            amount=amount,
            rate=rate,
            currency=acct.currency,
            linked_item_id=linked,
            quantity=quantity,
            created_date=acct.at(created or start or AS_OF),
            account_record_id=1,
            tenant_record_id=1,
        )
        return item_id

    def taxed(
        self,
        acct: Account,
        inv: str,
        item: str,
        amount: Decimal,
        start: dt.date,
        end: dt.date,
        **kw: object,
    ) -> None:
        """A tax plugin's TAX item for one taxable item (rounded half up per item)."""
        if acct.tax_pct:
            tax = _money(amount * acct.tax_pct / 100, acct.exponent)
            self.item(acct, inv, "TAX", tax, start, end, linked=item, **kw)  # type: ignore[arg-type]

    def usage(self, acct: Account, sub: str, unit: str, day: dt.date, amount: int) -> None:
        noon = dt.datetime.combine(day, dt.time(12), tzinfo=ZoneInfo(acct.zone))
        when = noon.astimezone(dt.UTC).replace(tzinfo=None)
        self._add(
            "rolled_up_usage",
            id=_id("usage"),
            subscription_id=sub,
            unit_type=unit,
            record_date=when,
            amount=Decimal(amount),
            tracking_id=_id("tracking"),
            created_date=when,
            account_record_id=1,
            tenant_record_id=1,
        )


def _months(start: dt.date, n: int) -> dt.date:
    month = start.month - 1 + n
    return start.replace(year=start.year + month // 12, month=month % 12 + 1)


def _prorated(price: Decimal, start: dt.date, change: dt.date, end: dt.date, exp: int) -> Decimal:
    """Kill Bill's proration: by whole local days left over whole days of the period, half up."""
    return _money(price * (end - change).days / (end - start).days, exp)


def _tiered(quantity: int, tiers: list[tuple[int | None, Decimal]]) -> Decimal:
    """Graduated tiers: each unit at the price of the tier it falls in."""
    total, below = Decimal(0), 0
    for top, price in tiers:
        upto = quantity if top is None else min(quantity, top)
        if upto > below:
            total += (upto - below) * price
        below = top if top is not None else quantity
    return total


def build(estate: Estate | None = None) -> Estate:
    """The whole estate: four accounts in four zones, every scenario the preset must handle."""
    global _ids
    _ids = itertools.count(1)  # the same ids on every database
    e = estate or Estate()
    std, prem, addon = "standard-monthly", "premium-monthly", "analytics-monthly"
    api_usd = [(1000, Decimal("0.05")), (None, Decimal("0.02"))]
    api_eur = [(1000, Decimal("0.04")), (None, Decimal("0.015"))]

    # Los Angeles: a trial, then a mid-period upgrade onto a plan with usage.
    la = e.account(
        Account(
            "Pacific Widgets",
            "America/Los_Angeles",
            "USD",
            "US",
            14,
            dt.datetime(2024, 1, 14, 9, 30),
        )
    )
    b1 = e.bundle(la, "pacific-main")
    s1 = e.subscription(la, b1, "BASE", dt.date(2024, 1, 14))
    e.event(la, s1, dt.date(2024, 1, 14), "API_USER", "CREATE", std, f"{std}-trial")
    e.event(la, s1, dt.date(2024, 2, 14), "PHASE", None, None, f"{std}-evergreen")
    e.event(la, s1, dt.date(2024, 3, 20), "API_USER", "CHANGE", prem, f"{prem}-evergreen")
    inv = e.invoice(la, dt.date(2024, 1, 14))
    e.item(
        la,
        inv,
        "FIXED",
        Decimal(0),
        dt.date(2024, 1, 14),
        dt.date(2024, 2, 14),
        bundle=b1,
        sub=s1,
        plan=std,
        phase=f"{std}-trial",
    )  # trial_invoice
    for start in (dt.date(2024, 2, 14), dt.date(2024, 3, 14)):
        inv = e.invoice(la, start)
        march = e.item(
            la,
            inv,
            "RECURRING",
            Decimal(50),
            start,
            _months(start, 1),
            bundle=b1,
            sub=s1,
            plan=std,
            phase=f"{std}-evergreen",
            rate=Decimal(50),
        )
    change, p0, p1 = dt.date(2024, 3, 20), dt.date(2024, 3, 14), dt.date(2024, 4, 14)
    inv = e.invoice(la, change)
    e.item(
        la,
        inv,
        "REPAIR_ADJ",
        -_prorated(Decimal(50), p0, change, p1, 2),
        change,
        p1,
        bundle=b1,
        sub=s1,
        plan=std,
        phase=f"{std}-evergreen",
        linked=march,
    )
    e.item(
        la,
        inv,
        "RECURRING",
        _prorated(Decimal(120), p0, change, p1, 2),
        change,
        p1,
        bundle=b1,
        sub=s1,
        plan=prem,
        phase=f"{prem}-evergreen",
        rate=Decimal(120),
    )
    e.usage(la, s1, "api-calls", dt.date(2024, 3, 25), 700)
    e.usage(la, s1, "api-calls", dt.date(2024, 4, 5), 800)
    e.usage(la, s1, "api-calls", dt.date(2024, 4, 20), 400)
    for start, used, since in ((p1, 1500, change), (_months(p1, 1), 400, p1)):
        inv = e.invoice(la, start)
        e.item(
            la,
            inv,
            "RECURRING",
            Decimal(120),
            start,
            _months(start, 1),
            bundle=b1,
            sub=s1,
            plan=prem,
            phase=f"{prem}-evergreen",
            rate=Decimal(120),
        )
        e.item(
            la,
            inv,
            "USAGE",
            _tiered(used, api_usd),
            since,
            start,
            bundle=b1,
            sub=s1,
            plan=prem,
            phase=f"{prem}-evergreen",
            usage=f"{prem}-api",
            quantity=used,
        )

    # Berlin: premium with usage and 19% tax per item, an add-on started mid-period.
    de = e.account(
        Account(
            "Berliner Daten GmbH",
            "Europe/Berlin",
            "EUR",
            "DE",
            1,
            dt.datetime(2023, 12, 20, 14, 0),
            Decimal(19),
        )
    )
    b2 = e.bundle(de, "berlin-main")
    s2 = e.subscription(de, b2, "BASE", dt.date(2024, 1, 1))
    e.event(de, s2, dt.date(2024, 1, 1), "API_USER", "CREATE", prem, f"{prem}-evergreen")
    s3 = e.subscription(de, b2, "ADD_ON", dt.date(2024, 2, 10))
    e.event(de, s3, dt.date(2024, 2, 10), "API_USER", "CREATE", addon, f"{addon}-evergreen")
    used_de = {
        dt.date(2024, 1, 1): 800,
        dt.date(2024, 2, 1): 2500,
        dt.date(2024, 3, 1): 1200,
        dt.date(2024, 4, 1): 300,
    }
    for start, used in used_de.items():
        e.usage(de, s2, "api-calls", start + dt.timedelta(days=9), used)
    for k in range(5):
        start = _months(dt.date(2024, 1, 1), k)
        end = _months(start, 1)
        inv = e.invoice(de, start)
        kw = {"bundle": b2, "sub": s2, "plan": prem, "phase": f"{prem}-evergreen"}
        rec = e.item(de, inv, "RECURRING", Decimal(110), start, end, rate=Decimal(110), **kw)  # type: ignore[arg-type]
        e.taxed(de, inv, rec, Decimal(110), start, end, bundle=b2, sub=s2)
        if k >= 2:
            kwa = {"bundle": b2, "sub": s3, "plan": addon, "phase": f"{addon}-evergreen"}
            rec = e.item(de, inv, "RECURRING", Decimal(14), start, end, rate=Decimal(14), **kwa)  # type: ignore[arg-type]
            e.taxed(de, inv, rec, Decimal(14), start, end, bundle=b2, sub=s3)
        previous = _months(start, -1)
        if previous in used_de:
            amount = _tiered(used_de[previous], api_eur)
            use = e.item(
                de,
                inv,
                "USAGE",
                amount,
                previous,
                start,
                usage=f"{prem}-api",
                quantity=used_de[previous],
                **kw,
            )  # type: ignore[arg-type]
            e.taxed(de, inv, use, amount, previous, start, bundle=b2, sub=s2)
        if k == 1:  # the add-on, prorated from 10 February to the period end
            p_start, added = dt.date(2024, 2, 1), dt.date(2024, 2, 10)
            amount = _prorated(Decimal(14), p_start, added, end, 2)
            inv2 = e.invoice(de, added)
            rec = e.item(
                de,
                inv2,
                "RECURRING",
                amount,
                added,
                end,
                bundle=b2,
                sub=s3,
                plan=addon,
                phase=f"{addon}-evergreen",
                rate=Decimal(14),
            )
            e.taxed(de, inv2, rec, amount, added, end, bundle=b2, sub=s3)

    # Tokyo: a trial, then an immediate cancellation with a credit for the unused part.
    jp = e.account(
        Account(
            "Tokyo Kaisha",
            "Asia/Tokyo",
            "JPY",
            "JP",
            5,
            dt.datetime(2024, 1, 5, 11, 0),
            Decimal(10),
        )
    )
    b3 = e.bundle(jp, "tokyo-main")
    s4 = e.subscription(jp, b3, "BASE", dt.date(2024, 1, 5))
    e.event(jp, s4, dt.date(2024, 1, 5), "API_USER", "CREATE", std, f"{std}-trial")
    e.event(jp, s4, dt.date(2024, 2, 5), "PHASE", None, None, f"{std}-evergreen")
    e.event(jp, s4, dt.date(2024, 3, 20), "API_USER", "CANCEL", std, f"{std}-evergreen")
    inv = e.invoice(jp, dt.date(2024, 1, 5))
    e.item(
        jp,
        inv,
        "FIXED",
        Decimal(0),
        dt.date(2024, 1, 5),
        dt.date(2024, 2, 5),
        bundle=b3,
        sub=s4,
        plan=std,
        phase=f"{std}-trial",
    )  # trial_invoice
    for start in (dt.date(2024, 2, 5), dt.date(2024, 3, 5)):
        inv = e.invoice(jp, start)
        rec = e.item(
            jp,
            inv,
            "RECURRING",
            Decimal(5000),
            start,
            _months(start, 1),
            bundle=b3,
            sub=s4,
            plan=std,
            phase=f"{std}-evergreen",
            rate=Decimal(5000),
        )
        e.taxed(jp, inv, rec, Decimal(5000), start, _months(start, 1), bundle=b3, sub=s4)
    cancel, c0, c1 = dt.date(2024, 3, 20), dt.date(2024, 3, 5), dt.date(2024, 4, 5)
    credit = -_prorated(Decimal(5000), c0, cancel, c1, 0)
    inv = e.invoice(jp, cancel)
    rep = e.item(
        jp,
        inv,
        "REPAIR_ADJ",
        credit,
        cancel,
        c1,
        bundle=b3,
        sub=s4,
        plan=std,
        phase=f"{std}-evergreen",
        linked=rec,
    )  # cancellation_credit
    e.taxed(jp, inv, rep, credit, cancel, c1, bundle=b3, sub=s4)

    # New York: a trial, a void invoice re-issued, an item adjustment, a credit, a price typo.
    ny = e.account(
        Account(
            "Empire Corp", "America/New_York", "USD", "US", 20, dt.datetime(2023, 12, 20, 16, 45)
        )
    )
    b4 = e.bundle(ny, "empire-main")
    s5 = e.subscription(ny, b4, "BASE", dt.date(2023, 12, 20))
    e.event(ny, s5, dt.date(2023, 12, 20), "API_USER", "CREATE", std, f"{std}-trial")
    e.event(ny, s5, dt.date(2024, 1, 20), "PHASE", None, None, f"{std}-evergreen")
    e.event(
        ny, s5, dt.date(2024, 2, 1), "API_USER", "CHANGE", prem, f"{prem}-evergreen", active=False
    )  # a change undone: Kill Bill keeps the row, inactive
    inv = e.invoice(ny, dt.date(2023, 12, 20))
    e.item(
        ny,
        inv,
        "FIXED",
        Decimal(0),
        dt.date(2023, 12, 20),
        dt.date(2024, 1, 20),
        bundle=b4,
        sub=s5,
        plan=std,
        phase=f"{std}-trial",
    )  # trial_invoice
    kw4 = {"bundle": b4, "sub": s5, "plan": std, "phase": f"{std}-evergreen"}
    for k in range(5):
        start = _months(dt.date(2024, 1, 20), k)
        end = _months(start, 1)
        price = Decimal(55) if k == 3 else Decimal(50)  # price_typo in April
        if k == 1:  # issued wrongly at 60.00, voided, issued again the next day
            void = e.invoice(ny, start, status="VOID")
            e.item(ny, void, "RECURRING", Decimal(60), start, end, rate=Decimal(60), **kw4)  # type: ignore[arg-type]
            inv = e.invoice(ny, start + dt.timedelta(days=1))
        else:
            inv = e.invoice(ny, start)
        rec = e.item(ny, inv, "RECURRING", price, start, end, rate=price, **kw4)  # type: ignore[arg-type]
        if k == 1:  # item_adjustment: 10.00 off February's fee, on its own invoice
            adj = e.invoice(ny, dt.date(2024, 2, 25))
            e.item(
                ny,
                adj,
                "ITEM_ADJ",
                Decimal(-10),
                start,
                end,
                linked=rec,
                created=dt.date(2024, 2, 25),
                **kw4,
            )  # type: ignore[arg-type]
    credit_inv = e.invoice(ny, dt.date(2024, 3, 1))  # a goodwill credit: account balance
    e.item(ny, credit_inv, "CREDIT_ADJ", Decimal(-25), dt.date(2024, 3, 1), dt.date(2024, 3, 1))
    e.item(ny, credit_inv, "CBA_ADJ", Decimal(25), dt.date(2024, 3, 1), dt.date(2024, 3, 1))
    return e


def _statements(path: Path) -> list[str]:
    text = "\n".join(
        line for line in path.read_text().splitlines() if not line.lstrip().startswith("--")
    )
    return [s.strip() for s in text.split(";") if s.strip()]


def load(url: str, estate: Estate | None = None) -> Estate:
    """Create Kill Bill's tables (dropping old ones) and insert the estate; returns it."""
    estate = estate or build()
    engine = sa.create_engine(url)
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        for table in TABLES:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
        if postgres:
            conn.exec_driver_sql("DROP DOMAIN IF EXISTS datetime")
            for statement in _statements(SCHEMA / "postgres_shim.sql"):
                conn.exec_driver_sql(statement)
        for statement in _statements(SCHEMA / "killbill.sql"):
            conn.exec_driver_sql(statement)
        meta = sa.MetaData()
        meta.reflect(conn, only=list(TABLES))
        for table in reversed(TABLES):
            rows = estate.rows[table]
            if rows:
                columns = sorted({k for r in rows for k in r})
                full = [{c: r.get(c) for c in columns} for r in rows]
                conn.execute(meta.tables[table].insert(), full)
    engine.dispose()
    return estate
