"""JUnit XML of the gate, so that CI systems show each policy check as a test."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd

from shadowbill.errors import ReportError
from shadowbill.reconcile.result import GateCheck, ReconciliationResult


def _utc(stamp: object) -> pd.Timestamp:
    """A timestamp in UTC without its zone, as JUnit's timestamp attribute wants it."""
    ts = pd.Timestamp(stamp)  # type: ignore[arg-type]
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo else ts


def _suite_name(result: ReconciliationResult) -> str:
    return f"shadowbill gate: phase {result.phase} ({result.phase_name})"


def junit_tree(result: ReconciliationResult) -> ET.ElementTree:
    """One testsuite for the phase, one testcase per gate check, a failure per failed check."""
    checks: tuple[GateCheck, ...] = result.verdict.checks
    if not checks and not result.verdict.passed:
        # A verdict that failed without naming a check still has to fail in CI.
        checks = (GateCheck("gate", False, "", "failed", "the gate failed without a check"),)
    failures = [c for c in checks if not c.passed]
    root = ET.Element(
        "testsuites",
        {"name": "shadowbill", "tests": str(len(checks)), "failures": str(len(failures))},
    )
    suite = ET.SubElement(
        root,
        "testsuite",
        {
            "name": _suite_name(result),
            "tests": str(len(checks)),
            "failures": str(len(failures)),
            "errors": "0",
            "skipped": "0",
            "time": "0",
            "timestamp": _utc(result.generated_at).strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", {"name": "phase", "value": str(result.phase)})
    for key, digest in sorted(result.fingerprints.items()):
        ET.SubElement(props, "property", {"name": f"sha256.{key}", "value": digest})
    for check in checks:
        case = ET.SubElement(
            suite,
            "testcase",
            {"classname": f"shadowbill.gate.phase{result.phase}", "name": check.name, "time": "0"},
        )
        text = f"limit: {check.limit}\nmeasured: {check.value}\n{check.detail}"
        if check.passed:
            ET.SubElement(case, "system-out").text = text
        else:
            failure = ET.SubElement(
                case, "failure", {"message": check.detail, "type": "GateCheckFailed"}
            )
            failure.text = text
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(result: ReconciliationResult, out_path: Path) -> Path:
    """Write the gate as JUnit XML for CI and return its path."""
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        junit_tree(result).write(out_path, encoding="utf-8", xml_declaration=True)
    except OSError as exc:
        raise ReportError(f"cannot write the JUnit report {out_path}: {exc.strerror}") from exc
    return out_path
