"""A customer's waterfall steps read as whole sentences (issue 16, point 5: the price
change step read "new prices: " with nothing after it)."""

from __future__ import annotations

import pandas as pd

from shadowbill.reconcile.findings import WATERFALL_CAUSES
from shadowbill.reconcile.views import waterfall_view


def test_every_step_of_a_customer_waterfall_is_a_complete_sentence() -> None:
    attributed = pd.DataFrame(
        {
            "customer_id": ["c1"],
            "currency": ["usd"],
            "legacy_total": [10_000],
            **{cause: [100] for cause in WATERFALL_CAUSES},
            "new_total": [10_000 + 100 * len(WATERFALL_CAUSES)],
        }
    )
    steps = waterfall_view(attributed)
    assert len(steps) == len(WATERFALL_CAUSES) + 2
    for text in steps["explanation"]:
        assert text and not text.rstrip().endswith((":", " rule", " by")), text
    price = steps.loc[steps["cause"] == "price_change", "explanation"].iloc[0]
    assert price == "the new catalog's prices for the same items"
