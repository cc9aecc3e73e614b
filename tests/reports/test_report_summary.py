"""summary.json: golden file, determinism, and totals that add up per currency."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
from fixtures_golden import Golden
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowbill.reconcile.result import ReconciliationResult
from shadowbill.reports.aggregates import CHANGE_BUCKETS, change_histogram
from shadowbill.reports.summary import build_summary, summary_json, write_summary

GOLDEN = Path(__file__).parent / "golden" / "summary.json"


def test_summary_matches_golden_file(
    result: ReconciliationResult, tmp_path: Path, golden: Golden
) -> None:
    golden(GOLDEN, write_summary(result, tmp_path / "summary.json").read_bytes())


def test_summary_is_deterministic_and_sorted(result: ReconciliationResult) -> None:
    text = summary_json(result)
    assert text == summary_json(result)
    data = json.loads(text)
    assert text == json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert data["generated_at"] == "2026-03-02T09:30:00+00:00"


def test_totals_are_per_currency_and_add_up(result: ReconciliationResult) -> None:
    summary = build_summary(result)
    c = result.customers
    mapped = c[c["status"] == "mapped"]
    assert sorted(summary["totals"]) == sorted(c["currency"].unique())
    for cur, t in summary["totals"].items():
        rows = mapped[mapped["currency"] == cur]
        assert t["legacy"] == int(rows["legacy_total"].sum())
        assert t["new"] == int(rows["new_total"].sum())
        assert t["legacy"] + t["delta"] == t["new"]
        unmapped = c[(c["currency"] == cur) & (c["status"] != "mapped")]
        assert t["unmapped_legacy"] == int(unmapped["legacy_total"].sum())
        month = result.monthly[result.monthly["currency"] == cur]
        assert t["actual_legacy"] == int(month["actual_legacy"].sum())
        assert t["customers_up"] + t["customers_down"] + t["customers_unchanged"] == len(rows)
        assert isinstance(t["legacy"], int)
    people = summary["customers"]
    assert people["total"] == len(c) == people["mapped"] + people["unmapped"]
    assert sum(summary["change_distribution"].values()) == people["mapped"]


def test_findings_and_exceptions_are_counted(result: ReconciliationResult) -> None:
    summary = build_summary(result)
    f = result.findings
    assert summary["findings"]["total"] == len(f)
    assert summary["findings"]["by_comparison"] == {
        k: int(v) for k, v in f["comparison"].value_counts().items()
    }
    assert sum(summary["findings"]["by_cause"].values()) == len(f)
    assert summary["unexplained"]["findings"] == int((f["cause"] == "unexplained").sum())
    assert summary["unexplained"]["customers"] == int((result.customers["unexplained"] != 0).sum())
    assert summary["unexplained"]["amount"]["USD"] == int(
        result.customers.loc[result.customers["currency"] == "USD", "unexplained"].sum()
    )
    assert summary["exceptions"]["unmapped"] == len(result.exceptions["unmapped"]) > 0
    assert summary["verdict"]["passed"] is False
    assert summary["verdict"]["failed_checks"] == ["max_unexplained", "max_unmapped"]
    assert summary["fingerprints"] == result.fingerprints


def test_passing_summary(passing_result: ReconciliationResult) -> None:
    summary = build_summary(passing_result)
    assert summary["verdict"]["passed"] is True
    assert summary["verdict"]["failed_checks"] == []
    assert summary["unexplained"]["customers"] == 0
    assert summary["customers"]["unmapped"] == 0


def _reference_bucket(delta: int, legacy: int) -> str:
    """Which bucket a change falls in, computed with exact fractions."""
    if legacy <= 0:
        return "no legacy amount"
    if delta == 0:
        return "unchanged"
    pct = Fraction(delta * 100, legacy)
    if pct > 0:
        for bound, label in (
            (20, "20% and above"),
            (10, "10% to 20%"),
            (5, "5% to 10%"),
            (1, "1% to 5%"),
        ):
            if pct >= bound:
                return label
        return "0% to 1%"
    for bound, label in (
        (-1, "-1% to 0%"),
        (-5, "-5% to -1%"),
        (-10, "-10% to -5%"),
        (-20, "-20% to -10%"),
    ):
        if pct >= bound:
            return label
    return "below -20%"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(-(10**9), 10**9), st.integers(-1000, 10**12)),
        min_size=1,
        max_size=40,
    )
)
def test_histogram_buckets_are_exact(pairs: list[tuple[int, int]]) -> None:
    delta = [d for d, _ in pairs]
    legacy = [lg for _, lg in pairs]
    frame = pd.DataFrame(
        {
            "status": "mapped",
            "legacy_total": pd.array(legacy, dtype="Int64"),
            "delta": pd.array(delta, dtype="Int64"),
        }
    )
    got = change_histogram(frame).set_index("bucket")["customers"]
    expected = pd.Series([_reference_bucket(d, lg) for d, lg in pairs]).value_counts()
    for bucket in CHANGE_BUCKETS:
        assert got[bucket] == expected.get(bucket, 0), bucket
    assert int(np.sum(got.to_numpy())) == len(pairs)
