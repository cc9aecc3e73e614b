"""Comparison A, legacy drift: issued legacy invoices against the legacy catalog recomputed.

A clean comparison proves the legacy model is understood; every difference is a legacy
billing error (or a misunderstanding of the legacy engine) to explain before migrating.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shadowbill.money import CURRENCY_EXPONENTS
from shadowbill.reconcile.findings import FINDING_COLUMNS, finding_ids
from shadowbill.reconcile.line_match import invoice_key, iso_seconds, keyed_lines, match_lines

_INVOICE_ON = ["subscription_id", "period_start"]


def _line_findings(
    expected: pd.DataFrame, actual: pd.DataFrame, comparison: str, who: str
) -> pd.DataFrame:
    m = match_lines(expected, actual)
    amount_exp = m["amount_exp"].astype("Int64").fillna(0)
    amount_act = m["amount_act"].astype("Int64").fillna(0)
    differs = (m["_merge"] != "both") | (amount_exp != amount_act)
    m = m[differs].copy()
    if m.empty:
        return pd.DataFrame(columns=[*FINDING_COLUMNS, "invoice_start"])
    amount_exp = m["amount_exp"].astype("Int64").fillna(0)
    amount_act = m["amount_act"].astype("Int64").fillna(0)
    delta = amount_act - amount_exp
    qty_same = m["quantity_exp"].astype("Int64").eq(m["quantity_act"].astype("Int64")).fillna(False)
    unit_same = (
        m["unit_amount_decimal_exp"]
        .astype("string")
        .eq(m["unit_amount_decimal_act"].astype("string"))
        .fillna(False)
    )
    cause = np.select(
        [
            m["_merge"] == "right_only",
            m["_merge"] == "left_only",
            (delta.abs() <= 1) & qty_same,
            qty_same & ~unit_same,
        ],
        ["extra_line", "missing_line", "rounding", "price_change"],
        default="unexplained",
    )
    customer = m["customer_id_exp"].fillna(m["customer_id_act"])
    currency = m["currency_exp"].fillna(m["currency_act"])
    qty = (
        m["quantity_act"]
        .astype("Int64")
        .fillna(m["quantity_exp"].astype("Int64"))
        .astype("string")
        .fillna("")
    )
    what = line_label(m, qty)
    explanation = np.select(
        [
            cause == "extra_line",
            cause == "missing_line",
            cause == "rounding",
            cause == "price_change",
        ],
        [
            who + " billed a line the model does not produce: " + what,
            who + " did not bill " + what,
            who + " rounded " + what + " differently by one minor unit",
            who
            + " billed "
            + what
            + " at "
            + m["unit_amount_decimal_act"].astype("string").fillna("?")
            + " per unit; the model's price is "
            + m["unit_amount_decimal_exp"].astype("string").fillna("?"),
        ],
        default=who + " amount of " + what + " differs from the model",
    )
    out = pd.DataFrame(
        {
            "comparison": comparison,
            "level": "line",
            "customer_id": customer.astype("string"),
            "customer_name": pd.array([pd.NA] * len(m), dtype="string"),
            "subscription_id": m["subscription_id"].astype("string"),
            "invoice_start": m["invoice_start"],
            "period_start": m["line_start"],
            "period_end": m["period_end_exp"].fillna(m["period_end_act"]),
            "line_key": (
                m["kind"].astype("string")
                + "/"
                + m["price_id"].astype("string")
                + "/"
                + iso_seconds(m["line_start"])
                + "/"
                + m["sign"].astype("string")
                + "/"
                + m["nth"].astype("string")
            ),
            "price_id": m["price_id"].astype("string"),
            "currency": currency.astype("string"),
            "expected": amount_exp,
            "actual": amount_act,
            "delta": delta,
            "cause": pd.array(cause, dtype="string"),
            "explanation": pd.array(explanation, dtype="string"),
        }
    )
    out["invoice_key"] = invoice_key(out["subscription_id"], out["invoice_start"])
    return out


def line_label(m: pd.DataFrame, qty: pd.Series) -> pd.Series:
    """ "recurring pro_month x12", or for a line without a price (a one-off) its description:
    'one_off "Setup fee"'; no " x" when the line has no quantity."""
    price_id = m["price_id"].astype("string").fillna("")
    description = m.get("description_act", pd.Series(pd.NA, index=m.index)).astype("string")
    description = description.fillna(
        m.get("description_exp", pd.Series(pd.NA, index=m.index)).astype("string")
    ).fillna("")
    named = pd.Series(
        np.where(
            price_id != "",
            " " + price_id,
            np.where(description != "", ' "' + description + '"', ""),
        ),
        index=m.index,
        dtype="string",
    )
    counted = pd.Series(np.where(qty != "", " x" + qty, ""), index=m.index, dtype="string")
    return m["kind"].astype("string") + named + counted


def compare_legacy_drift(
    actual_invoices: pd.DataFrame,
    actual_lines: pd.DataFrame,
    expected_invoices: pd.DataFrame,
    expected_lines: pd.DataFrame,
    *,
    tax_external: bool = False,
) -> pd.DataFrame:
    """Findings of comparison A at line and invoice level (only where the sides differ).

    ``tax_external`` (the legacy catalog's ``tax_mode: external``): the legacy tax came
    from an outside engine and is taken as issued; invoices are compared before tax and
    each tax difference is its own informational finding, cause ``tax_external``.
    """
    return compare_invoice_sets(
        expected_invoices,
        expected_lines,
        actual_invoices,
        actual_lines,
        comparison="A",
        who="legacy",
        tax_external=tax_external,
    )


def _before_tax(inv: pd.DataFrame, side: str) -> pd.Series:
    """An invoice's amount before tax (subtotal - discount), missing side as 0."""
    subtotal = inv[f"subtotal_{side}"].astype("Int64").fillna(0)
    return subtotal - inv[f"discount_{side}"].astype("Int64").fillna(0)


def _tax_findings(inv: pd.DataFrame, comparison: str, who: str) -> pd.DataFrame:
    """One ``tax_external`` finding per invoice whose tax differs (both sides present)."""
    added_exp = inv["total_exp"].astype("Int64").fillna(0) - _before_tax(inv, "exp")
    added_act = inv["total_act"].astype("Int64").fillna(0) - _before_tax(inv, "act")
    differs = (inv["_merge"] == "both") & (added_exp != added_act)
    inv, added_exp, added_act = inv[differs], added_exp[differs], added_act[differs]
    return pd.DataFrame(
        {
            "comparison": comparison,
            "level": "invoice",
            "customer_id": inv["customer_id_exp"].fillna(inv["customer_id_act"]).astype("string"),
            "subscription_id": inv["subscription_id"].astype("string"),
            "invoice_key": invoice_key(inv["subscription_id"], inv["period_start"]),
            "period_start": inv["period_start"],
            "period_end": inv["period_end_exp"].fillna(inv["period_end_act"]),
            "line_key": pd.array(["tax"] * len(inv), dtype="string"),
            "price_id": pd.array([pd.NA] * len(inv), dtype="string"),
            "currency": inv["currency_exp"].fillna(inv["currency_act"]).astype("string"),
            "expected": added_exp.astype("Int64"),
            "actual": added_act.astype("Int64"),
            "delta": (added_act - added_exp).astype("Int64"),
            "cause": pd.array(["tax_external"] * len(inv), dtype="string"),
            "explanation": pd.array(
                [f"{who} tax from the outside tax engine, taken as issued (tax_mode external)"]
                * len(inv),
                dtype="string",
            ),
            "actual_invoice_id": inv["invoice_id_act"].astype("string"),
        }
    )


def compare_invoice_sets(
    expected_invoices: pd.DataFrame,
    expected_lines: pd.DataFrame,
    actual_invoices: pd.DataFrame,
    actual_lines: pd.DataFrame,
    *,
    comparison: str,
    who: str,
    tax_external: bool = False,
) -> pd.DataFrame:
    """Line and invoice findings where ``who``'s invoices differ from the model's, with causes.

    With ``tax_external`` the invoices are compared before tax (subtotal - discount) and
    tax differences are findings of their own (cause ``tax_external``, severity info).
    """
    lines = _line_findings(
        keyed_lines(expected_invoices, expected_lines),
        keyed_lines(actual_invoices, actual_lines),
        comparison,
        who,
    )

    cols = [
        "invoice_id",
        *_INVOICE_ON,
        "customer_id",
        "currency",
        "period_end",
        "subtotal",
        "discount",
        "tax",
        "total",
    ]
    inv = expected_invoices[cols].merge(
        actual_invoices[cols],
        on=_INVOICE_ON,
        how="outer",
        suffixes=("_exp", "_act"),
        indicator=True,
    )
    taxes = _tax_findings(inv, comparison, who) if tax_external else None
    if tax_external:  # amounts before tax; the tax is reported apart
        for side in ("exp", "act"):
            before = _before_tax(inv, side)
            inv[f"total_{side}"] = before.where(inv[f"total_{side}"].notna())
            inv[f"tax_{side}"] = inv[f"tax_{side}"].where(inv[f"tax_{side}"].isna(), 0)
    parts_differ = np.zeros(len(inv), dtype=bool)
    for part in ("subtotal", "discount", "tax", "total"):
        parts_differ |= (
            inv[f"{part}_exp"].astype("Int64").fillna(0)
            != inv[f"{part}_act"].astype("Int64").fillna(0)
        ).to_numpy(dtype=bool)
    inv = inv[(inv["_merge"] != "both") | parts_differ].copy()

    # The invoice's cause is its largest line difference's cause; with no line
    # difference, a one-unit total difference is rounding of discount or tax.
    if not lines.empty:
        ranked = lines.assign(size=lines["delta"].abs()).sort_values(
            ["subscription_id", "invoice_start", "size"],
            ascending=[True, True, False],
            kind="stable",
        )
        top = ranked.drop_duplicates(["subscription_id", "invoice_start"])[
            ["subscription_id", "invoice_start", "cause", "explanation"]
        ].rename(columns={"invoice_start": "period_start"})
        counts = (
            lines.groupby(["subscription_id", "invoice_start"])
            .size()
            .rename("n_lines")
            .reset_index()
        )
        counts = counts.rename(columns={"invoice_start": "period_start"})
        inv = inv.merge(top, on=_INVOICE_ON, how="left").merge(counts, on=_INVOICE_ON, how="left")
    else:
        inv["cause"] = pd.NA
        inv["explanation"] = pd.NA
        inv["n_lines"] = 0
    delta = inv["total_act"].astype("Int64").fillna(0) - inv["total_exp"].astype("Int64").fillna(0)
    fallback = np.select(
        [inv["_merge"] == "left_only", inv["_merge"] == "right_only", delta.abs() <= 1],
        ["missing_line", "extra_line", "rounding"],
        default="unexplained",
    )
    cause = (
        inv["cause"].astype("string").fillna(pd.Series(fallback, index=inv.index, dtype="string"))
    )
    fallback_text = np.select(
        [inv["_merge"] == "left_only", inv["_merge"] == "right_only"],
        [
            who + " has no such invoice",
            who + " has an invoice the model does not produce",
        ],
        default=who + " discount or tax differs from the model's",
    )
    n_more = inv["n_lines"].fillna(0).astype(int) - 1
    more = np.where(n_more > 0, " (+" + n_more.astype(str) + " more line differences)", "")
    explanation = inv["explanation"].astype("string").fillna(
        pd.Series(fallback_text, index=inv.index, dtype="string")
    ) + pd.Series(more, index=inv.index, dtype="string")
    invoices = pd.DataFrame(
        {
            "comparison": comparison,
            "level": "invoice",
            "customer_id": inv["customer_id_exp"].fillna(inv["customer_id_act"]).astype("string"),
            "customer_name": pd.array([pd.NA] * len(inv), dtype="string"),
            "subscription_id": inv["subscription_id"].astype("string"),
            "invoice_key": invoice_key(inv["subscription_id"], inv["period_start"]),
            "period_start": inv["period_start"],
            "period_end": inv["period_end_exp"].fillna(inv["period_end_act"]),
            "line_key": pd.array([pd.NA] * len(inv), dtype="string"),
            "price_id": pd.array([pd.NA] * len(inv), dtype="string"),
            "currency": inv["currency_exp"].fillna(inv["currency_act"]).astype("string"),
            "expected": inv["total_exp"].astype("Int64"),
            "actual": inv["total_act"].astype("Int64"),
            "delta": delta.astype("Int64"),
            "cause": cause,
            "explanation": explanation.astype("string"),
            "actual_invoice_id": inv["invoice_id_act"].astype("string"),
        }
    )
    parts = [invoices, lines.drop(columns=["invoice_start"])]
    if taxes is not None and len(taxes):
        parts.append(taxes)
    out = finish_findings(pd.concat(parts, ignore_index=True))
    informational = (out["cause"] == "tax_external").to_numpy(dtype=bool, na_value=False)
    out.loc[informational, "severity"] = "info"
    return out


def finish_findings(
    frame: pd.DataFrame, extra: tuple[str, ...] = ("actual_invoice_id",)
) -> pd.DataFrame:
    """Add severity and stable ids, and pin the findings columns and dtypes."""
    out = frame.copy()
    if out.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in FINDING_COLUMNS.items()})
    if "customer_name" not in out.columns:
        out["customer_name"] = pd.array([pd.NA] * len(out), dtype="string")
    if "severity" not in out.columns:
        one_major = {c: 10**e for c, e in CURRENCY_EXPONENTS.items()}
        minor_unit_one = out["currency"].astype("string").str.upper().map(one_major).fillna(100)
        big = out["delta"].abs() >= minor_unit_one.astype("Int64")
        out["severity"] = np.where(
            out["cause"].isin(["unexplained", "missing_line", "extra_line", "price_change"]) | big,
            "error",
            "warning",
        )
    out["finding_id"] = finding_ids(out.assign(invoice_key=out["invoice_key"].fillna("")))
    keep = [*FINDING_COLUMNS, *[c for c in extra if c in out.columns]]
    out = out[keep].astype({c: t for c, t in FINDING_COLUMNS.items()})
    return out.sort_values(
        ["comparison", "subscription_id", "period_start", "level", "line_key"], kind="stable"
    ).reset_index(drop=True)
