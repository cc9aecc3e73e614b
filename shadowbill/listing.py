"""How a message names a long list: the first few items, and how many more there are."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def first_few(items: Sequence[object] | pd.Series, limit: int = 5) -> str:
    """ "a, b, c and 12 more": enough to act on, short enough for one line of an error."""
    head = items.head(limit).tolist() if isinstance(items, pd.Series) else items[:limit]
    shown = ", ".join(str(item) for item in head)
    more = len(items) - limit
    return f"{shown} and {more:,} more" if more > 0 else shown
