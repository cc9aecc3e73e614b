"""The finance reconciliation report: one self-contained HTML file per phase.

Styles, script, data and charts are inline; the page makes no network request (its
Content-Security-Policy forbids any, and allows only the report's own script by hash).
Everything user-controlled is escaped by jinja2's autoescaping, by :func:`script_json`
for the embedded data, and by ``textContent`` in the browser.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup

from shadowbill.errors import ReportError
from shadowbill.money import format_minor
from shadowbill.reconcile.result import ReconciliationResult
from shadowbill.reports import aggregates as agg
from shadowbill.reports.charts import histogram_chart, monthly_chart
from shadowbill.reports.payload import MAX_REPORT_CUSTOMERS, build_payload, detail_customers
from shadowbill.reports.summary import summary_json

# Rows shown per server-rendered table before "and N more" (the full data is in the files).
MAX_TABLE_ROWS = 200
MAX_PLAN_MOVES = 500
MOVERS_PER_CURRENCY = 5
FINGERPRINT_KEYS = ("snapshot", "legacy_catalog", "new_catalog", "rollout", "policy")


@dataclass(frozen=True)
class Cell:
    """A formatted table cell: its text and a CSS class (up, down, flat or empty)."""

    text: str
    cls: str = ""


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("shadowbill.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def _asset(name: str) -> str:
    return resources.files("shadowbill.reports").joinpath("templates", name).read_text("utf-8")


def money(amount: object, currency: str, *, signed: bool = False) -> Cell:
    """A money cell in major units with the currency; NA shows as a dash."""
    if amount is None or amount is pd.NA:
        return Cell("—")
    value = int(amount)  # type: ignore[call-overload]
    text = format_minor(value, currency)
    if signed and value > 0:
        text = "+" + text
    cls = "" if not signed else "up" if value > 0 else "down" if value < 0 else "flat"
    return Cell(text, cls)


def percent(bp: int | None) -> Cell:
    """Basis points of a percent (hundredths) as "+1.25%"; None as a dash."""
    if bp is None:
        return Cell("—")
    cls = "up" if bp > 0 else "down" if bp < 0 else "flat"
    return Cell(agg.format_basis_points(bp), cls)


def count(n: object) -> Cell:
    """A count with thousands separators."""
    return Cell(f"{agg.as_int(n):,}")


def _text(value: object) -> str:
    return "" if value is None or value is pd.NA else str(value)


def _currency_rows(totals: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for r in totals.itertuples(index=False):  # one row per currency
        cur = str(r.currency)
        delta, legacy = agg.as_int(r.delta), agg.as_int(r.legacy_total)
        rows.append(
            {
                "currency": cur,
                "customers": count(r.customers),
                "unmapped": count(r.unmapped),
                "invoices": count(r.invoices),
                "actual": money(r.actual_legacy, cur),
                "legacy": money(r.legacy_total, cur),
                "new": money(r.new_total, cur),
                "delta": money(delta, cur, signed=True),
                "pct": percent(agg.ratio_basis_points(delta, legacy)),
                "drift": money(r.drift, cur, signed=True),
                "unexplained": money(r.unexplained, cur, signed=True),
                "unmapped_legacy": money(r.unmapped_legacy, cur),
            }
        )
    return rows


def _revenue_rows(frame: pd.DataFrame, period: str) -> list[dict[str, Any]]:
    rows = []
    for r in frame.itertuples(index=False):  # months or years x currencies: small
        cur = str(r.currency)
        delta, legacy = agg.as_int(r.delta), agg.as_int(r.legacy_total)
        rows.append(
            {
                "period": str(getattr(r, period)),
                "currency": cur,
                "actual": money(r.actual_legacy, cur),
                "legacy": money(r.legacy_total, cur),
                "new": money(r.new_total, cur),
                "delta": money(delta, cur, signed=True),
                "pct": percent(agg.ratio_basis_points(delta, legacy)),
            }
        )
    return rows


def _plan_rows(moves: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for r in moves.head(MAX_PLAN_MOVES).itertuples(index=False):  # bounded above
        cur = str(r.currency)
        delta, legacy = agg.as_int(r.delta), agg.as_int(r.legacy_total)
        rows.append(
            {
                "legacy_plan": _text(r.legacy_plan),
                "new_plan": _text(r.new_plan) or "(unmapped)",
                "currency": cur,
                "customers": count(r.customers),
                "legacy": money(r.legacy_total, cur),
                "new": money(r.new_total, cur),
                "delta": money(delta, cur, signed=True),
                "pct": percent(agg.ratio_basis_points(delta, legacy)),
            }
        )
    return rows


def _cause_rows(causes: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for r in causes.itertuples(index=False):  # causes x currencies: small
        cur = str(r.currency)
        rows.append(
            {
                "cause": agg.cause_label(str(r.cause)),
                "code": str(r.cause),
                "currency": cur,
                "customers": count(r.customers),
                "increase": money(r.increase, cur, signed=True),
                "decrease": money(r.decrease, cur, signed=True),
                "net": money(r.net, cur, signed=True),
            }
        )
    return rows


def _cause_pivot(causes: pd.DataFrame) -> tuple[list[str], list[dict[str, Any]]]:
    """Causes as rows and currencies as columns: net amount and customers touched."""
    currencies = sorted(str(c) for c in causes["currency"].dropna().unique())
    reach = causes.groupby("cause")["customers"].sum().sort_values(ascending=False, kind="stable")
    cells = {(str(r.cause), str(r.currency)): r for r in causes.itertuples(index=False)}
    rows = []
    for cause in reach.index:  # one row per cause: small
        row = []
        for cur in currencies:
            hit = cells.get((str(cause), cur))
            if hit is None:
                row.append((Cell("—"), ""))
            else:
                n = agg.as_int(hit.customers)
                row.append((money(hit.net, cur, signed=True), f"{n:,} customer{'s' * (n != 1)}"))
        rows.append({"cause": agg.cause_label(str(cause)), "code": str(cause), "cells": row})
    return currencies, rows


def _segment_rows(segments: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for r in segments.itertuples(index=False):  # segments x currencies: small
        cur = str(r.currency)
        delta, legacy = agg.as_int(r.delta), agg.as_int(r.legacy_total)
        rows.append(
            {
                "segment": _text(r.segment).replace("_", " "),
                "currency": cur,
                "customers": count(r.customers),
                "unmapped": count(r.unmapped),
                "up": count(r.up),
                "down": count(r.down),
                "unchanged": count(r.unchanged),
                "legacy": money(r.legacy_total, cur),
                "new": money(r.new_total, cur),
                "delta": money(delta, cur, signed=True),
                "pct": percent(agg.ratio_basis_points(delta, legacy)),
                "unexplained": money(r.unexplained, cur, signed=True),
            }
        )
    return rows


def _mover_rows(movers: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for r in movers.itertuples(index=False):  # at most MOVERS_PER_CURRENCY per currency
        cur = str(r.currency)
        delta, legacy = agg.as_int(r.delta), agg.as_int(r.legacy_total)
        rows.append(
            {
                "customer_id": _text(r.customer_id),
                "name": _text(r.name),
                "segment": _text(r.segment).replace("_", " "),
                "currency": cur,
                "move": f"{_text(r.legacy_plan)} → {_text(r.new_plan)}",
                "legacy": money(r.legacy_total, cur),
                "new": money(r.new_total, cur),
                "delta": money(delta, cur, signed=True),
                "pct": percent(agg.ratio_basis_points(delta, legacy)),
            }
        )
    return rows


def _finding_rows(findings: pd.DataFrame, names: pd.Series) -> list[dict[str, Any]]:
    order = {"error": 0, "warning": 1, "info": 2}
    ranked = findings.assign(
        _rank=findings["severity"].map(order).fillna(3),
        period_text=findings["period_start"].dt.strftime("%Y-%m-%d").astype("string"),
    ).sort_values(
        ["_rank", "customer_id", "invoice_key", "line_key"], kind="stable", na_position="first"
    )
    rows = []
    for r in ranked.head(MAX_TABLE_ROWS).itertuples(index=False):  # bounded above
        cur = str(r.currency)
        rows.append(
            {
                "customer_id": _text(r.customer_id),
                "name": _text(names.get(r.customer_id, "")),
                "comparison": _text(r.comparison),
                "level": _text(r.level),
                "period": _text(r.period_text),
                "subscription_id": _text(r.subscription_id),
                "cause": agg.cause_label(_text(r.cause)),
                "severity": _text(r.severity),
                "expected": money(r.expected, cur),
                "actual": money(r.actual, cur),
                "delta": money(r.delta, cur, signed=True),
                "explanation": _text(r.explanation),
            }
        )
    return rows


def _exceptions(result: ReconciliationResult) -> dict[str, Any]:
    frames = agg.exception_frames(result)
    names = result.customers.set_index("customer_id")["name"]
    names = names[~names.index.duplicated()]
    unmapped = frames["unmapped"]
    quarantined = frames["quarantined"]
    by_reason = (
        quarantined.groupby(["table", "reason"], dropna=False).size().reset_index(name="rows")
        if not quarantined.empty
        else pd.DataFrame(columns=["table", "reason", "rows"])
    )
    return {
        "unmapped": {
            "total": len(unmapped),
            "rows": [
                {
                    "subscription_id": _text(r.get("subscription_id")),
                    "customer_id": _text(r.get("customer_id")),
                    "name": _text(names.get(r.get("customer_id"), "")),
                    "reason": _text(r.get("reason")),
                }
                for r in unmapped.head(MAX_TABLE_ROWS).to_dict("records")  # bounded
            ],
        },
        "quarantined": {
            "total": len(quarantined),
            "by_reason": [
                {"table": _text(r.table), "reason": _text(r.reason), "rows": count(r.rows)}
                for r in by_reason.itertuples(index=False)  # tables x reasons: small
            ],
            "rows": [
                {k: _text(r.get(k)) for k in ("table", "source_ref", "reason", "detail")}
                for r in quarantined.head(MAX_TABLE_ROWS).to_dict("records")  # bounded
            ],
        },
        "unexplained": {
            "total": len(frames["unexplained"]),
            "rows": _finding_rows(frames["unexplained"], names),
        },
        "drift": {"total": len(frames["drift"]), "rows": _finding_rows(frames["drift"], names)},
        "limit": MAX_TABLE_ROWS,
    }


def _kpis(result: ReconciliationResult, totals: pd.DataFrame) -> list[tuple[str, str, str]]:
    c = result.customers
    exceptions = agg.exception_frames(result)
    unexplained_customers = int((c["unexplained"].fillna(0) != 0).sum())
    return [
        ("Customers", f"{len(c):,}", f"{agg.as_int(totals['unmapped'].sum()):,} unmapped"),
        ("Invoices compared", f"{agg.as_int(c['invoices'].sum()):,}", "per side"),
        (
            "Pay more / less",
            f"{agg.as_int(totals['up'].sum()):,} / {agg.as_int(totals['down'].sum()):,}",
            f"{agg.as_int(totals['unchanged'].sum()):,} unchanged",
        ),
        ("Findings", f"{agg.finding_stats(result)['total']:,}", "A, B and C, all levels"),
        (
            "Unexplained",
            f"{unexplained_customers:,}",
            f"customers; {len(exceptions['unexplained']):,} findings",
        ),
        (
            "Legacy drift",
            f"{len(exceptions['drift']):,}",
            "findings of comparison A",
        ),
    ]


def _fingerprints(result: ReconciliationResult) -> list[tuple[str, str]]:
    keys = [*FINGERPRINT_KEYS, *sorted(set(result.fingerprints) - set(FINGERPRINT_KEYS))]
    return [(k.replace("_", " "), result.fingerprints.get(k, "(not recorded)")) for k in keys]


def _csp(script: str) -> str:
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    return (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"
    )


def render_html(result: ReconciliationResult, *, findings_href: str = "findings.csv") -> str:
    """The report as one HTML document (a string)."""
    agg.check_result(result)
    totals = agg.currency_totals(result)
    monthly = agg.monthly_revenue(result.monthly)
    histogram = agg.change_histogram(result.customers)
    ups, downs = agg.top_movers(result.customers, MOVERS_PER_CURRENCY)
    moves = agg.plan_moves(result)
    detail = detail_customers(result)
    causes = agg.cause_totals(result.waterfall)
    cause_currencies, cause_pivot = _cause_pivot(causes)
    stats = agg.finding_stats(result)
    script = _asset("report.js")
    context = {
        "title": f"Shadow billing reconciliation · phase {result.phase}: {result.phase_name}",
        "phase": result.phase,
        "phase_name": result.phase_name,
        "generated_at": pd.Timestamp(result.generated_at).isoformat(),
        "verdict": result.verdict,
        "kpis": _kpis(result, totals),
        "currencies": _currency_rows(totals),
        "years": _revenue_rows(agg.yearly_revenue(result.monthly), "year"),
        "months": _revenue_rows(monthly, "month"),
        "monthly_charts": [
            (cur, monthly_chart(monthly, cur)) for cur in sorted(monthly["currency"].unique())
        ],
        "histogram": histogram_chart(histogram),
        "histogram_rows": [
            (str(r.bucket), f"{agg.as_int(r.customers):,}")
            for r in histogram.itertuples(index=False)
        ],
        "plan_moves": _plan_rows(moves),
        "plan_moves_total": len(moves),
        "plan_moves_limit": MAX_PLAN_MOVES,
        "causes": _cause_rows(causes),
        "cause_currencies": cause_currencies,
        "cause_pivot": cause_pivot,
        "findings_matrix": stats["by_comparison_and_cause"],
        "findings_severity": stats["by_severity"],
        "findings_total": stats["total"],
        "customers_total": len(result.customers),
        "max_report_customers": MAX_REPORT_CUSTOMERS,
        "segments": _segment_rows(agg.segment_totals(result.customers)),
        "ups": _mover_rows(ups),
        "downs": _mover_rows(downs),
        "movers_per_currency": MOVERS_PER_CURRENCY,
        "exceptions": _exceptions(result),
        "counts": sorted((k.replace("_", " "), f"{v:,}") for k, v in result.counts.items()),
        "fingerprints": _fingerprints(result),
        "summary_sha256": report_json_digest(result),
        "detail_customers": len(detail),
        "findings_href": findings_href,
        "payload": build_payload(result, findings_href=findings_href, detail=detail),
        "css": Markup(_asset("report.css")),
        "script": Markup(script),
        "csp": _csp(script),
    }
    return _env().get_template("report.html.j2").render(**context)


def write_html(
    result: ReconciliationResult, out_path: Path, *, findings_href: str = "findings.csv"
) -> Path:
    """Write the finance report (report.html) for one phase and return its path."""
    text = render_html(result, findings_href=findings_href)
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"cannot write the HTML report {out_path}: {exc.strerror}") from exc
    return out_path


def report_json_digest(result: ReconciliationResult) -> str:
    """sha256 of summary.json's content, as printed in the report's sign-off block."""
    return hashlib.sha256(summary_json(result).encode("utf-8")).hexdigest()
