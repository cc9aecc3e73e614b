"""The command line: a thin click layer that parses options and calls the library."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from shadowbill.cli.catalog import catalog
from shadowbill.cli.errors import InterruptibleGroup, debug_option, user_errors
from shadowbill.cli.migrate import migrate
from shadowbill.cli.output_option import OUTPUT, shown
from shadowbill.output_urls import output_folder

if TYPE_CHECKING:
    from shadowbill.reconcile.run import Options

F = TypeVar("F", bound=Callable[..., Any])


@click.group(cls=InterruptibleGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="shadowbill")
@debug_option
def main() -> None:
    """Shadow-bill a subscription billing migration: prove every invoice before cut-over."""


@main.command()
@click.option(
    "--source",
    required=True,
    help="SQLAlchemy URL of the legacy database, a folder of canonical CSV/Parquet files, or stripe:[BASE_URL] (a Stripe account, key from STRIPE_API_KEY).",
)
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Extract spec (YAML) mapping the legacy schema onto the canonical tables; required for a database.",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=OUTPUT,
    help="Snapshot folder to write, or an fsspec URL (s3://bucket/prefix) uploaded when complete.",
)
@click.option(
    "--chunk-size", default=200_000, show_default=True, help="Rows read from the source per chunk."
)
@click.option(
    "--layout",
    type=click.Choice(["buckets", "single"]),
    default="buckets",
    show_default=True,
    help="buckets: one Parquet file per customer bucket, streamed through a spill on disk"
    " (memory bounded by --chunk-size); single: one file per table, validated in memory"
    " (snapshot format version 1).",
)
@click.option(
    "--created-since",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    default=None,
    help="With --source stripe:, read only customers, subscriptions and invoices created since (UTC).",
)
@click.option(
    "--customers",
    "customers_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="With --source stripe:, keep only these customers (a file of legacy or Stripe ids, one a line).",
)
@click.option("--quiet", is_flag=True, help="No progress bar or summary table.")
@user_errors
def extract(
    source: str,
    spec_path: Path | None,
    out_dir: Path | str,
    chunk_size: int,
    layout: str,
    quiet: bool,
    created_since: dt.datetime | None = None,
    customers_file: Path | None = None,
) -> None:
    """Extract a legacy source into a canonical snapshot folder (Parquet + manifest)."""
    from shadowbill.extract.run import extract as run_extract
    from shadowbill.extract.summary import print_summary

    with output_folder(out_dir) as local:
        if source.startswith("stripe:"):
            from shadowbill.extract.stripe_source import extract_stripe, stripe_client

            customers = None
            if customers_file is not None:
                customers = [ln.strip() for ln in customers_file.read_text("utf-8").splitlines()]
                customers = [c for c in customers if c and c != "customer_id"]
            base = source[len("stripe:") :] or None
            result, stats = extract_stripe(
                local,
                client=stripe_client(base),
                created_since=created_since,
                customers=customers,
                progress=not quiet,
                label="stripe:" + ("" if base is None else base),
            )
            if not quiet:
                print_summary(result)
                click.echo(
                    f"Stripe: {stats.total_requests:,} requests ({', '.join(f'{k} {v:,}' for k, v in sorted(stats.objects.items()))} objects)"
                )
            return
        result = run_extract(
            source,
            spec_path,
            local,
            chunk_size=chunk_size,
            layout="single" if layout == "single" else "buckets",
            progress=not quiet,
        )
        if not quiet:
            print_summary(result)


@main.command("demo-data")
@click.option("--customers", default=1000, show_default=True, help="Number of customers.")
@click.option("--months", default=12, show_default=True, help="Months of billing history.")
@click.option(
    "--seed",
    default=7,
    show_default=True,
    help="Random seed; the same seed gives the same database.",
)
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite file to write (legacy.db).",
)
@user_errors
def demo_data(customers: int, months: int, seed: int, out_path: Path) -> None:
    """Write the demo company's legacy billing database, its extract spec and planted errors."""
    from shadowbill.demo.generate import generate

    result = generate(out_path, customers=customers, months=months, seed=seed)
    click.echo(result.describe())


@main.command()
@click.option(
    "--snapshot",
    "snapshot_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Snapshot folder.",
)
@click.option(
    "--catalog",
    "catalog_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Catalog YAML.",
)
@click.option(
    "--from",
    "start",
    default=None,
    help="First period start to price (ISO date); default: the earliest.",
)
@click.option(
    "--to",
    "end",
    default=None,
    help=(
        "Last period end to price (ISO date); default: the latest legacy invoice period_end,"
        " but never after the snapshot's extraction time (the extraction time when there"
        " are no invoices)."
    ),
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=OUTPUT,
    help="Folder for invoices and invoice_lines, or an fsspec URL (s3://...).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["parquet", "csv"]), default="parquet", show_default=True
)
@user_errors
def price(
    snapshot_dir: Path,
    catalog_path: Path,
    start: str | None,
    end: str | None,
    out_dir: Path | str,
    fmt: str,
) -> None:
    """Recompute every invoice of a snapshot under a catalog."""
    from shadowbill.pricing.run import price_to_files

    with output_folder(out_dir) as local:
        written = price_to_files(snapshot_dir, catalog_path, local, start=start, end=end, fmt=fmt)
    for path in written:
        click.echo(shown(path, local, out_dir))


