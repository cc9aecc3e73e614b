"""The HTML report in a real headless Chromium (Debian's chromium, driven by Playwright).

Skips on a laptop without chromium or playwright; fails in CI (CI=true) instead.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from report_fixture import QUOTES_NAME, SCRIPT_NAME

from shadowbill.money import format_minor
from shadowbill.reconcile.result import ReconciliationResult
from shadowbill.reports.aggregates import change_basis_points
from shadowbill.reports.html import write_html

# Generates a demo company, starts servers or processes: not in the fast lane.
pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("SHADOWBILL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser test cannot run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium, or skip (fail in CI) when it or Playwright is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - depends on the machine
        _unavailable("playwright is not installed (pip install playwright)")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        _unavailable(f"chromium not found at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def report(result: ReconciliationResult, tmp_path: Path) -> Path:
    return write_html(result, tmp_path / "report.html")


def _rows(page: Any) -> list[str]:
    return page.locator("#customer-rows tr[data-index] td:first-child .sub").all_inner_texts()


def test_report_in_chromium(browser: Any, report: Path, result: ReconciliationResult) -> None:
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors: list[str] = []
    requests: list[str] = []
    dialogs: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    url = report.as_uri()
    page.goto(url)
    page.wait_for_selector("html[data-ready=true]", timeout=15_000)

    # The hostile names are text, nothing was injected.
    assert page.locator("img, iframe").count() == 0
    assert page.locator("script").count() == 2
    assert page.locator("#customer-rows .cust-name").first.inner_text() == SCRIPT_NAME

    # Paging: 300 customers, 50 a page.
    status = page.locator("#page-status")
    assert status.inner_text() == "Customers 1–50 of 300 · page 1 of 6"
    first_page = _rows(page)
    page.click("#page-next")
    assert status.inner_text() == "Customers 51–100 of 300 · page 2 of 6"
    assert _rows(page)[0] == "cus_000050" and _rows(page) != first_page
    page.click("#page-last")
    assert status.inner_text() == "Customers 251–300 of 300 · page 6 of 6"
    assert page.locator("#page-next").is_disabled()
    page.select_option("#page-size", "100")
    assert status.inner_text() == "Customers 1–100 of 300 · page 1 of 3"

    # Sorting by change (%): the largest change comes first.
    page.click('#customer-table th[data-sort="change_bp"] button')
    bp = change_basis_points(result.customers)
    top = result.customers.loc[bp == bp.max(), "customer_id"].min()
    assert _rows(page)[0] == top

    # Search finds a customer by name; selecting the row opens its invoices.
    page.fill("#search", "quotes")
    expect(page.locator("#customer-rows tr[data-index]")).to_have_count(1)
    assert page.locator("#customer-rows .cust-name").inner_text() == QUOTES_NAME
    page.click("#customer-rows tr[data-index]")
    detail = page.locator("#detail")
    assert detail.is_visible()
    assert page.locator("#detail-name").inner_text() == QUOTES_NAME
    invoice = detail.locator("details.invoice").first
    assert invoice.get_attribute("open") is not None
    sides = invoice.locator(".side h5").all_inner_texts()
    assert [s.lower() for s in sides] == [
        "legacy recomputed",
        "new model",
        "actual legacy (issued)",
    ]
    steps = result.waterfall[result.waterfall["customer_id"] == "cus_000001"]
    assert detail.locator("svg.waterfall rect").count() == len(steps)
    assert detail.locator("table.waterfall-table tbody tr").count() == len(steps)
    new_total = int(result.customers.set_index("customer_id").loc["cus_000001", "new_total"])
    assert re.search(
        rf"New total\s+{re.escape(format_minor(new_total, 'USD'))}", detail.inner_text()
    )

    # The hostile customer opens from the exceptions table as text.
    page.click('#unexplained a[data-customer="cus_000000"]')
    assert page.locator("#detail-name").inner_text() == SCRIPT_NAME

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-detail.png"))
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)

    assert errors == []
    assert dialogs == []
    assert requests == [url]
    page.close()


def test_print_layout_hides_controls(browser: Any, report: Path) -> None:
    page = browser.new_page()
    page.goto(report.as_uri())
    page.wait_for_selector("html[data-ready=true]")
    page.emulate_media(media="print")
    assert not page.locator(".controls").is_visible()
    assert not page.locator("nav.toc").is_visible()
    assert page.locator("#signoff").is_visible()
    page.close()
