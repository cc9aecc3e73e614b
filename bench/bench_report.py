"""Measure the reports at scale: write time per writer, file sizes, and load time in Chromium.

    python bench/bench_report.py [--customers 100000] [--months 12] [--out DIR]

Builds the synthetic reconciliation of tests/reports/report_fixture.py (vectorized) at the
given size, writes every report with shadowbill.reports, then opens report.html in
Debian's headless Chromium through Playwright and times the load until the customer
table is ready, a search, a page turn and opening a customer. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "reports"))

from report_fixture import build_result  # noqa: E402

from shadowbill.reports.files import write_findings  # noqa: E402
from shadowbill.reports.html import write_html  # noqa: E402
from shadowbill.reports.junit import write_junit  # noqa: E402
from shadowbill.reports.summary import write_summary  # noqa: E402

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


def _timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    """The call's result and its wall and CPU seconds (CPU is what a busy machine keeps)."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, {
        "wall": round(time.perf_counter() - start, 2),
        "cpu": round(time.process_time() - cpu, 2),
    }


def browser_times(html: Path, chromium: str) -> dict[str, float]:
    """Seconds to load the report until ready, search, turn a page and open a customer."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        start = time.perf_counter()
        page.goto(html.as_uri(), timeout=120_000)
        loaded = time.perf_counter() - start
        page.wait_for_selector("html[data-ready=true]", timeout=120_000)
        ready = time.perf_counter() - start
        start = time.perf_counter()
        page.fill("#search", "company 09999")
        expect(page.locator("#page-status")).to_contain_text(" of 1 ", timeout=60_000)
        search = time.perf_counter() - start
        page.fill("#search", "")
        expect(page.locator("#page-status")).to_contain_text("page 1 of", timeout=60_000)
        start = time.perf_counter()
        page.click("#page-next")
        expect(page.locator("#page-status")).to_contain_text("page 2 of")
        next_page = time.perf_counter() - start
        start = time.perf_counter()
        page.click('#customer-table th[data-sort="delta"] button')
        expect(page.locator("#page-status")).to_contain_text("page 1 of")
        sort = time.perf_counter() - start
        start = time.perf_counter()
        page.locator("#movers-up a[data-customer]").first.click()
        expect(page.locator("#detail")).to_be_visible()
        detail = time.perf_counter() - start
        browser.close()
    if errors:
        raise RuntimeError(f"page errors: {errors}")
    return {
        "load_event_s": round(loaded, 2),
        "ready_s": round(ready, 2),
        "search_s": round(search, 2),
        "next_page_s": round(next_page, 2),
        "sort_s": round(sort, 2),
        "open_customer_s": round(detail, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--detail", type=int, default=2_000, help="customers with invoice lines")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_report_"))
    out.mkdir(parents=True, exist_ok=True)

    result, build_s = _timed(
        build_result, args.customers, args.months, detail_customers=args.detail
    )
    html, html_s = _timed(write_html, result, out / "report.html")
    files, files_s = _timed(write_findings, result, out)
    _, summary_s = _timed(write_summary, result, out / "summary.json")
    _, junit_s = _timed(write_junit, result, out / "junit.xml")
    report = {
        "customers": len(result.customers),
        "findings": len(result.findings),
        "lines_in_result": len(result.lines),
        "seconds": {
            "build_synthetic_result": build_s,
            "html": html_s,
            "findings_parquet_csv_xlsx": files_s,
            "summary_json": summary_s,
            "junit": junit_s,
        },
        "bytes": {p.name: p.stat().st_size for p in [html, *files]},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "out": str(out),
    }
    if not args.no_browser:
        report["chromium"] = browser_times(html, args.chromium)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