def _reconcile_options(func: F) -> F:
    """The inputs shared by ``reconcile`` and ``check``."""
    options = [
        click.option(
            "--snapshot",
            "snapshot_dir",
            required=True,
            type=click.Path(exists=True, file_okay=False, path_type=Path),
            help="Snapshot folder.",
        ),
        click.option(
            "--rollout",
            "rollout_path",
            required=True,
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Rollout rules (YAML); names both catalogs.",
        ),
        click.option(
            "--phase", required=True, type=click.IntRange(1, 3), help="Rollout phase to reconcile."
        ),
        click.option(
            "--policy",
            "policy_path",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            default=None,
            help="Gate policy (YAML); default: no unexplained difference, no unmapped subscription.",
        ),
        click.option(
            "--projection-months",
            default=12,
            show_default=True,
            help="Months priced after the last cut-over.",
        ),
        click.option(
            "--partitions",
            default=1,
            show_default=True,
            type=click.IntRange(1, 256),
            help="Cut the estate into this many partitions of whole customers (bounds memory).",
        ),
        click.option(
            "--workers",
            default=1,
            show_default=True,
            type=click.IntRange(1, 256),
            help="Run partitions in this many local worker processes.",
        ),
        click.option(
            "--dask",
            "dask_address",
            default=None,
            metavar="ADDRESS",
            help="Run partitions on an existing Dask cluster (scheduler address, e.g."
            " tcp://10.0.0.5:8786); workers must see the snapshot at the same path, and"
            " run up to 1.8x faster started without Dask's default MALLOC_TRIM_THRESHOLD_"
            " (README, Measured).",
        ),
        click.option(
            "--work-dir",
            "work_dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            help="Where partitions write their findings (default: a temporary folder); on a"
            " Dask cluster of several machines, a folder every worker sees.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _run_options(
    projection_months: int,
    partitions: int,
    workers: int,
    dask_address: str | None,
    work_dir: Path | None = None,
) -> Options:
    """Run options from the command line; workers or Dask imply at least one partition each."""
    from shadowbill.reconcile.executors import Executor
    from shadowbill.reconcile.run import Options

    if (workers > 1 or dask_address) and partitions == 1:
        partitions = max(workers, 2) * 4  # a few partitions per worker balance the load
    return Options(
        projection_months=projection_months,
        partitions=partitions,
        executor=Executor(workers=workers, dask_address=dask_address),
        work_dir=work_dir,
    )


@main.command()
@_reconcile_options
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=OUTPUT,
    help="Folder for report.html, findings.*, summary.json, junit.xml, or an fsspec URL (s3://...).",
)
@click.option(
    "--rates",
    "rates_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Rates CSV (date,from,to,rate) for one reporting-currency view on the page.",
)
@user_errors
def reconcile(
    snapshot_dir: Path,
    rollout_path: Path,
    phase: int,
    policy_path: Path | None,
    projection_months: int,
    partitions: int,
    workers: int,
    dask_address: str | None,
    work_dir: Path | None,
    out_dir: Path | str,
    rates_path: Path | None,
) -> None:
    """Reconcile a rollout phase and write the finance report and findings."""
    from shadowbill.reconcile.progress_bar import partition_progress
    from shadowbill.reconcile.run import reconcile_files
    from shadowbill.reports.terminal import print_terminal_summary
    from shadowbill.reports.write import write_reports

    options = _run_options(projection_months, partitions, workers, dask_address, work_dir)
    with partition_progress(sys.stderr.isatty(), executor=options.executor.describe()) as tick:
        result = reconcile_files(
            snapshot_dir, rollout_path, phase, policy_path, options=options, progress=tick
        )
    with output_folder(out_dir) as local:
        written = write_reports(result, local, rates=rates_path)
    print_terminal_summary(result)
    for name, path in written.items():
        click.echo(f"{name:>10}  {shown(path, local, out_dir)}")


def _file_option(name: str, dest: str, help_text: str, *, exists: bool = True) -> Callable[[F], F]:
    return click.option(
        name,
        dest,
        type=click.Path(exists=exists, dir_okay=False, path_type=Path),
        default=None,
        help=help_text,
    )


