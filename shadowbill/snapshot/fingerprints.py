"""A sha256 per customer over that customer's rows of every snapshot table.

``migrate plan`` records each batch customer's fingerprint; ``migrate gate`` and
``migrate apply`` re-read the snapshot and stop when a batch customer's rows changed since
the plan (an item added, an invoice corrected, a discount ended), naming the customers.
Other customers may change freely: a new extract of the whole estate does not invalidate a
batch whose own customers are unchanged.

How (vectorized, deterministic across processes and machines):

- every row of every customer table is routed to its customer, as partitions route them
  (``shadowbill.snapshot.buckets``): customers, subscriptions and invoices by their
  ``customer_id``; subscription items, discounts and usage through their subscription;
  invoice lines through their invoice. A row whose parent is unknown is owned by the
  parent id itself (an orphan never belongs to a real customer);
- each row is hashed twice with ``pd.util.hash_pandas_object`` (two fixed 16-byte keys,
  columns in name order, index ignored), giving 128 bits per row;
- per customer and table the row hashes are combined without regard to row order: the
  row count, the wrapping sum and the xor of each 64-bit hash (one ``groupby``);
- the customer's fingerprint is the sha256 of those numbers for every table, in table
  order; a customer with no row at all still gets a fingerprint (of nothing).

The shared table (``tax_rates``) has no customer; :func:`shared_fingerprint` covers it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Final

import numpy as np
import pandas as pd

from shadowbill.snapshot.routing import PARENT_KEY, ROUTES, SHARED_TABLES
from shadowbill.snapshot.tables import TABLES, Snapshot

HASH_KEYS: Final = ("shadowbill-fp-k1", "shadowbill-fp-k2")  # 16 bytes each (siphash keys)
_STATS: Final = ("n", "s1", "x1", "s2", "x2")  # row count; sum and xor of each row hash


def _text(values: pd.Series) -> pd.Series:
    return values.astype("string").fillna("")


def row_owners(snapshot: Snapshot, table: str) -> pd.Series:
    """The customer id that owns each row of one customer table (orphans: the parent id)."""
    column, via = ROUTES[table]
    keys = _text(snapshot[table][column]).reset_index(drop=True)
    if via is None:
        return keys
    parent = snapshot[via]
    mapping = pd.Series(
        _text(parent["customer_id"]).to_numpy(),
        index=pd.Index(_text(parent[PARENT_KEY[via]]).to_numpy()),
    )
    mapping = mapping[~mapping.index.duplicated(keep="first")]
    owner = keys.map(mapping)
    return owner.fillna(keys).astype("string")


def _row_hashes(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Two independent 64-bit hashes of every row (columns in name order)."""
    ordered = frame[sorted(frame.columns)].reset_index(drop=True)
    first, second = (
        pd.util.hash_pandas_object(ordered, index=False, hash_key=key).to_numpy(dtype=np.uint64)
        for key in HASH_KEYS
    )
    return first, second


def _table_stats(snapshot: Snapshot, table: str, wanted: pd.Index) -> pd.DataFrame:
    """Per owning customer (of ``wanted``): row count, wrapping sum and xor of both row hashes."""
    owners = row_owners(snapshot, table)
    keep = owners.isin(wanted).to_numpy(dtype=bool)
    frame = snapshot[table].reset_index(drop=True)[keep]
    columns = [f"{table}:{s}" for s in _STATS]
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype="uint64") for c in columns})
    h1, h2 = _row_hashes(frame)
    owned = owners[keep].to_numpy(dtype=object)
    order = np.argsort(owned, kind="stable")
    owned, h1, h2 = owned[order], h1[order], h2[order]
    starts = np.flatnonzero(np.r_[True, owned[1:] != owned[:-1]])
    counts = np.diff(np.r_[starts, len(owned)]).astype(np.uint64)
    with np.errstate(over="ignore"):
        out = pd.DataFrame(
            {
                columns[0]: counts,
                columns[1]: np.add.reduceat(h1, starts, dtype=np.uint64),
                columns[2]: np.bitwise_xor.reduceat(h1, starts),
                columns[3]: np.add.reduceat(h2, starts, dtype=np.uint64),
                columns[4]: np.bitwise_xor.reduceat(h2, starts),
            },
            index=pd.Index(owned[starts]),
        )
    return out.astype("uint64")


def customer_fingerprints(
    snapshot: Snapshot, customer_ids: Iterable[str] | None = None
) -> pd.Series:
    """sha256 (hex) of each customer's rows of every customer table, indexed by customer id.

    ``customer_ids`` limits the result to those customers (one that has no row at all gets
    the fingerprint of an empty customer); default: every customer of the customers table.
    """
    if customer_ids is None:
        wanted = pd.Index(sorted(set(_text(snapshot["customers"]["customer_id"]))))
    else:
        wanted = pd.Index(sorted({str(c) for c in customer_ids}))
    tables = [t for t in TABLES if t not in SHARED_TABLES]
    stats = pd.concat(
        [_table_stats(snapshot, t, wanted).reindex(wanted, fill_value=0) for t in tables], axis=1
    ).astype("uint64")
    raw = np.ascontiguousarray(stats.to_numpy(dtype="<u8"))
    width = raw.shape[1] * 8
    blob = raw.tobytes()
    digests = [
        hashlib.sha256(cid.encode() + b"\x1f" + blob[i * width : (i + 1) * width]).hexdigest()
        for i, cid in enumerate(wanted)
    ]
    return pd.Series(digests, index=wanted, dtype="string", name="customer_fingerprint")


def shared_fingerprint(snapshot: Snapshot) -> str:
    """sha256 of the shared tables (tax rates), which every customer's invoices use."""
    digest = hashlib.sha256()
    for table in SHARED_TABLES:
        frame = snapshot[table]
        digest.update(table.encode() + b"\x1f" + str(len(frame)).encode())
        if len(frame):
            h1, h2 = _row_hashes(frame)
            digest.update(np.sort(h1).astype("<u8").tobytes())
            digest.update(np.sort(h2).astype("<u8").tobytes())
    return digest.hexdigest()


def changed_customers(recorded: Mapping[str, str | None], current: pd.Series) -> list[str]:
    """The customers whose recorded fingerprint differs from the current one (sorted)."""
    changed = [
        cid
        for cid, fp in recorded.items()
        if fp is not None and str(current.get(cid, "")) != str(fp)
    ]
    return sorted(changed)
