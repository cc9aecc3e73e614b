"""The finance reconciliation report: one self-contained HTML file per phase.

Styles, script, data and charts are inline; the page makes no network request (its
Content-Security-Policy forbids any, and allows only the report's own script by hash).
Everything user-controlled is escaped by jinja2's autoescaping, by :func:`script_json`
for the embedded data, and by ``textContent`` in the browser.
"""

from __future__ import annotations

import base64
import hashlib
import json
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
from shadowbill.reports.charts import billings_chart, bridge_chart, histogram_chart
from shadowbill.reports.model import CauseTotal, ReportData, build_report
from shadowbill.reports.payload import MAX_REPORT_CUSTOMERS, build_payload, detail_customers
from shadowbill.reports.rates import Reporting
from shadowbill.reports.summary import summary_json

# Rows shown per server-rendered table before "and N more" (the full data is in the files).
MAX_TABLE_ROWS = 200
MAX_PLAN_MOVES = 500
MOVERS_PER_CURRENCY = 5
PLAN_GROUPS_SHOWN = 3  # plan combinations listed under each rule before "and N more"
SIGNOFF_FILE = "signoff.json"
SIGNOFF_START, SIGNOFF_END = "<!-- signoffs:start -->", "<!-- signoffs:end -->"
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


def money(amount: object, currency: str, *, signed: bool = False, code: bool = True) -> Cell:
    """A money cell in major units, with the currency code unless ``code`` is False (in
    tables whose rows name the currency); NA shows as a dash."""
    if amount is None or amount is pd.NA:
        return Cell("—")
    value = int(amount)  # type: ignore[call-overload]
    text = format_minor(value, currency, with_code=code)
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


def _kpis(report: ReportData) -> list[tuple[str, str, str]]:
    people = report.customers
    return [
        ("Customers", f"{people.total:,}", f"{people.unmapped:,} unmapped"),
        ("Invoices compared", f"{report.invoices:,}", "per side"),
        ("Pay more / less", f"{people.up:,} / {people.down:,}", f"{people.unchanged:,} unchanged"),
        ("Findings", f"{report.findings['total']:,}", "A, B and C, all levels"),
        (
            "Unexplained",
            f"{report.unexplained_customers:,}",
            f"customers; {report.unexplained_findings:,} findings",
        ),
        ("Legacy drift", f"{report.exceptions.drift_total:,}", "findings of comparison A"),
    ]


def _cause_pivot(causes: tuple[CauseTotal, ...]) -> tuple[list[str], list[dict[str, Any]]]:
    """Causes as rows and currencies as columns: the net amount and the customers touched."""
    currencies = sorted({c.currency for c in causes})
    reach: dict[str, int] = {}
    for c in causes:
        reach[c.cause] = reach.get(c.cause, 0) + c.customers
    order = sorted(sorted(reach), key=lambda k: -reach[k])  # ties by name
    cells = {(c.cause, c.currency): c for c in causes}
    rows = []
    for cause in order:  # one row per cause: small
        row = []
        for cur in currencies:
            hit = cells.get((cause, cur))
            if hit is None:
                row.append((Cell("—"), ""))
            else:
                n = hit.customers
                row.append((money(hit.net, cur, signed=True), f"{n:,} customer{'s' * (n != 1)}"))
        rows.append({"cause": agg.cause_label(cause), "code": cause, "cells": row})
    return currencies, rows


def _fingerprints(report: ReportData) -> list[tuple[str, str]]:
    keys = [*FINGERPRINT_KEYS, *sorted(set(report.fingerprints) - set(FINGERPRINT_KEYS))]
    return [(k.replace("_", " "), report.fingerprints.get(k, "(not recorded)")) for k in keys]


def _csp(script: str) -> str:
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    return (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"
    )


def _model(result: ReconciliationResult) -> ReportData:
    return build_report(
        result,
        table_rows=MAX_TABLE_ROWS,
        plan_moves=MAX_PLAN_MOVES,
        movers_per_currency=MOVERS_PER_CURRENCY,
    )


def _instant(value: pd.Timestamp | None) -> str:
    """An instant as a reader reads it: the date, and the time when it is not midnight UTC."""
    if value is None:
        return "not known"
    at = pd.Timestamp(value).tz_convert("UTC") if value.tzinfo else pd.Timestamp(value)
    return f"{at:%Y-%m-%d}" if at == at.normalize() else f"{at:%Y-%m-%d %H:%M} UTC"


def cutover_text(report: ReportData) -> str:
    """The phase's cut-over as a date, or the range of dates when subscriptions differ."""
    first, last = report.finance.cutover_first, report.finance.cutover_last
    if first is None or last is None:
        return "not set (no mapped subscription)"
    if _instant(first) == _instant(last):
        return _instant(first)
    return f"from {_instant(first)} to {_instant(last)} (each subscription at its own)"


