"""``migrate gate``: reconcile a batch's subscriptions alone and record the verdict."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shadowbill.errors import (
    MigrationError,
)
from shadowbill.ledger import Ledger
from shadowbill.ledger import states as st
from shadowbill.migrate.batch_files import (
    GATE_FILE,
    require_plan_files,
    write_csv,
)
from shadowbill.migrate.batch_inputs import (
    SHOW,
    load_batch,
    restrict,
)


@dataclass
class GateResult:
    """The gate verdict recorded for a batch."""

    batch_id: str
    passed: bool
    forced_reason: str | None
    failures: list[str]
    findings: int
    unexplained: int
    findings_path: Path

    @property
    def open(self) -> bool:
        """True when the batch may be applied."""
        return self.passed or bool(self.forced_reason)


def gate_batch(
    ledger: Ledger,
    batch_id: str,
    *,
    force_reason: str | None = None,
    snapshot_dir: Path | None = None,
    rollout_path: Path | None = None,
    policy_path: Path | None = None,
) -> GateResult:
    """Reconcile the batch's subscriptions alone with the policy and record the verdict."""
    from shadowbill.reconcile.run import Options, reconcile_phase

    batch = ledger.batch(batch_id)
    if batch.status not in st.GATEABLE:
        raise MigrationError(
            f"batch {batch_id} is {batch.status}: its gate is recorded before apply "
            f"(batch {', '.join(sorted(st.GATEABLE))})"
        )
    loaded = load_batch(
        ledger,
        batch_id,
        {"snapshot_dir": snapshot_dir, "rollout_path": rollout_path, "policy_path": policy_path},
    )
    require_plan_files(loaded.inputs.out_dir, batch_id)
    ids = loaded.subscriptions["subscription_id"]
    result = reconcile_phase(
        restrict(loaded.snapshot, ids),
        loaded.rollout,
        batch.phase,
        loaded.policy,
        fingerprints=dict(batch.fingerprints),
        options=Options(detail_customers=0, diff_customers=0),
        as_of=loaded.inputs.as_of,
    )
    findings = result.findings
    path = write_csv(loaded.inputs.out_dir / GATE_FILE, findings)
    failures = [f"{c.name}: {c.detail}" for c in result.verdict.failures]
    unexplained = int((findings["cause"] == "unexplained").sum()) if len(findings) else 0
    detail = {
        "checks": {c.name: {"passed": c.passed, "value": c.value} for c in result.verdict.checks},
        "failures": failures[:SHOW],
        "findings": len(findings),
        "unexplained": unexplained,
        "mapped": result.counts.get("mapped_subscriptions"),
    }
    passed = bool(result.verdict.passed)
    reason = force_reason.strip() if force_reason and not passed else None
    ledger.record_gate(
        batch_id, "pass" if passed else "fail", forced_reason=reason or None, detail=detail
    )
    return GateResult(batch_id, passed, reason, failures, len(findings), unexplained, path)
