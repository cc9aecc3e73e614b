"""keyed_lines against its plain definition: sort_values on the keys, then cumcount."""

from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowbill.reconcile.line_match import LINE_KEY, keyed_lines

_ORDER = ["subscription_id", "invoice_start", "kind", "price_id", "line_start", "sign", "line_id"]


def _reference(invoices: pd.DataFrame, lines: pd.DataFrame) -> pd.DataFrame:
    head = invoices[["invoice_id", "subscription_id", "customer_id", "currency", "period_start"]]
    head = head.rename(columns={"period_start": "invoice_start"})
    out = lines[lines["kind"].isin(["recurring", "usage", "proration", "one_off"])]
    out = out.merge(head, on="invoice_id", how="inner")
    out["line_start"] = out["period_start"]
    out["sign"] = (out["amount"] < 0).map({True: "-", False: "+"}).astype("string")
    out["price_id"] = out["price_id"].astype("string").fillna("")
    out = out.sort_values(_ORDER, kind="stable", na_position="last").reset_index(drop=True)
    out["nth"] = out.groupby(LINE_KEY[:-1], dropna=False).cumcount().astype("int64")
    return out


_line = st.tuples(
    st.sampled_from(["in_1", "in_2", "in_3", "in_gone"]),
    st.sampled_from(["recurring", "usage", "proration", "tax"]),
    st.sampled_from(["p_a", "p_b", None]),
    st.sampled_from([1, 2]),
    st.integers(-3, 3),
    st.sampled_from(["l1", "l2", "l3", "l1x", None]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_line, max_size=40))
def test_keyed_lines_order_and_counts_match_the_plain_definition(
    rows: list[tuple[str, str, str | None, int, int, str | None]],
) -> None:
    """Lines tied on every key keep their line-id order; nth counts within a key."""
    t = pd.Timestamp("2025-01-01", tz="UTC")
    invoices = pd.DataFrame(
        {
            "invoice_id": pd.array(["in_1", "in_2", "in_3"], dtype="string"),
            "subscription_id": pd.array(["sub_b", "sub_a", "sub_a"], dtype="string"),
            "customer_id": pd.array(["c1", "c2", "c2"], dtype="string"),
            "currency": pd.array(["usd"] * 3, dtype="string"),
            "period_start": pd.Series([t, t, t + pd.Timedelta(days=31)]).astype(
                "datetime64[us, UTC]"
            ),
        }
    )
    lines = pd.DataFrame(
        {
            "line_id": pd.array([r[5] for r in rows], dtype="string"),
            "invoice_id": pd.array([r[0] for r in rows], dtype="string"),
            "price_id": pd.array([r[2] for r in rows], dtype="string"),
            "kind": pd.array([r[1] for r in rows], dtype="string"),
            "amount": pd.array([r[4] for r in rows], dtype="Int64"),
            "period_start": pd.Series([t + pd.Timedelta(days=r[3]) for r in rows]).astype(
                "datetime64[us, UTC]"
            ),
        }
    )
    got = keyed_lines(invoices, lines)
    want = _reference(invoices, lines)
    pd.testing.assert_frame_equal(got, want[got.columns.tolist()], check_dtype=False)
