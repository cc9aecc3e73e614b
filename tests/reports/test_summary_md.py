"""The check's Markdown summary: counts that match the findings, inert user text, a hard cap."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from shadowbill.reconcile.baseline import compare_findings, load_baseline, write_results
from shadowbill.reconcile.check import CheckOutcome
from shadowbill.reconcile.config_diff import ConfigChange, RuleChange
from shadowbill.reconcile.findings import FINDING_COLUMNS, finding_ids
from shadowbill.reconcile.result import ReconciliationResult
from shadowbill.reports.summary import summary_json
from shadowbill.reports.summary_md import MAX_CHARS, md_text, summary_markdown

HOSTILE = "Evil | `rm -rf` <script>alert(1)</script> @everyone [x](http://e) **b** \n# h"


def _findings(
    n: int, customer: str = "c1", delta: int = 100, cause: str = "price_change"
) -> pd.DataFrame:
    rows = pd.DataFrame(
        {
            "comparison": "B",
            "level": "invoice",
            "customer_id": [f"{customer}-{i}" for i in range(n)],
            "subscription_id": [f"s-{customer}-{i}" for i in range(n)],
            "invoice_key": [f"s-{customer}-{i}@2026-01-01" for i in range(n)],
            "period_start": pd.Timestamp("2026-01-01", tz="UTC"),
            "period_end": pd.Timestamp("2026-02-01", tz="UTC"),
            "line_key": pd.NA,
            "price_id": "p",
            "currency": "usd",
            "expected": 1000,
            "actual": 1000 + delta,
            "delta": delta,
            "cause": cause,
            "severity": "warning",
            "explanation": HOSTILE,
        }
    )
    rows["finding_id"] = finding_ids(rows)
    return rows.reindex(columns=list(FINDING_COLUMNS)).astype(FINDING_COLUMNS)


def _outcome(
    tmp: Path, before: pd.DataFrame, after: pd.DataFrame, change: ConfigChange | None = None
) -> CheckOutcome:
    base = ReconciliationResult(
        phase=2,
        phase_name="Phase | two",
        generated_at=pd.Timestamp("2026-01-01", tz="UTC"),
        findings=before,
    )
    write_results(base, tmp / "base", projection_months=12)
    (tmp / "base" / "summary.json").write_text(summary_json(base))
    result = ReconciliationResult(
        phase=2,
        phase_name="Phase | two",
        generated_at=pd.Timestamp("2026-01-01", tz="UTC"),
        findings=after,
    )
    diff = compare_findings(None, tmp / "base" / "findings.parquet", head=after)
    return CheckOutcome(result, change, diff, load_baseline(tmp / "base"))


def test_findings_are_new_resolved_changed_or_unchanged_by_id(tmp_path: Path) -> None:
    before = _findings(3)
    after = pd.concat([before.iloc[:1], before.iloc[1:2].assign(delta=999), _findings(2, "n")])
    diff = _outcome(tmp_path, before, after).diff
    assert diff is not None
    assert diff.counts() == {"new": 2, "resolved": 1, "changed": 1, "unchanged": 1}
    changed = diff.changes[diff.changes["status"] == "changed"].iloc[0]
    assert (changed["delta"], changed["baseline_delta"]) == (999, 100)


def test_counts_in_the_summary_match_the_findings(tmp_path: Path) -> None:
    before = _findings(3)
    after = pd.concat([before.iloc[:2], _findings(4, "n", delta=-250)])
    text = summary_markdown(_outcome(tmp_path, before, after))
    assert "4 new, 1 resolved, 0 changed, 2 unchanged." in text
    assert "| B | price\\_change | 4 | 1 | 0 |" in text
    # money moved: baseline 300, now 200 - 1000 = -800, moved -1,100 USD
    assert "| USD | +300 USD | -800 USD | -1,100 USD |" in text


def test_user_text_cannot_break_the_markdown(tmp_path: Path) -> None:
    text = summary_markdown(_outcome(tmp_path, _findings(1), _findings(1, "n")))
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "@everyone" not in text and "@\u200beveryone" in text
    assert "\n# h" not in text
    row = next(line for line in text.splitlines() if "Evil" in line)
    assert len(re.findall(r"(?<!\\)\|", row)) == 7  # six cells, none split by the text
    assert re.search(r"(?<!\\)[`*\[]", row) is None  # no code span, emphasis or link


@pytest.mark.parametrize("value", ["a|b", "`x`", "<b>", "@team", "line\nbreak", "[l](u)"])
def test_md_text_neutralises(value: str) -> None:
    out = md_text(value)
    assert "\n" not in out and "<" not in out and "@t" not in out
    assert all(out[i - 1] == "\\" for i, ch in enumerate(out) if ch in "|`[]")


def test_a_huge_diff_stays_under_the_cap(tmp_path: Path) -> None:
    rules = tuple(RuleChange(2, f"rule_{i}_" + "x" * 200, "edited") for i in range(5000))
    prices = tuple(f"new:price_{i}" for i in range(5000))
    change = ConfigChange(rules=rules, prices=prices)
    before = _findings(2000)
    after = _findings(3000, "n", delta=7)
    text = summary_markdown(_outcome(tmp_path, before, after, change))
    assert len(text) <= MAX_CHARS < 65_536
    assert "and 4,980 more" in text
    assert text.count("\n| n-") == 10  # the ten largest new findings, no more
