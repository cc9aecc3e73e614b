"""junit.xml: one suite for the phase, one case per gate check, failures with details."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd

from shadowbill.reconcile.result import GateVerdict, ReconciliationResult
from shadowbill.reports.junit import write_junit


def test_failing_gate(result: ReconciliationResult, tmp_path: Path) -> None:
    root = ET.parse(write_junit(result, tmp_path / "junit.xml")).getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "shadowbill gate: phase 2 (Existing customers)"
    assert suite.get("tests") == "4" and suite.get("failures") == "2"
    assert suite.get("timestamp") == "2026-03-02T09:30:00"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert list(cases) == [c.name for c in result.verdict.checks]
    failure = cases["max_unexplained"].find("failure")
    assert failure is not None
    assert failure.get("message") == result.verdict.checks[0].detail
    assert "<and more>" in failure.get("message", "")  # escaped in the file, intact when parsed
    assert "limit: <= 0 findings" in (failure.text or "")
    assert cases["allowed_causes"].find("failure") is None
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["sha256.rollout"] == result.fingerprints["rollout"]


def test_passing_gate(passing_result: ReconciliationResult, tmp_path: Path) -> None:
    root = ET.parse(write_junit(passing_result, tmp_path / "junit.xml")).getroot()
    assert root.get("failures") == "0"
    assert not list(root.iter("failure"))


def test_failed_verdict_without_checks_still_fails(tmp_path: Path) -> None:
    bare = ReconciliationResult(
        phase=3,
        phase_name="Remaining",
        generated_at=pd.Timestamp("2026-01-01T00:00:00Z"),
        verdict=GateVerdict(False),
    )
    root = ET.parse(write_junit(bare, tmp_path / "j.xml")).getroot()
    assert root.get("failures") == "1" and len(list(root.iter("failure"))) == 1
