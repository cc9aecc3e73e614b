"""Hand-over files for the systems around billing: legacy ids mapped to the target's ids.

Per batch, one row per cut-over subscription item: the legacy customer and subscription,
their Stripe ids, the subscription item and price ids (when a snapshot read back from Stripe
is given), the cut-over instant and the legacy paid-through instant, as CSV (for a CRM's
upsert by external id, e.g. Salesforce Data Loader, or an accounting import, e.g. NetSuite's
CSV import) and as Parquet (for a data lake). Documented in docs/migration.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shadowbill.csv_cells import neutralise_frame
from shadowbill.errors import MigrationError
from shadowbill.ledger import Ledger
from shadowbill.ledger import states as st
from shadowbill.snapshot.io import read_snapshot

HANDOVER_COLUMNS: tuple[str, ...] = (
    "batch_id",
    "legacy_customer_id",
    "stripe_customer_id",
    "legacy_subscription_id",
    "stripe_subscription_id",
    "stripe_subscription_item_id",
    "price_id",
    "stripe_price_id",
    "cutover_at",
    "legacy_paid_through",
)


@dataclass(frozen=True)
class HandoverFiles:
    """Where the hand-over files were written and how many rows they hold."""

    csv_path: Path
    parquet_path: Path
    rows: int


def handover_frame(
    ledger: Ledger, batch_id: str, *, stripe_snapshot: Path | None = None
) -> pd.DataFrame:
    """The hand-over rows of a cut-over batch (``HANDOVER_COLUMNS``), sorted by legacy ids."""
    batch = ledger.batch(batch_id)
    if batch.status != st.CUT_OVER:
        raise MigrationError(
            f"batch {batch_id} is {batch.status}: hand-over files describe a cut-over batch"
        )
    subs = ledger.subscriptions(batch_id, state=st.CUT_OVER)
    frame = pd.DataFrame(
        {
            "batch_id": batch_id,
            "legacy_customer_id": subs["customer_id"].astype("string"),
            "stripe_customer_id": subs["target_customer_id"].astype("string"),
            "legacy_subscription_id": subs["subscription_id"].astype("string"),
            "stripe_subscription_id": subs["target_subscription_id"].astype("string"),
            "cutover_at": pd.to_datetime(subs["first_target_period_start"], utc=True),
            "legacy_paid_through": pd.to_datetime(subs["paid_through"], utc=True),
        }
    )
    objects = ledger.objects(batch_id)
    prices = objects[objects["kind"] == "price"]
    stripe_price = {
        str(k).split(":", 1)[1]: str(t)
        for k, t in zip(prices["op_key"], prices["target_id"], strict=True)
    }
    if stripe_snapshot is not None:
        items = read_snapshot(Path(stripe_snapshot))["subscription_items"]
        items = items[items["valid_to"].isna()][["subscription_id", "item_id", "price_id"]]
        items = items.rename(
            columns={
                "subscription_id": "legacy_subscription_id",
                "item_id": "stripe_subscription_item_id",
            }
        ).astype("string")
        frame = frame.merge(items, on="legacy_subscription_id", how="left")
    else:
        frame["stripe_subscription_item_id"] = pd.NA
        frame["price_id"] = pd.NA
    frame["stripe_price_id"] = frame["price_id"].map(stripe_price).astype("string")
    frame = frame[list(HANDOVER_COLUMNS)].astype(
        {c: "string" for c in HANDOVER_COLUMNS if c not in ("cutover_at", "legacy_paid_through")}
    )
    return frame.sort_values(
        ["legacy_customer_id", "legacy_subscription_id", "price_id"], kind="stable"
    ).reset_index(drop=True)


def write_handover(frame: pd.DataFrame, out_dir: Path) -> HandoverFiles:
    """Write ``handover.csv`` (spreadsheet-safe, ISO-8601 UTC instants) and ``handover.parquet``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parquet_path, csv_path = out_dir / "handover.parquet", out_dir / "handover.csv"
    tmp = parquet_path.with_name(parquet_path.name + ".tmp")
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp)
    tmp.replace(parquet_path)
    text = frame.copy()
    for col in ("cutover_at", "legacy_paid_through"):
        text[col] = text[col].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    tmp = csv_path.with_name(csv_path.name + ".tmp")
    neutralise_frame(text).to_csv(tmp, index=False)
    tmp.replace(csv_path)
    return HandoverFiles(csv_path, parquet_path, len(frame))
