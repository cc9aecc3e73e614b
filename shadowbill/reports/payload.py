"""The data the HTML report embeds for its browser-side customer explorer.

The customer table carries every customer (compact: repeated strings are coded as
indices into per-column dictionaries); invoice lines, waterfalls and subscription
diffs are included for a bounded set of customers only (top movers and exceptions
first, then the reconciler's sample), so that the file stays small at 100,000
customers. Money stays integer minor units; the browser formats it by string
operations, never by float arithmetic.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup

from shadowbill.money import exponent
from shadowbill.reconcile.result import ReconciliationResult
from shadowbill.reports.aggregates import (
    CAUSE_LABELS,
    change_basis_points,
    exception_frames,
    is_in,
    top_movers,
)

# Bounds on the line detail embedded in one report file.
MAX_DETAIL_CUSTOMERS = 2_000
MAX_DETAIL_LINES = 50_000
MAX_DIFF_CHARS = 20_000

CUSTOMER_FIELDS = (
    "id",
    "name",
    "segment",
    "country",
    "currency",
    "legacy_plan",
    "new_plan",
    "rule",
    "status",
    "invoices",
    "legacy",
    "new",
    "delta",
    "change_bp",
    "unexplained",
    "drift",
    "detail",
)
# The report lists at most this many customers (findings and workbook files hold all).
MAX_REPORT_CUSTOMERS = 50_000
_CODED = ("segment", "country", "currency", "legacy_plan", "new_plan", "rule", "status")

_SCRIPT_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def script_json(text: str) -> Markup:
    """JSON text made safe inside ``<script type="application/json">``.

    ``<``, ``>`` and ``&`` only ever occur inside JSON strings, where their ``\\uXXXX``
    escapes mean the same characters, so no ``</script>`` or comment opener survives.
    """
    for raw, escaped in _SCRIPT_ESCAPES.items():
        text = text.replace(raw, escaped)
    return Markup(text)


def _values_json(frame: pd.DataFrame) -> str:
    """A frame as a JSON array of row arrays (NA -> null), written by pandas in C."""
    if frame.empty:
        return "[]"
    return frame.to_json(orient="values", force_ascii=True, double_precision=15)


def _code(series: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Dictionary-encode a string column: codes and the sorted distinct values."""
    codes, uniques = pd.factorize(series.astype("string").fillna(""), sort=True)
    return codes.astype(np.int64), [str(u) for u in uniques]


def detail_customers(
    result: ReconciliationResult,
    *,
    max_customers: int = MAX_DETAIL_CUSTOMERS,
    max_lines: int = MAX_DETAIL_LINES,
) -> pd.Index:
    """Customers whose invoices and waterfall the report embeds, most important first."""
    ups, downs = top_movers(result.customers)
    ex = exception_frames(result)
    c = result.customers
    flagged = c[
        (c["unexplained"].fillna(0) != 0) | (c["drift"].fillna(0) != 0) | (c["status"] != "mapped")
    ]
    candidates = pd.concat(
        [
            ups["customer_id"],
            downs["customer_id"],
            ex["unexplained"]["customer_id"],
            ex["drift"]["customer_id"],
            flagged["customer_id"],
            result.lines["customer_id"],
            result.waterfall["customer_id"],
        ],
        ignore_index=True,
    ).astype("string")
    candidates = candidates.dropna().drop_duplicates().reset_index(drop=True)
    with_detail = pd.concat([result.lines["customer_id"], result.waterfall["customer_id"]])
    candidates = candidates[is_in(candidates, with_detail.drop_duplicates())]
    line_counts = result.lines["customer_id"].astype(object).value_counts()
    cost = (
        pd.Series(candidates.astype(object).to_numpy())
        .map(line_counts)
        .fillna(0)
        .astype(np.int64)
        .to_numpy()
    )
    keep = (np.cumsum(cost) <= max_lines) & (np.arange(len(candidates)) < max_customers)
    return pd.Index(candidates[keep], dtype="string")


def report_customers(customers: pd.DataFrame, detail: pd.Index, limit: int) -> pd.DataFrame:
    """The customers the report lists: all of them up to ``limit``; beyond, the detail
    customers, every exception (unexplained, drift, unmapped), then the largest changes,
    so the report stays the same size however large the estate (the files hold all)."""
    if len(customers) <= limit:
        return customers
    must = (
        is_in(customers["customer_id"], detail)
        | (customers["unexplained"].fillna(0) != 0).to_numpy(dtype=bool)
        | (customers["drift"].fillna(0) != 0).to_numpy(dtype=bool)
        | (customers["status"] != "mapped").to_numpy(dtype=bool)
    )
    size = np.abs(change_basis_points(customers).fillna(0).to_numpy(dtype=np.int64))
    rank = np.lexsort((-size, ~must))  # the must-haves first, then the largest changes
    keep = np.zeros(len(customers), dtype=bool)
    keep[rank[:limit]] = True
    return customers[keep]


