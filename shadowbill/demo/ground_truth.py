"""The planted errors' ground truth file: canonical ids (as the extract spec yields them),
the affected line's expected and actual amounts in minor units, and a sentence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shadowbill.demo.legacy_engine import Billing
from shadowbill.demo.legacy_text import ints, join, major_units, padded, take
from shadowbill.demo.price_book import CURRENCIES, PriceBook

ERRORS_COLUMNS = (
    "error_id",
    "kind",
    "invoice_id",
    "line_id",
    "subscription_id",
    "customer_id",
    "price_id",
    "expected_amount",
    "actual_amount",
    "description",
)


def errors_frame(
    truth: pd.DataFrame, billing: Billing, tables: dict[str, pa.Table], book: PriceBook
) -> pd.DataFrame:
    """One row per planted error, sorted by invoice id; ``line_id`` empty for a dropped line."""
    inv = pa.array(truth["inv"].to_numpy())
    bills = {
        c: tables["bills"][c].combine_chunks().take(inv) for c in ("bill_no", "plan_ref", "acct_no")
    }
    lines = billing.lines
    marked = lines[lines["err"] >= 0]
    line_of = np.full(len(truth), -1, dtype=np.int64)
    line_of[marked["err"].to_numpy()] = marked.index.to_numpy()
    item_no = tables["bill_items"]["item_no"].combine_chunks()
    line_id = pc.if_else(pa.array(line_of >= 0), item_no.take(pa.array(np.maximum(line_of, 0))), "")
    cur = billing.invoices["cur"].to_numpy()[truth["inv"].to_numpy()]
    code = take(CURRENCIES, cur)
    product = take(book.product_names, truth["price"])
    expected = join(major_units(truth["expected"].to_numpy(), cur), " ", code)
    actual = join(major_units(truth["actual"].to_numpy(), cur), " ", code)
    qty = ints(truth["qty"].to_numpy())
    what = {
        "double_charged_addon": join(
            product, " charged twice: an extra recurring line of ", actual
        ),
        "stale_price": join(
            qty,
            " x ",
            product,
            " billed at the old pro_month_v1 price: ",
            actual,
            " instead of ",
            expected,
        ),
        "rounding_slip": join(qty, " x ", product, " billed ", actual, " instead of ", expected),
        "missing_usage_line": join(qty, " x ", product, " (", expected, ") not billed"),
    }
    kind = pa.array(truth["kind"].to_numpy(dtype=str), pa.string())
    description: pa.Array = pa.nulls(len(truth), pa.string())
    for name, text in what.items():  # per error kind
        description = pc.if_else(pc.equal(kind, name), text, description)
    out = pd.DataFrame(
        {
            "error_id": join("ERR-", padded(truth["err"].to_numpy() + 1, 5)).to_pylist(),
            "kind": kind.to_pylist(),
            "invoice_id": bills["bill_no"].to_pylist(),
            "line_id": line_id.to_pylist(),
            "subscription_id": bills["plan_ref"].to_pylist(),
            "customer_id": bills["acct_no"].to_pylist(),
            "price_id": take(book.price_ids, truth["price"]).to_pylist(),
            "expected_amount": truth["expected"].to_numpy(),
            "actual_amount": truth["actual"].to_numpy(),
            "description": description.to_pylist(),
        }
    )
    return out.sort_values(["invoice_id", "error_id"], kind="stable").reset_index(drop=True)
