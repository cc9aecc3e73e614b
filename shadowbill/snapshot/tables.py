"""The canonical snapshot contract: eight tables with pinned columns, keys and vocabularies.

Every extractor produces exactly these tables; every later stage reads only them.
Timestamps are UTC (``timestamp[us, tz=UTC]``); money is ``int64`` minor units;
prices below a minor unit are decimal strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")
STR = pa.string()
INT = pa.int64()
BOOL = pa.bool_()


@dataclass(frozen=True)
class Column:
    """One canonical column: its Arrow type and whether a value is required."""

    name: str
    type: pa.DataType
    required: bool = True
    enum: tuple[str, ...] | None = None
    non_negative: bool = False


@dataclass(frozen=True)
class ForeignKey:
    """``column`` of this table must name a row of ``table`` by its key."""

    column: str
    table: str
    nullable: bool = False


@dataclass(frozen=True)
class Table:
    """A canonical table: columns in order, primary key, and references."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    foreign_keys: tuple[ForeignKey, ...] = field(default_factory=tuple)

    @property
    def column_names(self) -> list[str]:
        """Column names in their pinned order."""
        return [c.name for c in self.columns]

    @property
    def arrow_schema(self) -> pa.Schema:
        """The pinned Arrow schema of the table's Parquet file."""
        return pa.schema([pa.field(c.name, c.type, nullable=not c.required) for c in self.columns])

    def column(self, name: str) -> Column:
        """The column called ``name``."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


SEGMENTS = ("self_serve", "sales")
SUBSCRIPTION_STATUSES = ("trialing", "active", "past_due", "canceled", "unpaid", "paused")
INTERVALS = ("day", "week", "month", "year")
LINE_KINDS = ("recurring", "usage", "proration", "one_off", "discount", "tax")
INVOICE_STATUSES = ("draft", "open", "paid", "void", "uncollectible")
COLLECTION_METHODS = ("charge_automatically", "send_invoice")

CUSTOMERS = Table(
    "customers",
    (
        Column("customer_id", STR),
        Column("name", STR),
        Column("email", STR, required=False),
        Column("country", STR),
        Column("currency", STR),
        Column("segment", STR, enum=SEGMENTS),
        Column("created_at", TS),
        Column("tax_exempt", BOOL),
        Column("timezone", STR, required=False),  # IANA name; billing dates are local there
        # the customer's existing Stripe customer (attached by a migration, never duplicated)
        Column("stripe_customer_id", STR, required=False),
        # the billing address an outside tax engine needs (with country above)
        Column("address_line1", STR, required=False),
        Column("address_city", STR, required=False),
        Column("address_postal_code", STR, required=False),
        Column("address_state", STR, required=False),
    ),
    key=("customer_id",),
)
SUBSCRIPTIONS = Table(
    "subscriptions",
    (
        Column("subscription_id", STR),
        Column("customer_id", STR),
        Column("status", STR, enum=SUBSCRIPTION_STATUSES),
        Column("interval", STR, enum=INTERVALS),
        Column("interval_count", INT, non_negative=True),
        Column("current_period_start", TS),
        Column("current_period_end", TS),
        Column("started_at", TS),
        Column("canceled_at", TS, required=False),
        Column("trial_end", TS, required=False),
        Column("currency", STR),
        # the payment terms the legacy system holds for the subscription
        Column("collection_method", STR, required=False, enum=COLLECTION_METHODS),
        Column("days_until_due", INT, required=False, non_negative=True),
    ),
    key=("subscription_id",),
    foreign_keys=(ForeignKey("customer_id", "customers"),),
)
SUBSCRIPTION_ITEMS = Table(
    "subscription_items",
    (
        Column("item_id", STR),
        Column("subscription_id", STR),
        Column("price_id", STR),
        Column("quantity", INT, non_negative=True),
        Column("valid_from", TS),
        Column("valid_to", TS, required=False),
    ),
    key=("item_id", "valid_from"),
    foreign_keys=(ForeignKey("subscription_id", "subscriptions"),),
)
DISCOUNTS = Table(
    "discounts",
    (
        Column("discount_id", STR),
        Column("subscription_id", STR),
        Column("item_id", STR, required=False),
        Column("coupon_id", STR, required=False),
        Column("percent_off", STR, required=False),  # decimal string, e.g. "12.5"
        Column("amount_off", INT, required=False, non_negative=True),
        Column("starts_at", TS),
        Column("ends_at", TS, required=False),
    ),
    key=("discount_id",),
    foreign_keys=(ForeignKey("subscription_id", "subscriptions"),),
)
USAGE = Table(
    "usage",
    (
        Column("subscription_id", STR),
        Column("meter", STR),
        Column("period_start", TS),
        Column("period_end", TS),
        Column("quantity", INT, non_negative=True),
    ),
    key=("subscription_id", "meter", "period_start"),
    foreign_keys=(ForeignKey("subscription_id", "subscriptions"),),
)
INVOICES = Table(
    "invoices",
    (
        Column("invoice_id", STR),
        Column("subscription_id", STR),
        Column("customer_id", STR),
        Column("period_start", TS),
        Column("period_end", TS),
        Column("currency", STR),
        Column("subtotal", INT),
        Column("discount", INT),
        Column("tax", INT),
        Column("total", INT),
        Column("status", STR, enum=INVOICE_STATUSES),
        Column("issued_at", TS),
    ),
    key=("invoice_id",),
    foreign_keys=(
        ForeignKey("subscription_id", "subscriptions"),
        ForeignKey("customer_id", "customers"),
    ),
)
INVOICE_LINES = Table(
    "invoice_lines",
    (
        Column("line_id", STR),
        Column("invoice_id", STR),
        Column("price_id", STR, required=False),
        Column("kind", STR, enum=LINE_KINDS),
        Column("description", STR, required=False),
        Column("quantity", INT, required=False),
        Column("unit_amount_decimal", STR, required=False),
        Column("amount", INT),
        Column("period_start", TS),
        Column("period_end", TS),
    ),
    key=("line_id",),
    foreign_keys=(ForeignKey("invoice_id", "invoices"),),
)
TAX_RATES = Table(
    "tax_rates",
    (
        Column("tax_rate_id", STR),
        Column("percentage", STR),  # decimal string, e.g. "20" or "8.875"
        Column("inclusive", BOOL),
        Column("country", STR),
    ),
    key=("tax_rate_id",),
)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        CUSTOMERS,
        SUBSCRIPTIONS,
        SUBSCRIPTION_ITEMS,
        DISCOUNTS,
        USAGE,
        INVOICES,
        INVOICE_LINES,
        TAX_RATES,
    )
}
TABLE_ORDER: tuple[str, ...] = tuple(TABLES)

QUARANTINE = Table(
    "quarantine",
    (
        Column("table", STR),
        Column("source_ref", STR),  # e.g. "customers.csv row 17" or "legacy.accounts id=42"
        Column("reason", STR),  # a stable code, e.g. "dangling_foreign_key"
        Column("detail", STR),  # a sentence a person can act on
        Column("row", STR),  # the rejected row as JSON, values as text
    ),
    key=(),
)


def empty_frame(table: Table) -> pd.DataFrame:
    """An empty frame with the table's pinned columns and dtypes."""
    return (
        table.arrow_schema.empty_table()
        .to_pandas(types_mapper=pd.ArrowDtype)
        .astype({c.name: pandas_dtype(c.type) for c in table.columns})
    )


def pandas_dtype(arrow_type: pa.DataType) -> str:
    """The pandas dtype used in memory for a pinned Arrow type."""
    if pa.types.is_timestamp(arrow_type):
        return "datetime64[us, UTC]"
    if pa.types.is_integer(arrow_type):
        return "Int64"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    return "string"


@dataclass
class Snapshot:
    """The canonical legacy tables in memory, plus quarantined rows and the manifest."""

    tables: dict[str, pd.DataFrame]
    quarantine: pd.DataFrame = field(default_factory=lambda: empty_frame(QUARANTINE))
    manifest: dict[str, object] = field(default_factory=dict)

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]

    @classmethod
    def from_frames(cls, frames: Mapping[str, pd.DataFrame]) -> Snapshot:
        """A snapshot from canonical frames; missing tables are empty."""
        return cls(
            {name: frames[name] if name in frames else empty_frame(t) for name, t in TABLES.items()}
        )
