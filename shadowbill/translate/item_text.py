"""Readable item lists for plans and reports ("advanced_month x12 + fin_resolution (metered)").

Strings are joined per group in one Arrow call: the values, ordered by group, become a
list array whose lists are joined.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def join_per_group(keys: pd.Series, values: pd.Series, sep: str = " + ") -> pd.Series:
    """``values`` joined with ``sep`` per distinct key, in row order; indexed by key."""
    if len(keys) == 0:
        return pd.Series(dtype="string")
    codes, uniques = pd.factorize(keys.to_numpy(), sort=True)
    order = np.argsort(codes, kind="stable")
    offsets = np.zeros(len(uniques) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(np.bincount(codes, minlength=len(uniques)))
    text = pa.array(values.astype("string").fillna("").array, type=pa.large_string())
    lists = pa.LargeListArray.from_arrays(pa.array(offsets), text.take(pa.array(order)))
    joined = pc.binary_join(lists, pa.scalar(sep, type=pa.large_string()))
    out = joined.to_pandas(types_mapper=pd.ArrowDtype).astype("string")
    out.index = pd.Index(uniques)
    return out


def item_labels(price_id: pd.Series, quantity: pd.Series, metered: Mapping[str, bool]) -> pd.Series:
    """``price xQ`` for a licensed item, ``price (metered)`` for a metered one."""
    price = price_id.astype("string")
    is_metered = price.isin([p for p, m in metered.items() if m]).fillna(False).to_numpy(bool)
    qty = quantity.astype("Int64").astype("string").fillna("?")
    labels = np.where(is_metered, price + " (metered)", price + " x" + qty)
    return pd.Series(labels, index=price_id.index, dtype="string")
