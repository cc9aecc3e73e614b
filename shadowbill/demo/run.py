"""``shadowbill demo``: the whole flow on a fresh demo company, end to end."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from importlib.resources import as_file, files
from pathlib import Path

import pandas as pd

from shadowbill.demo.generate import generate
from shadowbill.demo.migration import run_migration_demo
from shadowbill.extract.run import extract
from shadowbill.pricing.run import price_to_files
from shadowbill.reconcile.result import ReconciliationResult
from shadowbill.reconcile.run import reconcile_files
from shadowbill.rehearsal.extra import INSTALL_HINT, missing_server_modules
from shadowbill.reports.write import write_reports

PHASES = (1, 2, 3)


def examples_dir() -> Path:
    """The demo company's catalogs, rollout rules and policy, wherever shadowbill is installed."""
    with as_file(files("shadowbill.examples").joinpath("demo_company")) as path:
        return Path(path)


def run_demo(
    out_dir: Path | None,
    *,
    customers: int = 2000,
    months: int = 12,
    seed: int = 7,
    phase: int = 2,
    migrate: bool = True,
    echo: Callable[[str], object] = print,
    stripe_customers: bool = False,
) -> dict[str, Path]:
    """Generate, extract, price and reconcile a demo company, then migrate a batch of each
    phase to a local Stripe-compatible server; return where each output is."""
    out = (
        Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="shadowbill-demo-"))
    )
    out.mkdir(parents=True, exist_ok=True)
    examples = examples_dir()
    started = time.perf_counter()

    echo(f"1/5 demo company: {customers:,} customers x {months} months (seed {seed})")
    demo = generate(out / "legacy.db", customers=customers, months=months, seed=seed)
    echo(demo.describe())

    echo("2/5 extract the legacy database into a canonical snapshot")
    snapshot_dir = out / "snapshot"
    extract(f"sqlite:///{demo.db_path}", demo.spec_path, snapshot_dir, progress=False)

    echo("3/5 recompute the legacy history with the legacy catalog")
    priced_dir = out / "priced-legacy"
    price_to_files(snapshot_dir, examples / "legacy_catalog.yaml", priced_dir, start=None, end=None)

    echo("4/5 reconcile each phase of the rollout and write its finance report")
    written: dict[str, Path] = {}
    verdicts: list[str] = []
    drift_line = ""
    for each in PHASES:
        result = reconcile_files(
            snapshot_dir, examples / "rollout.yaml", each, examples / "policy.yaml"
        )
        for name, path in write_reports(result, out / f"report-phase{each}").items():
            written[f"phase {each} {name}"] = path
        verdict = "PASS" if result.verdict.passed else "FAIL"
        verdicts.append(f"gate verdict (phase {each}): {verdict}")
        for check in result.verdict.failures:
            verdicts.append(f"  {check.name}: {check.value} (limit {check.limit}): {check.detail}")
        if each == phase:
            planted, found, other = _drift_against_truth(result, demo.errors_path)
            drift_line = (
                f"legacy drift (comparison A, phase {phase} cohort): found {found} of the"
                f" {planted} planted legacy billing errors in this cohort, {other} other"
                " differences"
            )
    echo("")
    for line in verdicts:
        echo(line)
    if drift_line:
        echo(drift_line)
    migrated: dict[str, Path] = {}
    missing = missing_server_modules() if migrate else []
    if migrate and missing:
        echo("")
        echo(
            f"5/5 skipped: migrating to a local Stripe-compatible server needs the rehearsal "
            f"extra ({', '.join(missing)} not installed): {INSTALL_HINT}"
        )
    elif migrate:
        echo("")
        echo(
            "5/5 migrate a batch of each phase to a local Stripe-compatible server:"
            " plan, gate, apply, verify (comparison C), cut over"
        )
        migrated = run_migration_demo(
            out / "migration", examples, echo=echo, stripe_customers=stripe_customers
        )
    echo(f"done in {time.perf_counter() - started:.1f} s. Outputs:")
    outputs = {
        "legacy database": demo.db_path,
        "planted errors": demo.errors_path,
        "snapshot": snapshot_dir,
        "legacy recomputed": priced_dir,
        **{f"report {k}": v for k, v in written.items() if k.endswith(("html", "summary"))},
        **migrated,
    }
    width = max(len(k) for k in outputs)
    for name, path in outputs.items():
        echo(f"  {name:<{width}}  {path}")
    return outputs


def _drift_against_truth(result: ReconciliationResult, errors_csv: Path) -> tuple[int, int, int]:
    """(planted in the cohort, found by comparison A, other A findings)."""
    truth = pd.read_csv(errors_csv, dtype=str)
    cohort = set(result.customers["customer_id"].dropna())
    planted = set(truth.loc[truth["customer_id"].isin(cohort), "invoice_id"])
    drift = result.exceptions.get("drift", pd.DataFrame())
    flagged = set(drift["actual_invoice_id"].dropna()) if "actual_invoice_id" in drift else set()
    return len(planted), len(planted & flagged), len(flagged - planted)
