"""Which customer bucket every row of a snapshot belongs to, and a snapshot's share of a partition.

Rows without a customer column follow their parent: items, discounts and usage their
subscription's customer, invoice lines their invoice's customer. A row whose parent is
unknown is hashed by the parent id itself, so it still lands somewhere, and validation
quarantines it as an orphan there, exactly as it would in one piece. Tax rates are shared
by every partition.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shadowbill.snapshot.partitions import BUCKETS, bucket_of, buckets_of_partition
from shadowbill.snapshot.routing import PARENT_KEY, ROUTES, SHARED_TABLES
from shadowbill.snapshot.tables import Snapshot


def _lookup(keys: pd.Series, parent: pd.DataFrame) -> pd.Series:
    """The parent's customer id of each key, else the key itself (an orphan)."""
    key_col, value_col = parent.columns[0], parent.columns[1]
    table = pa.array(parent[key_col].astype("string").fillna(""), type=pa.string())
    at = pc.index_in(pa.array(keys.astype("string").fillna(""), type=pa.string()), table)
    idx = at.to_numpy(zero_copy_only=False)
    found = ~pd.isna(idx)
    values = parent[value_col].astype("string").to_numpy(dtype=object)
    out = keys.astype("string").to_numpy(dtype=object).copy()
    out[found] = values[idx[found].astype(np.int64)]
    return pd.Series(out, index=keys.index, dtype="string")


def parent_maps(subscriptions: pd.DataFrame, invoices: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The subscription -> customer and invoice -> customer maps rows are routed through."""
    frames = {"subscriptions": subscriptions, "invoices": invoices}
    return {name: frames[name][[key, "customer_id"]] for name, key in PARENT_KEY.items()}


def row_buckets(
    table: str, frame: pd.DataFrame, parents: Mapping[str, pd.DataFrame]
) -> npt.NDArray[np.int64]:
    """The customer bucket of every row of one canonical table (not for shared tables)."""
    column, via = ROUTES[table]
    keys = frame[column]
    owner = keys if via is None else _lookup(keys, parents[via])
    return bucket_of(owner)


def snapshot_partition(snapshot: Snapshot, partition: int, partitions: int) -> Snapshot:
    """The rows of the customers in one partition (shared tables whole; quarantine whole)."""
    if partitions == 1:
        return snapshot
    wanted = np.zeros(BUCKETS, dtype=bool)
    wanted[buckets_of_partition(partition, partitions)] = True
    parents = parent_maps(snapshot["subscriptions"], snapshot["invoices"])
    tables = {}
    for name, frame in snapshot.tables.items():
        if name in SHARED_TABLES:
            tables[name] = frame
        else:
            keep = wanted[row_buckets(name, frame, parents)]
            tables[name] = frame[keep].reset_index(drop=True)
    return Snapshot(tables, snapshot.quarantine, snapshot.manifest)


def subscriptions_only(snapshot: Snapshot, subscription_ids: pd.Series) -> Snapshot:
    """The rows of these subscriptions only: their items, discounts, usage, invoices and the
    invoices' lines (customers and tax rates whole)."""
    ids = pc.unique(pa.array(subscription_ids.astype("string"), type=pa.string()))
    tables = {}
    for name, frame in snapshot.tables.items():
        if "subscription_id" in frame.columns:
            keep = pc.is_in(
                pa.array(frame["subscription_id"].astype("string"), type=pa.string()), ids
            )
            tables[name] = frame[keep.to_numpy(zero_copy_only=False)]
        elif name != "invoice_lines":
            tables[name] = frame
    invoice_ids = pa.array(tables["invoices"]["invoice_id"].astype("string"), type=pa.string())
    lines = snapshot["invoice_lines"]
    keep = pc.is_in(pa.array(lines["invoice_id"].astype("string"), type=pa.string()), invoice_ids)
    tables["invoice_lines"] = lines[keep.to_numpy(zero_copy_only=False)]
    return Snapshot(tables, snapshot.quarantine, snapshot.manifest)
