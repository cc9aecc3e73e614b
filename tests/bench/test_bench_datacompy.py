"""Smoke test of bench/bench_datacompy.py: shadowbill and datacompy find the same lines."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from shadowbill.reconcile.line_match import invoice_key
from shadowbill.snapshot.io import read_snapshot

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_datacompy.py"


def _load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_datacompy", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """The benchmark script, imported as a module."""
    return _load_bench()


def test_both_tools_name_the_same_mismatching_lines(
    bench: ModuleType, tmp_path_factory: pytest.TempPathFactory
) -> None:
    cache = tmp_path_factory.mktemp("bench-cache")
    snap_dir = bench.snapshot_dir(cache, 50, 12, 7)
    manifest = snap_dir / "manifest.json"
    built = manifest.stat().st_mtime_ns
    assert bench.snapshot_dir(cache, 50, 12, 7) == snap_dir  # reused, not rebuilt
    assert manifest.stat().st_mtime_ns == built

    snapshot = read_snapshot(snap_dir)
    outcome = bench.run_both(bench.comparison_a_sides(snapshot, bench.legacy_catalog()))

    assert outcome.datacompy is not None
    assert outcome.shadowbill  # the demo plants legacy billing errors
    assert outcome.datacompy == outcome.shadowbill
    assert outcome.findings == outcome.shadowbill
    assert not outcome.datacompy_quantity_only
    model_only, legacy_only, differing = outcome.datacompy_parts
    assert model_only > 0 and legacy_only > 0 and differing > 0  # missing, extra, price lines
    bench.check_same(outcome)

    # the mismatching lines sit on exactly the invoices where errors were planted
    planted = pd.read_csv(snap_dir.parent / "legacy.errors.csv", dtype="string")
    invoices = snapshot["invoices"]
    hit = invoices[invoices["invoice_id"].isin(planted["invoice_id"])]
    planted_keys = set(invoice_key(hit["subscription_id"], hit["period_start"]).tolist())
    assert {key.split("|")[0] for key in outcome.datacompy} == planted_keys

    names = [step.name for step in outcome.steps]
    assert names[0].startswith("keyed_lines") and names[-1].startswith("datacompy")
    assert all(step.seconds > 0 and step.peak_mb >= step.start_mb > 0 for step in outcome.steps)


def test_check_same_reports_a_disagreement(bench: ModuleType) -> None:
    outcome = bench.Outcome(
        steps=[],
        lines=(1, 1),
        shadowbill={"SUB-1@2025-01-01T00:00:00Z|usage/sms/2025-01-01T00:00:00Z/+/0"},
        findings={"SUB-1@2025-01-01T00:00:00Z|usage/sms/2025-01-01T00:00:00Z/+/0"},
        datacompy=set(),
        datacompy_quantity_only=set(),
        datacompy_parts=(0, 0, 0),
    )
    with pytest.raises(AssertionError, match="datacompy disagree"):
        bench.check_same(outcome)
