"""Membership tests on id columns (subscription ids, customer ids), fast at 100,000s of rows.

pandas' ``isin`` on Arrow-backed strings builds a Python list of the values it looks for;
Arrow's own ``is_in`` hashes them in C.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def _arrow(values: pd.Series | pd.Index | Iterable[object]) -> pa.Array:
    if isinstance(values, pd.Series | pd.Index):
        return pa.array(values.astype("string").array, type=pa.large_string())
    return pa.array([None if v is None else str(v) for v in values], type=pa.large_string())


def isin(
    values: pd.Series | pd.Index, allowed: pd.Series | pd.Index | Iterable[object]
) -> npt.NDArray[np.bool_]:
    """Per value: it is one of ``allowed`` (missing values never are)."""
    if len(values) == 0:
        return np.zeros(0, dtype=bool)
    found = pc.is_in(_arrow(values), value_set=_arrow(allowed), skip_nulls=True)
    return np.asarray(found.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def positions(values: pd.Series | pd.Index, keys: pd.Series | pd.Index) -> npt.NDArray[np.int64]:
    """Per value: its position in ``keys`` (distinct), or -1 when absent."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    found = pc.index_in(_arrow(values), value_set=_arrow(keys), skip_nulls=True)
    return np.asarray(found.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