def customer_rows(
    result: ReconciliationResult, detail: pd.Index
) -> tuple[str, dict[str, list[str]]]:
    """The report's customers as a compact JSON row array, and the coded columns' dictionaries."""
    c = report_customers(result.customers, detail, MAX_REPORT_CUSTOMERS)
    dictionaries: dict[str, list[str]] = {}
    coded: dict[str, np.ndarray] = {}
    sources = {
        "segment": c["segment"],
        "country": c["country"],
        "currency": c["currency"].astype("string").str.upper(),
        "legacy_plan": c["legacy_plan"],
        "new_plan": c["new_plan"],
        "rule": c["rule_id"],
        "status": c["status"],
    }
    for name in _CODED:
        coded[name], dictionaries[name] = _code(sources[name])
    frame = pd.DataFrame(
        {
            "id": c["customer_id"].astype("string"),
            "name": c["name"].astype("string"),
            **coded,
            "invoices": c["invoices"].astype("Int64"),
            "legacy": c["legacy_total"].astype("Int64"),
            "new": c["new_total"].astype("Int64"),
            "delta": c["delta"].astype("Int64"),
            "change_bp": change_basis_points(c),
            "unexplained": c["unexplained"].astype("Int64"),
            "drift": c["drift"].astype("Int64"),
            "detail": is_in(c["customer_id"], detail).astype("int64"),
        }
    )
    return _values_json(frame[list(CUSTOMER_FIELDS)]), dictionaries


_LINE_FIELDS = (
    "customer_id",
    "subscription_id",
    "invoice_key",
    "period",
    "side",
    "kind",
    "price_id",
    "description",
    "quantity",
    "amount",
    "explain",
)
_STEP_FIELDS = ("customer_id", "cause", "amount", "explanation")


def _shared_codes(columns: dict[str, pd.Series]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Dictionary-encode several string columns against one table; NA becomes -1."""
    names = list(columns)
    values = pd.concat([columns[n].astype("string") for n in names], ignore_index=True)
    codes, uniques = pd.factorize(values)
    bounds = np.cumsum([len(columns[n]) for n in names])[:-1]
    return dict(zip(names, np.split(codes.astype(np.int64), bounds), strict=True)), [
        str(u) for u in uniques
    ]


def _detail_frames(result: ReconciliationResult, detail: pd.Index) -> tuple[str, str, list[str]]:
    """The detail customers' invoice lines and waterfall steps as coded JSON rows.

    Repeated strings (ids, keys, kinds, descriptions, causes) are indices into one
    shared string table, which keeps the embedded detail about three times smaller.
    """
    lines = result.lines[is_in(result.lines["customer_id"], detail)]
    lines = lines.sort_values(["customer_id", "period_start", "invoice_key", "side"], kind="stable")
    steps = result.waterfall[is_in(result.waterfall["customer_id"], detail)]
    steps = steps.sort_values(["customer_id", "step"], kind="stable")
    text = {
        **{f"l.{c}": lines[c] for c in _LINE_FIELDS if c not in ("period", "quantity", "amount")},
        "l.period": lines["period_start"].dt.strftime("%Y-%m-%d"),
        **{f"s.{c}": steps[c] for c in ("customer_id", "cause", "explanation")},
    }
    codes, strings = _shared_codes(text)
    line_frame = pd.DataFrame(
        {
            c: (
                lines[c].astype("Int64").to_numpy()
                if c in ("quantity", "amount")
                else codes[f"l.{c}"]
            )
            for c in _LINE_FIELDS
        }
    )
    step_frame = pd.DataFrame(
        {
            c: (steps[c].astype("Int64").to_numpy() if c == "amount" else codes[f"s.{c}"])
            for c in _STEP_FIELDS
        }
    )
    return _values_json(line_frame), _values_json(step_frame), strings


def _diffs(result: ReconciliationResult, subscriptions: Iterable[str]) -> dict[str, Any]:
    """The structured subscription diffs of the detail customers, each bounded in size."""
    out: dict[str, Any] = {}
    for sub in sorted(set(subscriptions) & set(result.diffs)):  # bounded: detail set only
        text = json.dumps(result.diffs[sub], sort_keys=True, default=str)
        out[sub] = (
            json.loads(text)
            if len(text) <= MAX_DIFF_CHARS
            else {"truncated": f"{len(text):,} characters; see the reconciler's diff output"}
        )
    return out


def build_payload(
    result: ReconciliationResult, *, findings_href: str, detail: pd.Index | None = None
) -> Markup:
    """The report's embedded JSON document, escaped for a ``<script>`` element."""
    detail = detail_customers(result) if detail is None else detail
    rows, dictionaries = customer_rows(result, detail)
    lines, steps, strings = _detail_frames(result, detail)
    subs = result.lines.loc[is_in(result.lines["customer_id"], detail), "subscription_id"]
    currencies = sorted(set(dictionaries["currency"]) - {""})
    meta = {
        "fields": list(CUSTOMER_FIELDS),
        "dictionaries": dictionaries,
        "exponents": {cur: exponent(cur) for cur in currencies},
        "cause_labels": {str(k): v for k, v in CAUSE_LABELS.items()},
        "findings_href": findings_href,
        "detail_customers": len(detail),
        "customers_total": len(result.customers),
        "line_fields": list(_LINE_FIELDS),
        "line_coded": [i for i, c in enumerate(_LINE_FIELDS) if c not in ("quantity", "amount")],
        "strings": strings,
        "step_fields": list(_STEP_FIELDS),
        "step_coded": [0, 1, 3],
        "diffs": _diffs(result, subs.astype("string").dropna().unique()),
    }
    head = json.dumps(meta, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    text = head[:-1] + ',"customers":' + rows + ',"lines":' + lines + ',"steps":' + steps + "}"
    return script_json(text)