def _count_rows(counts: dict[str, int]) -> list[tuple[str, str]]:
    """Run counts for a reader: instants (``*_until``, epoch seconds) as dates."""
    rows = []
    for key, value in counts.items():
        if key.endswith("_until"):
            text = _instant(pd.Timestamp(value, unit="s", tz="UTC")) if value else "—"
        else:
            text = f"{value:,}"
        rows.append((key.replace("_", " "), text))
    return sorted(rows)


def render_signoffs(records: list[dict[str, Any]]) -> str:
    """The recorded sign-offs as an HTML fragment (escaped), for the page's sign-off block."""
    return _env().get_template("signoffs.html.j2").render(records=records)


def read_signoffs(report_dir: Path) -> list[dict[str, Any]]:
    """The sign-offs recorded beside a report (signoff.json), oldest first."""
    path = report_dir / SIGNOFF_FILE
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: cannot read the recorded sign-offs ({exc})") from exc
    records = data.get("signoffs") if isinstance(data, dict) else None
    if not isinstance(records, list):
        raise ReportError(f"{path}: no list of sign-offs under 'signoffs'")
    return [r for r in records if isinstance(r, dict)]


def _same_inputs(signed: dict[str, Any], inputs: dict[str, str]) -> bool:
    """Whether a recorded sign-off signed these inputs (those both name)."""
    return all(signed[k] == v for k, v in inputs.items() if k in signed)


def render_html(
    result: ReconciliationResult,
    *,
    findings_href: str = "findings.csv",
    report: ReportData | None = None,
    rendered_at: pd.Timestamp | None = None,
    signoffs: list[dict[str, Any]] | None = None,
    reporting: Reporting | None = None,
) -> str:
    """The report as one HTML document (a string), rendered from the report model.

    ``rendered_at`` is when the report is generated (now by default); the data's own
    as-of instant is the result's.
    """
    report = _model(result) if report is None else report
    detail = detail_customers(result)
    cause_currencies, cause_pivot = _cause_pivot(report.causes)
    script = _asset("report.js")
    finance = report.finance
    currencies = sorted({m.currency for m in finance.months})
    bridge_currencies = sorted({b.currency for b in finance.bridge})
    now = pd.Timestamp.now(tz="UTC") if rendered_at is None else pd.Timestamp(rendered_at)
    env = _env()
    env.globals.update(money=money, percent=percent, count=count)
    return env.get_template("report.html.j2").render(
        report=report,
        title=f"Shadow billing reconciliation · phase {report.phase}: {report.phase_name}",
        generated_at=_instant(report.generated_at),
        rendered_at=f"{now.tz_convert('UTC'):%Y-%m-%d %H:%M} UTC",
        cutover_text=cutover_text(report),
        kpis=_kpis(report),
        billing_charts=[(cur, billings_chart(finance.months, cur)) for cur in currencies],
        bridge_charts=[(cur, bridge_chart(finance.bridge, cur)) for cur in bridge_currencies],
        histogram=histogram_chart(report.change_distribution),
        cause_currencies=cause_currencies,
        cause_pivot=cause_pivot,
        max_report_customers=MAX_REPORT_CUSTOMERS,
        plan_groups_shown=PLAN_GROUPS_SHOWN,
        movers_per_currency=MOVERS_PER_CURRENCY,
        counts=_count_rows(report.counts),
        fingerprints=_fingerprints(report),
        summary_sha256=report_json_digest(report),
        signoffs=Markup(render_signoffs(signoffs or [])),
        reporting=reporting,
        detail_customers=len(detail),
        findings_href=findings_href,
        payload=build_payload(result, findings_href=findings_href, detail=detail),
        css=Markup(_asset("report.css")),
        script=Markup(script),
        csp=_csp(script),
    )


def write_html(
    result: ReconciliationResult,
    out_path: Path,
    *,
    findings_href: str = "findings.csv",
    report: ReportData | None = None,
    reporting: Reporting | None = None,
    signoff_dir: Path | None = None,
) -> Path:
    """Write the finance report (report.html) for one phase and return its path.

    Sign-offs already recorded beside it (or in ``signoff_dir``, the folder the page is
    published to) are shown on the page.
    """
    text = render_html(
        result,
        findings_href=findings_href,
        report=report,
        signoffs=[
            r
            for r in read_signoffs(out_path.parent if signoff_dir is None else signoff_dir)
            if _same_inputs(dict(r.get("fingerprints") or {}), result.fingerprints)
        ],
        reporting=reporting,
    )
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"cannot write the HTML report {out_path}: {exc.strerror}") from exc
    return out_path


def report_json_digest(source: ReconciliationResult | ReportData) -> str:
    """sha256 of summary.json's content, as printed in the report's sign-off block."""
    return hashlib.sha256(summary_json(source).encode("utf-8")).hexdigest()
