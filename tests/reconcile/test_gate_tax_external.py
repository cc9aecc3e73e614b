"""Outside tax on legacy invoices: the gate passes only when the policy allows tax_external.

A legacy estate whose tax came from an outside engine (Avalara, Stripe Tax) carries tax the
catalog cannot recompute (a 7.25% sales tax for US customers the catalog has no rate for).
Comparison A must not hide it behind a PASS: with ``tax_mode: computed`` each such invoice is
an unexplained difference; with ``tax_mode: external`` it is reported as ``tax_external``,
which a policy has to allow by name.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from demo_companies import demo_company

from shadowbill.cli.app import main
from shadowbill.demo.run import examples_dir
from shadowbill.snapshot.io import read_snapshot, write_snapshot
from shadowbill.snapshot.tables import Snapshot

pytestmark = pytest.mark.slow

SALES_TAX_PERMILLE = 725  # 7.25%: a rate the catalog does not know


def _with_outside_tax(snapshot: Snapshot) -> Snapshot:
    """US customers' legacy invoices get sales tax on top, with a tax line each."""
    invoices = snapshot["invoices"].copy()
    customers = snapshot["customers"]
    us = set(customers.loc[customers["country"] == "US", "customer_id"])
    taxed = invoices["customer_id"].isin(us) & (invoices["subtotal"] > 0)
    base = (invoices["subtotal"] - invoices["discount"]).astype("int64")
    tax = np.where(taxed, (base * SALES_TAX_PERMILLE + 5000) // 10000, 0)
    invoices["tax"] = (invoices["tax"].astype("int64") + tax).astype(invoices["tax"].dtype)
    invoices["total"] = (invoices["total"].astype("int64") + tax).astype(invoices["total"].dtype)
    rows = invoices[taxed & (tax > 0)]
    lines = snapshot["invoice_lines"]
    extra = pd.DataFrame(
        {
            "line_id": rows["invoice_id"].astype("string") + "/sales_tax",
            "invoice_id": rows["invoice_id"],
            "price_id": pd.array([pd.NA] * len(rows), dtype=lines["price_id"].dtype),
            "kind": "tax",
            "description": "Sales tax (outside engine)",
            "quantity": pd.array([pd.NA] * len(rows), dtype=lines["quantity"].dtype),
            "unit_amount_decimal": pd.array([pd.NA] * len(rows), dtype="string"),
            "amount": tax[(taxed & (tax > 0)).to_numpy()],
            "period_start": rows["period_start"],
            "period_end": rows["period_end"],
        }
    ).astype(lines.dtypes.to_dict())
    tables = {**snapshot.tables, "invoices": invoices}
    tables["invoice_lines"] = pd.concat([lines, extra], ignore_index=True)
    return Snapshot(tables=tables, quarantine=snapshot.quarantine)


@pytest.fixture(scope="module")
def outside_tax(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo company's snapshot with outside sales tax planted on its legacy invoices."""
    company = demo_company(300, 8, 11)
    out = tmp_path_factory.mktemp("outside-tax") / "snapshot"
    write_snapshot(_with_outside_tax(read_snapshot(company.snapshot)), out, source="test")
    return out


def _setup(tmp_path: Path, *, tax_mode: str, allow: bool) -> tuple[Path, Path]:
    """(rollout, policy): the demo's, with the legacy catalog's tax_mode and the policy's
    phase-2 causes set."""
    folder = tmp_path / "company"
    shutil.copytree(examples_dir(), folder)
    legacy = folder / "legacy_catalog.yaml"
    legacy.write_text(legacy.read_text() + f"\ntax_mode: {tax_mode}\n")
    policy_path = folder / "policy.yaml"
    policy = yaml.safe_load(policy_path.read_text())
    if allow:
        policy["phases"][2]["allowed_causes"].append("tax_external")
    policy_path.write_text(yaml.safe_dump(policy))
    return folder / "rollout.yaml", policy_path


@pytest.mark.parametrize(
    ("tax_mode", "allow", "exit_code"),
    [
        ("computed", False, 1),  # unexplained findings of comparison A: never PASS
        ("computed", True, 1),  # allowing tax_external does not explain computed tax
        ("external", False, 1),  # tax_external found, not allowed
        ("external", True, 0),
    ],
)
def test_check_passes_over_outside_tax_only_when_the_policy_allows_tax_external(
    outside_tax: Path, tmp_path: Path, tax_mode: str, allow: bool, exit_code: int
) -> None:
    rollout, policy = _setup(tmp_path, tax_mode=tax_mode, allow=allow)
    summary = tmp_path / "summary.json"
    result = CliRunner().invoke(
        main,
        [
            "check",
            "--snapshot",
            str(outside_tax),
            "--rollout",
            str(rollout),
            "--phase",
            "2",
            "--policy",
            str(policy),
            "--json",
            str(summary),
        ],
    )
    assert result.exit_code == exit_code, result.output
    if tax_mode == "external":
        assert "tax_external" in summary.read_text()
