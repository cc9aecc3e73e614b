"""Findings name the customer beside the legacy id (issue 14, item 9)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
from pricing_builders import item, snapshot, subscription, usage
from test_compare_b_metered_start import ROLLOUT

from shadowbill.reconcile.phase_part import reconcile_part
from shadowbill.reconcile.policy import Policy
from shadowbill.translate.rollout import load_rollout


def test_every_finding_carries_the_customers_name(tmp_path: Path) -> None:
    path = tmp_path / "rollout.yaml"
    path.write_text(ROLLOUT, encoding="utf-8")
    snap = snapshot(
        subscriptions=[subscription("s1", started_at="2025-01-10T00:00:00Z")],
        subscription_items=[
            item("s1-pro", "pro_month_v1", 3, valid_from="2025-01-10T00:00:00Z"),
            item("s1-sms", "sms_month", 1, valid_from="2025-01-10T00:00:00Z"),
        ],
        usage=[usage("sms_messages", f"2025-{m:02d}-10T00:00:00Z", 5000) for m in range(1, 8)],
    )
    customers = snap["customers"].copy()
    customers["name"] = pd.array(["Zoë & Søn <Ltd>"], dtype="string")
    snap.tables["customers"] = customers
    part, _ = reconcile_part(
        snap, load_rollout(path, strict=True), 1, Policy(), None, tmp_path / "spill"
    )
    findings = pa.ipc.open_file(str(part.spill.path)).read_all().to_pandas()
    assert len(findings)
    assert set(findings["customer_id"]) == {"c_s1"}
    assert set(findings["customer_name"]) == {"Zoë & Søn <Ltd>"}
    assert b"Zo\xc3\xab & S\xc3\xb8n <Ltd>" in part.spill.path.with_suffix(".csv").read_bytes()
