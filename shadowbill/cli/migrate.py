"""``shadowbill migrate``: run a phased migration batch by batch (a thin layer over the runner).

    shadowbill migrate plan --rollout rollout.yaml --phase 2 --snapshot snap/ --batch-size 50
    shadowbill migrate gate --batch p2-0001
    shadowbill migrate apply --batch p2-0001            # STRIPE_API_KEY from the environment
    shadowbill migrate verify --batch p2-0001
    shadowbill migrate cutover --batch p2-0001 --spec legacy.extract.yaml --source "$LEGACY_URL"
    shadowbill migrate rollback --batch p2-0001
    shadowbill migrate status
    shadowbill migrate log --batch p2-0001

Every command takes ``--ledger URL`` (default ``$SHADOWBILL_LEDGER_URL``, else
``sqlite:///.shadowbill/ledger.db``). Errors are one line on stderr with exit status 2;
a step that ran but left subscriptions failed, unverified or a gate failed exits 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from shadowbill.cli.errors import InterruptibleGroup, debug_option, user_errors

F = TypeVar("F", bound=Callable[..., Any])
LEDGER_HELP = "Ledger database URL (default: $SHADOWBILL_LEDGER_URL, else .shadowbill/ledger.db)."


def _ledger_option(func: F) -> F:
    return click.option("--ledger", "ledger_url", default=None, help=LEDGER_HELP)(func)


def _target_options(func: F) -> F:
    from shadowbill.targets.stripe_api import (
        DEFAULT_CONCURRENCY,
        DEFAULT_RATE_LIMIT,
        DEFAULT_TIMEOUT,
    )

    func = click.option(
        "--timeout",
        default=DEFAULT_TIMEOUT,
        show_default=True,
        type=click.FloatRange(min=0.1),
        help="Seconds before a request is given up and retried.",
    )(func)
    func = click.option(
        "--concurrency",
        default=DEFAULT_CONCURRENCY,
        show_default=True,
        type=click.IntRange(min=1),
        help="Requests in flight at once.",
    )(func)
    func = click.option(
        "--rate-limit",
        default=DEFAULT_RATE_LIMIT,
        show_default=True,
        type=click.FloatRange(min=0.1),
        help="Requests per second (reads and writes each).",
    )(func)
    return click.option(
        "--base-url",
        envvar="SHADOWBILL_STRIPE_BASE_URL",
        default=None,
        help="Stripe API base address (default: Stripe's; a local Stripe-compatible server "
        "for rehearsals). The key is read from STRIPE_API_KEY.",
    )(func)


def _force_options(func: F) -> F:
    func = click.option("--reason", default=None, help="Why forcing is right (recorded).")(func)
    return click.option("--force", is_flag=True, help="Override the check (needs --reason).")(func)


def _forced(force: bool, reason: str | None) -> str | None:
    """The forced reason, checked: --force needs --reason and --reason needs --force."""
    from shadowbill.migrate import MigrationError

    if force and not (reason or "").strip():
        raise MigrationError("--force needs --reason '...' (it is recorded in the audit log)")
    if reason and not force:
        raise MigrationError("--reason is only used with --force")
    return reason.strip() if force and reason else None


@contextmanager
def _opened(url: str | None) -> Iterator[Any]:
    from shadowbill.ledger import open_ledger

    ledger = open_ledger(url)
    try:
        yield ledger
    finally:
        ledger.close()


def _console() -> Any:
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=False)
    if not console.is_terminal:
        console = Console(highlight=False, soft_wrap=False, width=160)
    return console


@click.group(cls=InterruptibleGroup, context_settings={"help_option_names": ["-h", "--help"]})
@debug_option
def migrate() -> None:
    """Run a phased migration: plan, gate, apply, verify, cut over or roll back batches."""


# ------------------------------------------------------------------ plan ----


@migrate.command()
@click.option(
    "--rollout",
    "rollout_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Rollout rules (YAML).",
)
@click.option("--phase", required=True, type=click.IntRange(min=1), help="Rollout phase.")
@click.option(
    "--snapshot",
    "snapshot_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Snapshot folder.",
)
@click.option(
    "--policy",
    "policy_path",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Gate policy (YAML); default: the built-in policy.",
)
@click.option(
    "--batch-size", default=50, show_default=True, type=click.IntRange(min=1), help="Subscriptions."
)
@click.option(
    "--where",
    default=None,
    help="pandas query over segment, country, currency, legacy_plan, new_plan, rule_id, "
    "customer_id, items, price_protection, change_pct, ... (docs/migration.md).",
)
@click.option(
    "--out",
    "out_dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Batch folder (default .shadowbill/batches/<batch_id>/).",
)
@click.option("--batch-id", default=None, help="Batch id (default p<phase>-<n>).")
@click.option(
    "--rank/--no-rank",
    default=True,
    show_default=True,
    help="Rank by risk from a reconciliation of the pool (--no-rank: skip it, faster).",
)
@click.option(
    "--customer-map",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV legacy_id,stripe_id: legacy customers that already exist on Stripe "
    "(attached, never duplicated).",
)
@click.option(
    "--find-customers",
    type=click.Choice(["metadata", "email"]),
    multiple=True,
    help="Search Stripe for existing customers, in the order given (Search API, 20/s); "
    "needs STRIPE_API_KEY.",
)
@click.option(
    "--customer-metadata-key",
    default="legacy_customer_id",
    show_default=True,
    help="The metadata key your Stripe customers keep the legacy customer id under.",
)
@click.option(
    "--check-customers",
    is_flag=True,
    help="Look up every linked Stripe customer (exists? payment method?); needs STRIPE_API_KEY.",
)
@click.option(
    "--base-url",
    envvar="SHADOWBILL_STRIPE_BASE_URL",
    default=None,
    help="Stripe API base URL (a local Stripe-compatible server for rehearsals).",
)
@_ledger_option
@user_errors
def plan(
    rollout_path: Path,
    phase: int,
    snapshot_dir: Path,
    policy_path: Path | None,
    batch_size: int,
    where: str | None,
    out_dir: Path | None,
    batch_id: str | None,
    rank: bool,
    customer_map: Path | None,
    find_customers: tuple[str, ...],
    customer_metadata_key: str,
    check_customers: bool,
    base_url: str | None,
    ledger_url: str | None,
) -> None:
    """Choose the next batch of a phase, record it, and write its operations for review."""
    from rich.table import Table

    from shadowbill.migrate import plan_batch
    from shadowbill.targets.stripe_api import StripeTarget

    target = StripeTarget(base_url=base_url) if find_customers or check_customers else None

    with _opened(ledger_url) as ledger:
        result = plan_batch(
            ledger,
            rollout_path=rollout_path,
            phase=phase,
            snapshot_dir=snapshot_dir,
            policy_path=policy_path,
            batch_size=batch_size,
            where=where,
            out_dir=out_dir,
            batch_id=batch_id,
            rank_by_risk=rank,
            customer_map=customer_map,
            find_customers=find_customers,
            metadata_key=customer_metadata_key,
            target=target,
        )
    console = _console()
    table = Table(title=f"batch {result.batch_id}: lowest risk first", title_justify="left")
    for column in ("risk", "subscription_id", "customer_id", "segment", "currency", "new_plan"):
        table.add_column(column)
    table.add_column("items", justify="right")
    table.add_column("change %", justify="right")
    for row in result.selection.head(20).itertuples():
        table.add_row(
            str(row.risk),
            str(row.subscription_id),
            str(row.customer_id),
            str(row.segment),
            str(row.currency),
            str(row.new_plan),
            str(row.items),
            f"{row.change_pct:.2f}",
        )
    if len(result.selection) > 20:
        table.caption = f"... and {len(result.selection) - 20} more in selection.csv"
    console.print(table)
    for line in result.describe():
        console.print(line)
    console.print(
        f"next: shadowbill migrate gate --batch {result.batch_id}", style="bold", markup=False
    )


# ------------------------------------------------------------------ gate ----


@migrate.command()
@click.option("--batch", "batch_id", required=True, help="Batch id.")
@_force_options
@_ledger_option
@user_errors
def gate(batch_id: str, force: bool, reason: str | None, ledger_url: str | None) -> None:
    """Reconcile the batch's subscriptions alone and record the gate verdict."""
    from shadowbill.migrate import gate_batch

    forced = _forced(force, reason)
    with _opened(ledger_url) as ledger:
        result = gate_batch(ledger, batch_id, force_reason=forced)
    console = _console()
    verdict = "PASS" if result.passed else ("FAIL, forced" if result.forced_reason else "FAIL")
    console.print(
        f"gate of batch {batch_id}: {verdict} ({result.findings} findings, "
        f"{result.unexplained} unexplained; {result.findings_path})",
        markup=False,
    )
    for failure in result.failures:
        console.print(f"  failed: {failure}", markup=False)
    if not result.open:
        sys.exit(1)