@main.command()
@_reconcile_options
@_file_option("--junit", "junit_path", "Write the gate's checks as JUnit XML.", exists=False)
@_file_option("--json", "json_path", "Write summary.json here.", exists=False)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Results folder (findings.parquet, summary.json, ...): a later check's --baseline.",
)
@click.option(
    "--baseline",
    "baseline_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="A previous run's results folder: findings are new, resolved, changed or unchanged"
    " against it (the policy's gate_on: new gates only what is new).",
)
@_file_option(
    "--summary-md",
    "summary_md",
    "Write a Markdown summary (pull request, job summary).",
    exists=False,
)
@click.option(
    "--base-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="The base configuration (e.g. the main branch's), files named like --rollout and"
    " --policy: with --baseline only the customers the change can affect are reconciled.",
)
@_file_option("--base-rollout", "base_rollout", "The base rollout (default: --rollout).")
@_file_option("--base-legacy-catalog", "base_legacy", "The base legacy catalog.")
@_file_option("--base-new-catalog", "base_new", "The base new catalog.")
@_file_option("--base-policy", "base_policy", "The base gate policy.")
@user_errors
def check(
    snapshot_dir: Path,
    rollout_path: Path,
    phase: int,
    policy_path: Path | None,
    projection_months: int,
    partitions: int,
    workers: int,
    dask_address: str | None,
    work_dir: Path | None,
    junit_path: Path | None,
    json_path: Path | None,
    out_dir: Path | None,
    baseline_dir: Path | None,
    summary_md: Path | None,
    base_dir: Path | None,
    base_rollout: Path | None,
    base_legacy: Path | None,
    base_new: Path | None,
    base_policy: Path | None,
) -> None:
    """Gate a rollout phase for CI: exit 0 when it passes, 1 when it fails, 2 on unusable input."""
    from dataclasses import replace

    from shadowbill.output_folder import StagedFolder
    from shadowbill.reconcile.baseline import write_results
    from shadowbill.reconcile.check import BaseConfig, run_check
    from shadowbill.reports.junit import write_junit
    from shadowbill.reports.summary import write_summary
    from shadowbill.reports.summary_md import write_summary_md
    from shadowbill.reports.terminal import format_gate_failure

    options = _run_options(projection_months, partitions, workers, dask_address, work_dir)
    overrides: dict[str, Path | None] = {
        "rollout": base_rollout,
        "legacy_catalog": base_legacy,
        "new_catalog": base_new,
        "policy": base_policy,
    }
    base = None
    if base_dir is not None:
        base = BaseConfig.from_dir(base_dir, rollout_path, policy_path, overrides)
    elif any(p is not None for p in (base_rollout, base_legacy, base_new, base_policy)):
        base = BaseConfig(base_rollout, base_legacy, base_new, base_policy)
    outcome = run_check(
        snapshot_dir,
        rollout_path,
        phase,
        policy_path,
        options=replace(options, detail_customers=0, diff_customers=0),
        baseline_dir=baseline_dir,
        base=base,
        log=lambda line: click.echo(line, err=True),
    )
    result = outcome.result
    if out_dir is not None:
        with StagedFolder(out_dir) as staged:  # a later --baseline never reads half a run
            write_results(result, staged.path, projection_months=projection_months)
            write_summary(result, staged.path / "summary.json")
            staged.publish()
    if junit_path is not None:
        write_junit(result, junit_path)
    if json_path is not None:
        write_summary(result, json_path)
    if summary_md is not None:
        write_summary_md(outcome, summary_md)
    if not result.verdict.passed:
        click.echo(format_gate_failure(result), err=True)
        sys.exit(1)


@main.command()
@click.option("--customers", default=2000, show_default=True, help="Size of the demo company.")
@click.option("--months", default=12, show_default=True)
@click.option("--seed", default=7, show_default=True)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write (default: a new temporary folder).",
)
@click.option(
    "--migrate/--no-migrate",
    default=True,
    show_default=True,
    help="Also migrate a batch of each phase to a local Stripe-compatible server.",
)
@click.option(
    "--stripe-customers",
    is_flag=True,
    help="Some demo customers already exist on the local server with a card: the batches "
    "find and attach them (never duplicate them).",
)
@user_errors
def demo(
    customers: int,
    months: int,
    seed: int,
    out_dir: Path | None,
    migrate: bool,
    stripe_customers: bool,
) -> None:
    """Run everything end to end on a fresh demo company and print where the outputs are."""
    from shadowbill.demo.run import run_demo

    run_demo(
        out_dir,
        customers=customers,
        months=months,
        seed=seed,
        migrate=migrate,
        echo=click.echo,
        stripe_customers=stripe_customers,
    )


@main.command()
@click.argument("report_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--name", required=True, help="Who signs.")
@click.option("--role", required=True, help="In which role (e.g. Financial controller).")
@click.option("--note", default=None, help="A decision or comment kept with the sign-off.")
@click.option("--ledger", "ledger_url", default=None, help="Also keep it in this ledger.")
@user_errors
def signoff(
    report_dir: Path, name: str, role: str, note: str | None, ledger_url: str | None
) -> None:
    """Sign a report: append who and when, with the report's fingerprints, to signoff.json
    and the page (and the ledger); refused when the report changed since it was written."""
    from shadowbill.reports.signoff import sign_off

    record = sign_off(report_dir, name, role, note)
    if ledger_url is not None:
        from shadowbill.ledger import open_ledger

        with open_ledger(ledger_url, actor=name) as ledger:
            ledger.record_signoff(record)
    summary = record["fingerprints"].get("summary.json", "")
    click.echo(
        f"signed phase {record['phase']} ({record['verdict']}) as {record['name']},"
        f" {record['role']}, at {record['signed_at']}; summary.json sha256 {summary}"
    )


main.add_command(migrate)
main.add_command(catalog)

if __name__ == "__main__":  # pragma: no cover
    main()
