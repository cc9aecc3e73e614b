"""``shadowbill migrate watch`` and ``handover``: the commands after a batch's cut-over."""

from __future__ import annotations

from pathlib import Path

import click

from shadowbill.cli.errors import user_errors
from shadowbill.cli.migrate import _ledger_option, _opened, migrate
from shadowbill.cli.output_option import OUTPUT, shown
from shadowbill.output_urls import output_folder

# ------------------------------------------------------------------ watch ----


@migrate.command()
@click.option("--batch", "batch_id", required=True, help="A cut-over batch.")
@click.option(
    "--actual",
    "actual_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A snapshot read back from Stripe (shadowbill extract --source stripe:).",
)
@click.option(
    "--legacy",
    "legacy_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="The legacy estate extracted again after the cut-over (default: the planned snapshot).",
)
@_ledger_option
@user_errors
def watch(batch_id: str, actual_dir: Path, legacy_dir: Path | None, ledger_url: str | None) -> None:
    """Comparison D after the cut-over: Stripe's issued invoices against the model, the hand-over proven.

    Exit 0 when every issued invoice matches the model and the hand-over is clean, 1 otherwise.
    """
    from shadowbill.migrate.watch import watch_batch

    with _opened(ledger_url) as ledger:
        result = watch_batch(ledger, batch_id, actual_dir=actual_dir, legacy_dir=legacy_dir)
        verified_before = bool((ledger.log(batch_id)["action"] == "verify").any())
    head = "verified before, " if verified_before else ""
    if result.ok:
        click.echo(
            f"batch {batch_id}: actual matches model ({head}matched after {result.cycles} "
            f"cycle(s); watch run {result.run}; {result.out_dir})"
        )
        return
    click.echo(
        f"batch {batch_id}: actual differs from model: {result.findings} finding(s), "
        f"{result.handover_findings} at the hand-over; {result.matched} of {result.cycles} "
        f"issued invoice(s) match ({result.out_dir / 'findings.csv'})"
    )
    raise SystemExit(1)


@migrate.command()
@click.option("--batch", "batch_id", required=True, help="A cut-over batch.")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=OUTPUT,
    help="Folder for handover.csv and handover.parquet, or an fsspec URL (s3://...).",
)
@click.option(
    "--actual",
    "actual_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="A snapshot read back from Stripe, for the subscription item ids.",
)
@_ledger_option
@user_errors
def handover(
    batch_id: str, out_dir: Path | str, actual_dir: Path | None, ledger_url: str | None
) -> None:
    """Write the legacy-to-Stripe id mapping of a cut-over batch for a CRM and an accounting system."""
    from shadowbill.migrate.handover import handover_frame, write_handover

    with _opened(ledger_url) as ledger:
        frame = handover_frame(ledger, batch_id, stripe_snapshot=actual_dir)
    with output_folder(out_dir) as local:
        files = write_handover(frame, local)
    click.echo(
        f"batch {batch_id}: {files.rows} row(s) in {shown(files.csv_path, local, out_dir)} and "
        f"{shown(files.parquet_path, local, out_dir)}"
    )
