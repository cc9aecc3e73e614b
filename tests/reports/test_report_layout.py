"""The finance report's layout in a real headless Chromium (issue 16): no table wider than
the page at 1280 px, screenshots at 1280 and 1920 px for a person to look at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_report_browser import browser  # noqa: F401  (the module's Chromium fixture)

from shadowbill.reconcile.result import ReconciliationResult
from shadowbill.reports.html import write_html

# Every visible table container wider than its box, as "table id: scroll > client".
_OVERFLOWING = """() => Array.from(document.querySelectorAll('.scroll, table'))
  .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1)
  .map(e => (e.id || (e.querySelector('table') || {}).id || e.tagName)
       + ': ' + e.scrollWidth + ' > ' + e.clientWidth)"""


@pytest.fixture(scope="module")
def finance_page(finance_result: ReconciliationResult, tmp_path_factory: Any) -> Path:
    return write_html(finance_result, tmp_path_factory.mktemp("layout") / "report.html")


@pytest.mark.parametrize("width", [1280, 1920])
def test_no_table_is_wider_than_the_page(
    browser: Any,  # noqa: F811
    finance_page: Path,
    tmp_path: Path,
    width: int,
) -> None:
    page = browser.new_page(viewport={"width": width, "height": 1000})
    page.goto(finance_page.as_uri())
    page.wait_for_selector("html[data-ready=true]", timeout=30_000)
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    page.select_option("#page-size", "100")
    sizes = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert sizes[0] == sizes[1], f"the page scrolls sideways at {width} px: {sizes}"
    assert page.evaluate(_OVERFLOWING) == []
    shot = tmp_path / f"report-{width}.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot at {width} px: {shot}")
    assert shot.stat().st_size > 10_000
    page.close()