# ------------------------------------------------------------------ apply ----


@migrate.command()
@click.option("--batch", "batch_id", required=True, help="Batch id.")
@click.option(
    "--target",
    type=click.Choice(["stripe", "jsonl", "csv"]),
    default="stripe",
    show_default=True,
    help="stripe: create on Stripe; jsonl / csv: write the operations for review or import.",
)
@_target_options
@click.option(
    "--out",
    "out_dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for --target jsonl/csv (default: the batch folder).",
)
@click.option(
    "--customer-search",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Search the target for each customer before creating it (Stripe allows 20 "
    "searches/s). auto: only when the batch was applied before (a resumed apply); "
    "always: also on a first apply (e.g. after the ledger was lost).",
)
@_force_options
@_ledger_option
@user_errors
def apply(
    batch_id: str,
    target: str,
    base_url: str | None,
    rate_limit: float,
    concurrency: int,
    timeout: float,
    out_dir: Path | None,
    customer_search: str,
    force: bool,
    reason: str | None,
    ledger_url: str | None,
) -> None:
    """Create the batch on the target; safe to rerun after a crash (never duplicates)."""
    from shadowbill.migrate import apply_batch
    from shadowbill.snapshot.io import mask_password

    forced = _forced(force, reason)
    where = mask_password(base_url) if base_url else "Stripe"

    def started(total: int, recorded: int) -> None:
        click.echo(
            f"applying batch {batch_id}: {total} operations ({recorded} already recorded) "
            f"to {where} at up to {rate_limit:g} requests/s",
        )
        sys.stdout.flush()

    with _opened(ledger_url) as ledger:
        result = apply_batch(
            ledger,
            batch_id,
            target=target,
            base_url=base_url,
            rate_limit=rate_limit,
            concurrency=concurrency,
            timeout=timeout,
            force_reason=forced,
            out_dir=out_dir,
            on_start=started,
            customer_search={"auto": None, "always": True, "never": False}[customer_search],
        )
    if result.target != "stripe":
        for name, path in result.files.items():
            click.echo(f"{name}: {path}")
        click.echo(result.summary)
        return
    click.echo(
        f"batch {batch_id} is {result.status}: {len(result.applied)} subscriptions applied, "
        f"{len(result.failed)} failed; {result.summary}"
    )
    for sid, why in list(result.failed.items())[:10]:
        click.echo(f"  {sid}: {why}")
    if len(result.failed) > 10:
        click.echo(f"  ... and {len(result.failed) - 10} more (shadowbill migrate status)")
    if result.failed:
        sys.exit(1)


# ------------------------------------------------------------------ verify ----


@migrate.command()
@click.option("--batch", "batch_id", required=True, help="Batch id.")
@_target_options
@_ledger_option
@user_errors
def verify(
    batch_id: str,
    base_url: str | None,
    rate_limit: float,
    concurrency: int,
    timeout: float,
    ledger_url: str | None,
) -> None:
    """Compare the target's invoice previews with the new model (comparison C)."""
    from shadowbill.migrate import verify_batch

    with _opened(ledger_url) as ledger:
        result = verify_batch(
            ledger,
            batch_id,
            base_url=base_url,
            rate_limit=rate_limit,
            concurrency=concurrency,
            timeout=timeout,
        )
    click.echo(
        f"batch {batch_id} is {result.status}: {len(result.verified)} verified, "
        f"{len(result.unverified)} not ({result.findings} findings in {result.findings_path})"
    )
    for sid, why in list(result.unverified.items())[:10]:
        click.echo(f"  {sid}: {why}")
    if result.unverified:
        sys.exit(1)


# ------------------------------------------------------------------ cutover ----


@migrate.command()
@click.option("--batch", "batch_id", required=True, help="Batch id.")
@click.option(
    "--spec",
    "spec_path",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Extract spec whose cutover.stop_billing statement stops legacy billing.",
)
@click.option(
    "--stop-statement",
    default=None,
    help="SQL that stops legacy billing, with :subscription_ids (a list) or :subscription_id.",
)
@click.option(
    "--source",
    "source_url",
    envvar="SHADOWBILL_SOURCE_URL",
    default=None,
    help="Legacy database URL for the statement (default: $SHADOWBILL_SOURCE_URL).",
)
@_force_options
@_ledger_option
@user_errors
def cutover(
    batch_id: str,
    spec_path: Path | None,
    stop_statement: str | None,
    source_url: str | None,
    force: bool,
    reason: str | None,
    ledger_url: str | None,
) -> None:
    """Hand verified subscriptions over: cutover.csv, stop legacy billing, mark cut over."""
    from shadowbill.extract.spec import load_extract_spec
    from shadowbill.migrate import MigrationError, cutover_batch

    forced = _forced(force, reason)
    statement = stop_statement
    if spec_path is not None:
        if stop_statement is not None:
            raise MigrationError("give --spec or --stop-statement, not both")
        spec = load_extract_spec(spec_path)
        statement = spec.cutover.stop_billing if spec.cutover else None
        if statement is None:
            raise MigrationError(
                f"{spec_path} has no cutover.stop_billing statement; add one or pass "
                "--stop-statement"
            )
    with _opened(ledger_url) as ledger:
        result = cutover_batch(
            ledger,
            batch_id,
            stop_statement=statement,
            source_url=source_url,
            force_reason=forced,
        )
    rows = (
        "" if result.statement_rows is None else f"; legacy rows stopped: {result.statement_rows}"
    )
    click.echo(
        f"batch {batch_id} is {result.status}: {len(result.cut_over)} subscriptions cut over "
        f"({result.cutover_path}){rows}"
    )
    if result.forced:
        click.echo(f"  forced without verification: {', '.join(result.forced[:10])}")


# ------------------------------------------------------------------ rollback ----


@migrate.command()
@click.option("--batch", "batch_id", required=True, help="Batch id.")
@_target_options
@click.option(
    "--deactivate-catalog",
    is_flag=True,
    help="Also deactivate the products, prices, meters and tax rates only this batch used.",
)
@_force_options
@_ledger_option
@user_errors
def rollback(
    batch_id: str,
    base_url: str | None,
    rate_limit: float,
    concurrency: int,
    timeout: float,
    deactivate_catalog: bool,
    force: bool,
    reason: str | None,
    ledger_url: str | None,
) -> None:
    """Remove what the batch created on the target; its subscriptions return to the pool."""
    from shadowbill.migrate import rollback_batch

    forced = _forced(force, reason)
    with _opened(ledger_url) as ledger:
        result = rollback_batch(
            ledger,
            batch_id,
            base_url=base_url,
            rate_limit=rate_limit,
            concurrency=concurrency,
            timeout=timeout,
            deactivate_catalog=deactivate_catalog,
            force_reason=forced,
        )
    click.echo(
        f"batch {batch_id} rolled back: {len(result.removed)} objects removed, "
        f"{len(result.kept)} kept (shared or catalog), {len(result.rolled_back)} subscriptions "
        "returned to the pool"
    )


# ------------------------------------------------------------------ status / log ----


@migrate.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@_ledger_option
@user_errors
def status(as_json: bool, ledger_url: str | None) -> None:
    """Every batch with its subscriptions per state, and what is stuck and why."""
    from rich.table import Table

    from shadowbill.ledger import states

    with _opened(ledger_url) as ledger:
        result = ledger.status()
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2, sort_keys=True))
        return
    console = _console()
    table = Table(title="batches", title_justify="left")
    columns = ["batch_id", "phase", "status", "gate_verdict", "size", *states.SUBSCRIPTION_STATES]
    for column in columns:
        table.add_column(
            column, justify="right" if column not in ("batch_id", "status") else "left"
        )
    for row in result.batches.to_dict("records"):
        table.add_row(*(_cell(row[c]) for c in columns))
    console.print(table)
    if not result.orphans.empty:
        console.print(
            f"[bold red]{len(result.orphans)} object(s) left live on the target by rolled-back "
            "batches[/] (remove them on the target):"
        )
        for row in result.orphans.head(50).to_dict("records"):
            console.print(f"  {row['batch_id']}  {row['kind']}  {row['target_id']}", markup=False)
    if result.stuck.empty:
        console.print("nothing is stuck")
        return
    stuck = Table(title=f"stuck: {len(result.stuck)} subscriptions", title_justify="left")
    stuck_columns = ["batch_id", "subscription_id", "customer_id", "state", "reason", "error"]
    for column in stuck_columns:
        stuck.add_column(column, overflow="fold")
    for row in result.stuck.head(50).to_dict("records"):
        stuck.add_row(*(_cell(row[c]) for c in stuck_columns))
    console.print(stuck)


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "" if text in ("None", "nan", "NaT", "<NA>") else text


