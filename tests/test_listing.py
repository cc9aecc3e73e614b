"""Messages name the first few items of a long list and count the rest."""

from __future__ import annotations

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from shadowbill.listing import first_few


def test_a_short_list_is_named_whole() -> None:
    assert first_few(["a", "b"]) == "a, b"
    assert first_few([]) == ""


def test_a_long_list_counts_what_it_leaves_out() -> None:
    ids = pd.Series([f"ACC-{n}" for n in range(1, 2_006)], dtype="string")
    assert first_few(ids, 3) == "ACC-1, ACC-2, ACC-3 and 2,002 more"


@given(st.lists(st.integers(), max_size=30), st.integers(min_value=1, max_value=10))
def test_every_item_is_named_or_counted(items: list[int], limit: int) -> None:
    text = first_few(items, limit)
    named = text.split(" and ")[0]
    shown = len(named.split(", ")) if named else 0
    counted = int(text.split(" and ")[1].split()[0]) if " and " in text else 0
    assert shown == min(len(items), limit) and shown + counted == len(items)
