"""Stable partitioning by customer: every row of one customer lands in the same partition.

A customer's bucket is a fixed function of its id (``BUCKETS`` buckets, hashed with a
pinned key), and partition ``k`` of ``P`` holds the buckets ``b`` with ``b % P == k``.
Outputs are ordered by bucket, never by partition, so they are identical whatever ``P``
and whichever executor ran them. The hash must never change: snapshots written by one
release are read partition by partition by the next.
"""

from __future__ import annotations

import hashlib
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from shadowbill.errors import InputError

BUCKETS: Final = 256
MAX_PARTITIONS: Final = BUCKETS
_KEY: Final = "shadowbill-cust1"  # 16 bytes, the SipHash key of pandas' hashing


def bucket_of(customer_id: pd.Series) -> npt.NDArray[np.int64]:
    """The stable bucket (0..BUCKETS-1) of each customer id; missing ids go to bucket 0."""
    values = customer_id.astype("string").fillna("")
    hashed = pd.util.hash_array(
        values.to_numpy(dtype=object), encoding="utf8", hash_key=_KEY, categorize=True
    )
    return (hashed % np.uint64(BUCKETS)).astype(np.int64)


def bucket_of_id(customer_id: str) -> int:
    """The bucket of one customer id (same value as :func:`bucket_of`)."""
    return int(bucket_of(pd.Series([customer_id], dtype="string"))[0])


def partition_of(bucket: npt.NDArray[np.int64], partitions: int) -> npt.NDArray[np.int64]:
    """The partition (0..partitions-1) that holds each bucket."""
    check_partitions(partitions)
    return bucket % partitions


def buckets_of_partition(partition: int, partitions: int) -> list[int]:
    """The buckets partition ``partition`` of ``partitions`` holds, in order."""
    check_partitions(partitions)
    return list(range(partition, BUCKETS, partitions))


def check_partitions(partitions: int) -> None:
    """Refuse a partition count outside 1..MAX_PARTITIONS with a clear message."""
    if not 1 <= partitions <= MAX_PARTITIONS:
        raise InputError(
            f"partitions must be between 1 and {MAX_PARTITIONS} (got {partitions}):"
            f" customers are hashed into {BUCKETS} stable buckets"
        )


def hash_check() -> str:
    """A digest of the buckets of fixed ids, to detect an accidental change of the hash."""
    ids = pd.Series([f"cus_{i:06d}" for i in range(1000)], dtype="string")
    return hashlib.sha256(bucket_of(ids).tobytes()).hexdigest()[:16]
