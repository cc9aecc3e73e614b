"""The HTML report without a browser: escaping, no network, bounded embedded data."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from report_fixture import QUOTES_NAME, SCRIPT_NAME

from shadowbill.errors import ReportError
from shadowbill.reconcile.result import ReconciliationResult
from shadowbill.reports.html import render_html, report_json_digest, write_html
from shadowbill.reports.payload import detail_customers, script_json


class _Elements(HTMLParser):
    """Collects the elements, attributes and script bodies of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data


@pytest.fixture(scope="module")
def page(result: ReconciliationResult) -> str:
    return render_html(result, findings_href="findings.csv")


@pytest.fixture(scope="module")
def parsed(page: str) -> _Elements:
    parser = _Elements()
    parser.feed(page)
    return parser


def _payload(parsed: _Elements) -> dict:
    return json.loads(parsed.scripts[0])


def test_hostile_names_render_as_text(page: str, parsed: _Elements) -> None:
    scripts = [attrs for tag, attrs in parsed.tags if tag == "script"]
    assert len(scripts) == 2  # the JSON data block and the report's own script
    assert scripts[0] == {"type": "application/json", "id": "report-data"}
    assert not [t for t, _ in parsed.tags if t in ("img", "iframe", "object", "embed")]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # server-rendered (unexplained table)
    assert "&#34;quotes&#34; &amp; ampersands" in page
    assert "alert(1)</script>" not in page
    assert SCRIPT_NAME not in page and "<img" not in page


def test_embedded_json_cannot_break_out(page: str, parsed: _Elements) -> None:
    block = parsed.scripts[0]
    assert "<" not in block and ">" not in block and "&" not in block
    data = _payload(parsed)
    names = [row[data["fields"].index("name")] for row in data["customers"]]
    assert SCRIPT_NAME in names and QUOTES_NAME in names


@settings(max_examples=100, deadline=None)
@given(st.text())
def test_script_json_round_trips_any_text(text: str) -> None:
    escaped = str(script_json(json.dumps({"name": text})))
    assert "</" not in escaped and "<!--" not in escaped and "<" not in escaped
    assert "\u2028" not in escaped and "\u2029" not in escaped
    assert json.loads(escaped) == {"name": text}


def test_no_network_and_strict_content_security_policy(parsed: _Elements) -> None:
    for tag, attrs in parsed.tags:
        for key in ("src", "href", "action", "srcset", "data"):
            value = attrs.get(key) or ""
            assert not re.match(r"(?i)^\s*(https?:|//|ftp:|javascript:)", value), (tag, key, value)
        if tag == "link":
            pytest.fail(f"external resource link {attrs}")
    csp = next(
        a["content"] for t, a in parsed.tags if a.get("http-equiv") == "Content-Security-Policy"
    )
    assert csp is not None and "default-src 'none'" in csp
    digest = base64.b64encode(hashlib.sha256(parsed.scripts[1].encode()).digest()).decode()
    assert f"'sha256-{digest}'" in csp  # only the report's own script may run


def test_summary_first_then_sections_in_order(page: str) -> None:
    order = [
        "summary",
        "gate",
        "plans",
        "causes",
        "segments",
        "movers",
        "exceptions",
        "customers",
        "signoff",
    ]
    positions = [page.index(f'<section id="{name}"') for name in order]
    assert positions == sorted(positions)


def test_money_is_shown_per_currency_in_major_units(
    page: str, result: ReconciliationResult
) -> None:
    from shadowbill.reports.aggregates import currency_totals

    totals = currency_totals(result).set_index("currency")
    jpy, kwd = int(totals.loc["JPY", "new_total"]), int(totals.loc["KWD", "new_total"])
    assert f"{jpy:,} JPY" in page  # no decimals for yen
    assert f"{kwd // 1000:,}.{kwd % 1000:03d} KWD" in page  # three for dinars


def test_sign_off_carries_fingerprints(page: str, result: ReconciliationResult) -> None:
    signoff = page[page.index('<section id="signoff"') :]
    for digest in result.fingerprints.values():
        assert digest in signoff
    assert report_json_digest(result) in signoff
    for field in ("Reviewer name", "Date", "Signature"):
        assert field in signoff


def test_gate_checks_are_listed(page: str, result: ReconciliationResult) -> None:
    gate = page[page.index('<section id="gate"') : page.index('<section id="plans"')]
    for check in result.verdict.checks:
        assert check.name in gate
    assert gate.count(">FAIL<") == len(result.verdict.failures) == 2
    assert "&lt;and more&gt;" in gate  # check details are escaped too


def test_detail_is_bounded_and_prioritised(result: ReconciliationResult) -> None:
    small = detail_customers(result, max_customers=10, max_lines=10_000)
    assert len(small) == 10
    unexplained = set(result.customers.loc[result.customers["unexplained"] != 0, "customer_id"])
    lines = result.lines[result.lines["customer_id"].isin(small)]
    assert len(lines) <= 10_000
    tight = detail_customers(result, max_customers=1_000, max_lines=400)
    assert len(result.lines[result.lines["customer_id"].isin(tight)]) <= 400
    every = detail_customers(result)
    assert unexplained <= set(every)


def test_write_html_writes_one_file(result: ReconciliationResult, tmp_path: Path) -> None:
    out = write_html(result, tmp_path / "deep" / "report.html", findings_href="f.csv")
    assert out.exists() and list(out.parent.iterdir()) == [out]
    assert 'href="f.csv"' in out.read_text("utf-8")


def test_result_without_pinned_columns_is_refused(result: ReconciliationResult) -> None:
    broken = ReconciliationResult(
        phase=2,
        phase_name="x",
        generated_at=pd.Timestamp("2026-01-01T00:00:00Z"),
        customers=result.customers.drop(columns=["delta", "legacy_plan"]),
    )
    with pytest.raises(
        ReportError, match=r"customers lacks delta, legacy_plan|customers lacks legacy_plan, delta"
    ):
        render_html(broken)


def test_empty_result_renders(tmp_path: Path) -> None:
    empty = ReconciliationResult(
        phase=1, phase_name="New customers", generated_at=pd.Timestamp("2026-01-01T00:00:00Z")
    )
    text = write_html(empty, tmp_path / "report.html").read_text("utf-8")
    assert "PASS" in text and "The policy has no checks." in text


def test_script_writes_data_only_as_text() -> None:
    from importlib import resources

    script = resources.files("shadowbill.reports").joinpath("templates", "report.js").read_text()
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "Function(",
    ):
        assert sink not in script
    assert "</script" not in script.lower()


def test_is_in_matches_pandas(result: ReconciliationResult) -> None:
    from shadowbill.reports.aggregates import is_in

    ids = result.customers["customer_id"]
    some = [*ids.iloc[::7], "nobody", None]
    assert (is_in(ids, some) == ids.isin(some).to_numpy()).all()
    assert not is_in(pd.Series([None, "x"], dtype="string"), ids).any()