def _short(value: Any, width: int = 90) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    text = json.dumps(value, sort_keys=True, default=str) if not isinstance(value, str) else value
    return text if len(text) <= width else text[: width - 3] + "..."


def _fingerprints(value: Any) -> str:
    if not isinstance(value, dict):
        return ""
    return " ".join(f"{k}={str(v)[:8]}" for k, v in sorted(value.items()))


@migrate.command()
@click.option("--batch", "batch_id", default=None, help="Only this batch.")
@click.option("--subscription", "subscription_id", default=None, help="Only this subscription.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@_ledger_option
@user_errors
def log(
    batch_id: str | None,
    subscription_id: str | None,
    limit: int,
    as_json: bool,
    ledger_url: str | None,
) -> None:
    """The audit trail, newest first: who, when, what, from/to state, fingerprints."""
    from rich.table import Table

    with _opened(ledger_url) as ledger:
        if batch_id is not None:
            ledger.batch(batch_id)  # an unknown batch is an error, not an empty log
        frame = ledger.log(batch_id, limit, subscription_id=subscription_id)
    if as_json:
        for row in frame.to_dict("records"):
            click.echo(json.dumps(row, sort_keys=True, default=str))
        return
    console = _console()
    table = Table(title=f"audit log ({len(frame)} newest)", title_justify="left")
    for column in ("at", "actor", "action", "batch", "subscription", "state", "detail"):
        table.add_column(column, overflow="fold")
    table.add_column("fingerprints", overflow="fold")
    for row in frame.to_dict("records"):
        moved = f"{_cell(row.get('from_state'))} -> {_cell(row.get('to_state'))}".strip(" ->")
        at = (
            row["at"].strftime("%Y-%m-%d %H:%M:%S") if hasattr(row["at"], "strftime") else row["at"]
        )
        table.add_row(
            _cell(at),
            _cell(row.get("actor")),
            _cell(row.get("action")),
            _cell(row.get("batch_id")),
            _cell(row.get("subscription_id")),
            moved,
            _short(row.get("detail")),
            _fingerprints(row.get("fingerprints")),
        )
    console.print(table)


if __name__ == "__main__":
    migrate()


# after the cut-over: watch and handover (registered on this group)
from shadowbill.cli import migrate_after as _migrate_after  # noqa: E402, F401
