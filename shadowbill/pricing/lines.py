"""Invoice lines as column arrays: one ``LinePart`` per kind, concatenated, ordered, framed.

Lines of an invoice are ordered by kind (recurring, proration, usage, one_off, discount,
tax), then by item (item_id, valid_from) or discount, time and side (credit before
debit); that order is also the order in which a discount is allocated across lines.
Each part is built already ordered within its kind, so putting parts together is one
stable sort on the invoice.

Text columns are :class:`Coded`: a small table of distinct strings and one code per
line, so that "12 x 99.00" is formatted once per distinct (price, quantity), not once
per line, and the strings are materialized once, in the final order.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from shadowbill.pricing import explain_text as tx

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

KINDS = ("recurring", "proration", "usage", "one_off", "discount", "tax")
RECURRING, PRORATION, USAGE, ONE_OFF, DISCOUNT, TAX = range(len(KINDS))


@dataclass(frozen=True)
class Coded:
    """A string column as distinct values plus a code per row (-1: missing)."""

    values: pa.Array
    codes: IntArray

    @staticmethod
    def per_row(values: pa.Array) -> Coded:
        """One value per row."""
        return Coded(values, np.arange(len(values), dtype=np.int64))

    @staticmethod
    def missing(n: int) -> Coded:
        """n missing strings."""
        return Coded(pa.array([], pa.large_string()), np.full(n, -1, dtype=np.int64))

    def take(self, index: IntArray) -> Coded:
        """The rows at ``index``."""
        return Coded(self.values, self.codes[index])

    def materialize(self) -> pa.Array:
        """The strings, one per row (null where the code is -1)."""
        missing = self.codes < 0
        codes = pa.array(self.codes, mask=missing) if missing.any() else pa.array(self.codes)
        return self.values.take(codes)


def concat_coded(parts: list[Coded]) -> Coded:
    """Rows of several coded columns, one after the other."""
    offsets = np.cumsum([0] + [len(p.values) for p in parts])
    values = pa.concat_arrays([p.values.cast(pa.large_string()) for p in parts])
    codes = np.concatenate(
        [_shift(p.codes, int(off)) for p, off in zip(parts, offsets, strict=False)]
    )
    return Coded(values, codes.astype(np.int64))


def _shift(codes: IntArray, offset: int) -> IntArray:
    """Codes moved by ``offset``, keeping -1 (missing) as it is."""
    if offset == 0 or not (codes < 0).any():
        return codes + offset
    return np.where(codes >= 0, codes + offset, -1)


@dataclass(frozen=True)
class LinePart:
    """Lines of one kind, as aligned arrays, ordered by (invoice, order, start, side)."""

    kind: IntArray
    inv: IntArray  # index of the invoice (priced period)
    order: IntArray  # position within (invoice, kind): item row or discount row
    side: IntArray  # proration: 0 credit, 1 debit; else 0
    item: IntArray  # item row, or -1
    price: IntArray  # price table row, or -1
    quantity: IntArray
    has_quantity: BoolArray
    amount: IntArray
    start: IntArray  # line period
    end: IntArray
    item_id: Coded
    ref: Coded  # the line id after the invoice key: "<kind>/<item id, discount id, rate>"
    description: Coded
    explain: Coded
    unit_decimal: Coded

    def __len__(self) -> int:
        return len(self.inv)

    def take(self, index: IntArray) -> LinePart:
        """The lines at ``index``, in that order."""
        numeric = {
            name: getattr(self, name)[index]
            for name in (
                "kind",
                "inv",
                "order",
                "side",
                "item",
                "price",
                "quantity",
                "has_quantity",
                "amount",
                "start",
                "end",
            )
        }
        coded = {
            name: getattr(self, name).take(index)
            for name in ("item_id", "ref", "description", "explain", "unit_decimal")
        }
        return LinePart(**numeric, **coded)

    def sorted(self) -> LinePart:
        """The part ordered by (invoice, order, start, side)."""
        index = np.lexsort((self.side, self.start, self.order, self.inv))
        return self.take(index)

    def with_inv(self, inv: IntArray) -> LinePart:
        """The same lines pointing at other invoice numbers."""
        return replace(self, inv=np.asarray(inv, dtype=np.int64))


def empty_part() -> LinePart:
    """A part with no lines."""
    z = np.zeros(0, dtype=np.int64)
    none = Coded.missing(0)
    return LinePart(
        kind=z,
        inv=z,
        order=z,
        side=z,
        item=z,
        price=z,
        quantity=z,
        has_quantity=np.zeros(0, dtype=bool),
        amount=z,
        start=z,
        end=z,
        item_id=none,
        ref=none,
        description=none,
        explain=none,
        unit_decimal=none,
    )


NUMERIC = ("kind", "inv", "order", "side", "item", "price", "quantity", "has_quantity",
           "amount", "start", "end")  # fmt: skip
TEXT = ("item_id", "ref", "description", "explain", "unit_decimal")


def stack(parts: list[LinePart], *, invoice_order: bool = False) -> LinePart:
    """Parts one after the other; with ``invoice_order``, put in invoice order.

    Parts must come in kind order, each ordered within itself, so invoice order is one
    stable sort on the invoice number. Fields are stacked (and reordered) one at a time
    so that only one temporary column is alive at once.
    """
    parts = [p for p in parts if len(p)] or [empty_part()]
    order: IntArray | None = None
    if invoice_order:
        inv = np.concatenate([p.inv for p in parts])
        order = np.asarray(np.argsort(inv, kind="stable"), dtype=np.int64)
        del inv
    columns: dict[str, Any] = {}
    for name in NUMERIC:  # fields of a line
        column = np.concatenate([getattr(p, name) for p in parts])
        columns[name] = column if order is None else column[order]
    for name in TEXT:  # text fields of a line
        coded = concat_coded([getattr(p, name) for p in parts])
        columns[name] = coded if order is None else coded.take(order)
    return LinePart(**columns)


def lines_frame(
    consumed: list[LinePart],
    invoice_keys: pa.Array,
    price_ids: tuple[str, ...],
    *,
    text: bool = True,
) -> pd.DataFrame:
    """The canonical INVOICE_LINES frame plus invoice_key, item_id and explain.

    ``consumed`` holds the one part and is emptied: each of its arrays is released as soon
    as its column is built, which keeps the peak memory of a large run down. With ``text``
    False, ``description`` and ``explain`` are left empty (comparisons never read them).
    """
    part = consumed.pop()
    arrays = {f.name: getattr(part, f.name) for f in fields(part)}
    del part
    n = len(arrays["inv"])
    key = invoice_keys.take(pa.array(arrays.pop("inv")))
    key_column = _strings(key)
    out: dict[str, object] = {}
    out["line_id"] = _strings(tx.join(key, "/", arrays.pop("ref").materialize()))
    del key
    out["invoice_id"] = key_column
    prices = Coded(pa.array(price_ids, pa.large_string()), arrays.pop("price"))
    out["price_id"] = _strings(prices.materialize())
    kinds = Coded(pa.array(KINDS, pa.large_string()), arrays.pop("kind"))
    out["kind"] = _strings(kinds.materialize())
    description = arrays.pop("description")
    out["description"] = _strings(description.materialize() if text else _nulls(n))
    quantity = pd.array(arrays.pop("quantity"), dtype="Int64")
    quantity[~arrays.pop("has_quantity")] = pd.NA
    out["quantity"] = quantity
    out["unit_amount_decimal"] = _strings(arrays.pop("unit_decimal").materialize())
    out["amount"] = pd.array(arrays.pop("amount"), dtype="Int64")
    out["period_start"] = utc_times(arrays.pop("start"))
    out["period_end"] = utc_times(arrays.pop("end"))
    out["invoice_key"] = key_column
    out["item_id"] = _strings(arrays.pop("item_id").materialize())
    explain = arrays.pop("explain")
    out["explain"] = _strings(explain.materialize() if text else _nulls(n))
    arrays.clear()
    return pd.DataFrame(out, index=pd.RangeIndex(n))


def utc_times(times_us: IntArray) -> pd.Series:
    """int64 microseconds as a ``datetime64[us, UTC]`` column."""
    values = np.asarray(times_us, dtype=np.int64).view("datetime64[us]")
    return pd.Series(pd.DatetimeIndex(values).tz_localize("UTC"), index=pd.RangeIndex(len(values)))


def _nulls(n: int) -> pa.Array:
    return pa.nulls(n, pa.large_string())


def _strings(values: pa.Array) -> pd.Series:
    """An Arrow string array as a pandas "string" column, without a Python round trip."""
    return pd.Series(pd.array(values, dtype="string"))
