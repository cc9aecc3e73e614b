"""``shadowbill check`` as a library call: a phase gated, against a baseline, scoped to a change.

With a base configuration (``--base-dir`` or ``--base-rollout`` ...) the change from base
to head is diffed (``config_diff``); with a baseline folder too, only the customers the
change can affect are reconciled again (``scope``), or the whole phase when the change
cannot be bounded, saying why. With a baseline, every finding is classified as new,
resolved, changed or unchanged (``baseline``), and ``gate_on: new`` gates only what is new.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from shadowbill.errors import InputError
from shadowbill.pricing.catalog import load_catalog
from shadowbill.reconcile.baseline import (
    Baseline,
    FindingsDiff,
    compare_findings,
    gate_on_new,
    load_baseline,
)
from shadowbill.reconcile.config_diff import ConfigChange, diff_config
from shadowbill.reconcile.policy import Policy, load_policy
from shadowbill.reconcile.result import ReconciliationResult
from shadowbill.reconcile.run import Options, reconcile_files
from shadowbill.reconcile.scope import (
    Scope,
    check_baseline,
    find_scope,
    scoped_reconcile,
    temporary_work,
)
from shadowbill.snapshot.io import file_sha256, snapshot_fingerprint
from shadowbill.translate.rollout import Catalogs, Rollout, load_rollout

CHECK_OPTIONS = Options(detail_customers=0, diff_customers=0)  # a check opens no report detail


@dataclass(frozen=True)
class BaseConfig:
    """The configuration a change is compared with (the main branch's); None: the head's."""

    rollout: Path | None = None
    legacy_catalog: Path | None = None
    new_catalog: Path | None = None
    policy: Path | None = None

    @classmethod
    def from_dir(
        cls,
        base_dir: Path,
        head_rollout: Path,
        head_policy: Path | None,
        overrides: dict[str, Path | None],
    ) -> BaseConfig:
        """The base files named like the head's, in ``base_dir`` (given overrides win)."""
        found = {
            "rollout": Path(base_dir) / Path(head_rollout).name,
            "policy": None if head_policy is None else Path(base_dir) / Path(head_policy).name,
        }
        for path in found.values():
            if path is not None and not path.is_file():
                raise InputError(f"{path}: no such file in the base folder {base_dir}")
        given = {k: v for k, v in overrides.items() if v is not None}
        merged = {**found, **given}
        return cls(
            merged.get("rollout"),
            merged.get("legacy_catalog"),
            merged.get("new_catalog"),
            merged.get("policy"),
        )


@dataclass
class CheckOutcome:
    """What a check found: the phase's result and how it relates to the base and baseline."""

    result: ReconciliationResult
    change: ConfigChange | None = None
    diff: FindingsDiff | None = None  # the findings against the baseline
    baseline: Baseline | None = None
    scope: Scope | None = None  # set when the run was scoped
    full_reason: str = ""  # why the whole phase was reconciled although a base was given


def _base_rollout(base: BaseConfig, head_path: Path) -> Rollout:
    rollout = load_rollout(base.rollout or head_path)
    if base.legacy_catalog is None and base.new_catalog is None:
        return rollout
    legacy_path = base.legacy_catalog or rollout.legacy_catalog_path
    new_path = base.new_catalog or rollout.new_catalog_path
    cats = Catalogs(load_catalog(legacy_path), load_catalog(new_path))
    loaded = load_rollout(base.rollout or head_path, catalogs=cats)
    return replace(loaded, legacy_catalog_path=Path(legacy_path), new_catalog_path=Path(new_path))


def config_fingerprints(rollout: Rollout, policy_path: Path | None) -> dict[str, str]:
    """sha256 of the configuration files a run read."""
    out = {
        "legacy_catalog": file_sha256(rollout.legacy_catalog_path),
        "new_catalog": file_sha256(rollout.new_catalog_path),
        "rollout": file_sha256(rollout.path),
    }
    if policy_path is not None:
        out["policy"] = file_sha256(Path(policy_path))
    return out


def run_check(
    snapshot_dir: Path,
    rollout_path: Path,
    phase: int,
    policy_path: Path | None,
    *,
    options: Options = CHECK_OPTIONS,
    baseline_dir: Path | None = None,
    base: BaseConfig | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> CheckOutcome:
    """Gate one phase; scoped to the change from ``base`` when a baseline allows it."""
    head = load_rollout(rollout_path)
    policy = load_policy(policy_path)
    baseline = None if baseline_dir is None else load_baseline(baseline_dir)
    change = None
    outcome: CheckOutcome | None = None
    reason = ""
    if base is not None:
        base_rollout = _base_rollout(base, rollout_path)
        base_policy = load_policy(base.policy)
        change = diff_config(base_rollout, head, base_policy, policy)
        if baseline is None:
            reason = "no baseline to take the unaffected customers from"
        else:
            snapshot = snapshot_fingerprint(snapshot_dir, verify=False)
            reason = check_baseline(
                baseline,
                change,
                phase,
                options.projection_months,
                snapshot,
                config_fingerprints(base_rollout, base.policy),
            )
        if not reason and baseline is not None:
            outcome, reason = _scoped(
                snapshot_dir,
                base_rollout,
                head,
                policy,
                policy_path,
                phase,
                baseline,
                change,
                options,
                log,
            )
    if outcome is None:
        if reason:
            log(f"full check: {reason}")
        result = reconcile_files(snapshot_dir, rollout_path, phase, policy_path, options=options)
        outcome = CheckOutcome(result, change, full_reason=reason)
    outcome.baseline = baseline
    if baseline is not None:
        result = outcome.result
        if outcome.diff is None:
            assert result.findings_file is not None
            outcome.diff = compare_findings(result.findings_file, baseline.findings_file)
        if policy.gate_on == "new":
            result.verdict = gate_on_new(policy, result, outcome.diff, baseline)
    return outcome


def _scoped(
    snapshot_dir: Path,
    base_rollout: Rollout,
    head: Rollout,
    policy: Policy,
    policy_path: Path | None,
    phase: int,
    baseline: Baseline,
    change: ConfigChange,
    options: Options,
    log: Callable[[str], None],
) -> tuple[CheckOutcome | None, str]:
    window = baseline.window()
    assert window is not None
    scope, estate = find_scope(snapshot_dir, base_rollout, head, change, phase, window)
    log(
        f"scoped check: {len(scope.customers):,} of {len(estate['customers']):,} customers"
        f" ({scope.subscriptions:,} subscriptions) reconciled again"
    )
    fingerprints = {
        "snapshot": str(baseline.fingerprints.get("snapshot")),
        **config_fingerprints(head, policy_path),
    }
    work = temporary_work(options.work_dir)
    done = scoped_reconcile(
        snapshot_dir,
        base_rollout,
        head,
        policy,
        phase,
        baseline,
        scope,
        fingerprints=fingerprints,
        projection_months=options.projection_months,
        work_dir=Path(work.name),
    )
    if isinstance(done, str):
        work.cleanup()
        return None, done
    done.result.workdir = work  # the merged findings file lives as long as the result
    return CheckOutcome(done.result, change, done.diff, scope=scope), ""
