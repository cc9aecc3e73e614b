"""The gate: turn findings into pass or fail for CI, by the policy's rules."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shadowbill.listing import first_few
from shadowbill.reconcile.policy import Policy
from shadowbill.reconcile.result import GateCheck, GateVerdict

_NAMES_SHOWN = 5


def _some(values: pd.Series) -> str:
    return first_few(values.drop_duplicates(), _NAMES_SHOWN)


def gate_relevant(findings: pd.DataFrame, policy: Policy, phase: int) -> np.ndarray:
    """The findings the gate reads: comparison A, unexplained, and causes the phase forbids.

    A partitioned run keeps only these in memory; the gate's verdict is the same.
    """
    allowed = set(policy.for_phase(phase).allowed_causes) | {"unexplained"}
    cause = findings["cause"]
    invoice_b = ((findings["comparison"] == "B") & (findings["level"] == "invoice")).to_numpy(
        dtype=bool
    )
    keep = (findings["comparison"] == "A").to_numpy(dtype=bool)
    keep |= cause.isin(["unexplained", "tax_external"]).to_numpy(dtype=bool, na_value=False)
    keep |= invoice_b & ~cause.isin(allowed).to_numpy(dtype=bool)
    return keep


def _other_comparisons(policy: Policy, findings: pd.DataFrame) -> GateCheck:
    """Unexplained findings of comparisons A and C, at any level: none, unless the policy
    names the comparison with its limits (``comparisons: {A: {max_unexplained: ...}}``).

    The report's "Unexplained" figure counts these too, so the badge never says PASS
    over an unexplained difference the policy did not accept.
    """
    unexplained = findings[(findings["comparison"] != "B") & (findings["cause"] == "unexplained")]
    over: list[str] = []
    measured: list[str] = []
    for name in ("A", "C"):  # the comparisons other than B
        rows = unexplained[unexplained["comparison"] == name]
        limit = policy.comparisons.get(name)
        count = len(rows)
        amount = int(rows["delta"].abs().sum()) if count else 0
        measured.append(f"{name}: {count} findings, {amount} minor units")
        within = (
            count == 0
            if limit is None
            else count <= limit.max_unexplained and amount <= limit.max_unexplained_amount
        )
        if not within:
            over.append(f"{count} in comparison {name}, for {_some(rows['customer_id'])}")
    limits = ", ".join(
        f"{n}: <= {c.max_unexplained} findings, <= {c.max_unexplained_amount} minor units"
        for n, c in sorted(policy.comparisons.items())
    )
    return GateCheck(
        "unexplained_other_comparisons",
        not over,
        limits or "none in A or C",
        "; ".join(measured),
        "no unexplained difference in comparisons A or C"
        if not over
        else "unexplained differences " + "; ".join(over),
    )


def evaluate_gate(
    policy: Policy,
    phase: int,
    findings: pd.DataFrame,
    customers: pd.DataFrame,
    unmapped: pd.DataFrame,
) -> GateVerdict:
    """Judge one phase's reconciliation: each policy rule is one check, all must pass."""
    checks: list[GateCheck] = []
    b = findings[findings["comparison"] == "B"]
    invoice_level = b[b["level"] == "invoice"]

    unexplained = invoice_level[invoice_level["cause"] == "unexplained"]
    count = len(unexplained)
    amount = int(unexplained["delta"].abs().sum()) if count else 0
    checks.append(
        GateCheck(
            "max_unexplained",
            count <= policy.max_unexplained and amount <= policy.max_unexplained_amount,
            f"<= {policy.max_unexplained} findings, <= {policy.max_unexplained_amount} minor units",
            f"{count} findings, {amount} minor units",
            "every difference has a cause"
            if count == 0
            else f"{count} unexplained differences, for {_some(unexplained['customer_id'])}",
        )
    )

    n_unmapped = len(unmapped)
    checks.append(
        GateCheck(
            "max_unmapped",
            n_unmapped <= policy.max_unmapped,
            f"<= {policy.max_unmapped}",
            str(n_unmapped),
            "every subscription of the phase matched a rule"
            if n_unmapped == 0
            else f"{n_unmapped} subscriptions match no rule: {_some(unmapped['subscription_id'])}",
        )
    )

    checks.append(_other_comparisons(policy, findings))

    allowed = set(policy.for_phase(phase).allowed_causes) | {"unexplained"}
    material = invoice_level["delta"].abs() > policy.tolerance.absolute
    if policy.tolerance.relative_percent > 0:
        expected = invoice_level["expected"].abs().astype("Float64")
        rel_limit = expected * float(policy.tolerance.relative_percent) / 100
        material &= invoice_level["delta"].abs().astype("Float64") > rel_limit
    disallowed = invoice_level[material & ~invoice_level["cause"].isin(allowed)]
    # an outside engine's tax found by comparison A or C passes only when allowed by name
    other = findings[(findings["comparison"] != "B") & (findings["level"] == "invoice")]
    external = other[(other["cause"] == "tax_external") & ("tax_external" not in allowed)]
    disallowed = pd.concat([disallowed, external]) if len(external) else disallowed
    causes = sorted(disallowed["cause"].dropna().unique().tolist())
    checks.append(
        GateCheck(
            "allowed_causes",
            disallowed.empty,
            ", ".join(sorted(allowed - {"unexplained"})),
            ", ".join(causes) or "none outside the list",
            "only allowed causes"
            if disallowed.empty
            else f"phase {phase} does not allow {', '.join(causes)}: {_some(disallowed['customer_id'])}",
        )
    )

    cap = policy.increase_cap
    mapped = customers[customers["status"] == "mapped"]
    rising = mapped[mapped["delta_pct"].fillna(0) > float(cap.above_percent)]
    checks.append(
        GateCheck(
            "increase_cap",
            cap.allows(len(rising), len(mapped)),
            cap.describe(),
            f"{len(rising)} of {len(mapped)} customers",
            f"{len(rising)} customers pay more than {cap.above_percent}% more"
            + (f": {_some(rising['customer_id'])}" if len(rising) else ""),
        )
    )

    if policy.max_drift is not None:
        drift = findings[(findings["comparison"] == "A") & (findings["level"] == "invoice")]
        checks.append(
            GateCheck(
                "max_drift",
                len(drift) <= policy.max_drift,
                f"<= {policy.max_drift}",
                str(len(drift)),
                f"{len(drift)} legacy invoices differ from the legacy catalog",
            )
        )
    return GateVerdict(all(c.passed for c in checks), tuple(checks))
