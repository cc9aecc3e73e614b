"""The customer partitioning is stable, total and independent of the partition count."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowbill.errors import InputError
from shadowbill.snapshot.partitions import (
    BUCKETS,
    bucket_of,
    bucket_of_id,
    buckets_of_partition,
    hash_check,
    partition_of,
)


def test_hash_is_pinned() -> None:
    # Snapshots written by one release are read partition by partition by the next.
    assert hash_check() == "623acd38de9e988d"


@given(st.lists(st.text(max_size=12), max_size=50), st.integers(1, BUCKETS))
def test_every_customer_in_exactly_one_partition(ids: list[str], partitions: int) -> None:
    buckets = bucket_of(pd.Series(ids, dtype="string"))
    assert ((buckets >= 0) & (buckets < BUCKETS)).all()
    parts = partition_of(buckets, partitions)
    owned = [set(buckets_of_partition(k, partitions)) for k in range(partitions)]
    for b, p in zip(buckets, parts, strict=True):
        assert [k for k, s in enumerate(owned) if b in s] == [p]


def test_one_id_matches_vector() -> None:
    ids = pd.Series(["cus_1", "cus_2", "über"], dtype="string")
    assert list(bucket_of(ids)) == [bucket_of_id(i) for i in ids]


def test_spread_is_even() -> None:
    counts = np.bincount(bucket_of(pd.Series([f"c{i}" for i in range(50_000)])), minlength=BUCKETS)
    assert counts.min() > 0.7 * counts.mean()


@pytest.mark.parametrize("bad", [0, -1, BUCKETS + 1])
def test_bad_partition_count(bad: int) -> None:
    with pytest.raises(InputError, match="partitions must be between"):
        partition_of(np.array([1]), bad)
