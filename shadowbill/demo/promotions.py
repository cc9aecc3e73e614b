"""Discounts granted to subscriptions: percent or amount, on the whole subscription or on seats.

A subscription has at most one subscription-level and one line-level (seats item)
discount, so no invoice depends on the order in which two discounts of a level apply.
A discount starts at the anchor (a sign-up offer) or at a random moment (applying from
the next period start), and lasts forever or N months (``ends_at = starts_at + N months``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shadowbill.demo.billing_calendar import add_months
from shadowbill.demo.item_history import SEAT
from shadowbill.demo.population import Population, Window
from shadowbill.demo.price_book import CURRENCIES, PCT_SCALE, scaled_decimal

PERCENTS = ("10", "12.5", "15", "20", "25")
# amount_off choices per currency (minor units); all below the cheapest plan's remainder
# after a 25% seat discount, so the min(a, base) cap never binds in the demo.
AMOUNTS = {
    "USD": (1000, 2000, 2500),
    "GBP": (800, 1500, 2000),
    "EUR": (1000, 1800, 2500),
    "JPY": (1500, 3000, 4000),
    "KWD": (3000, 6000, 7500),
}
DURATIONS = (0, 3, 6, 12)  # months; 0 = forever
_PREFIX = np.array(["FOREVER", "INTRO3M", "INTRO6M", "ANNUAL12M"])


def make_discounts(pop: Population, window: Window, seed: int) -> pd.DataFrame:
    """Discount rows: sub, item code (-1: whole subscription), coupon, percent or amount, dates."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 5]))
    subs = pop.subscriptions
    n = len(subs)
    sales = pop.customers["sales"].to_numpy()
    parts = []
    has_sub = rng.random(n) < np.where(sales, 0.20, 0.10)
    # a seat discount is likelier on top of a subscription discount (negotiated deals)
    has_line = rng.random(n) < np.where(has_sub, 0.35, np.where(sales, 0.15, 0.04))
    for level, item_code, has in ((0, -1, has_sub), (1, SEAT, has_line)):
        sub = np.flatnonzero(has)
        m = len(sub)
        percent = rng.random(m) < 0.75
        pct_i = rng.integers(0, len(PERCENTS), size=m)
        amt_i = rng.integers(0, 3, size=m)
        amounts = np.array([AMOUNTS[c] for c in CURRENCIES], dtype=np.int64)
        cur = subs["cur"].to_numpy()[sub]
        dur_i = rng.integers(0, len(DURATIONS), size=m)
        months = np.array(DURATIONS)[dur_i]
        at_anchor = rng.random(m) < 0.55
        started = subs["started_at"].to_numpy()[sub]
        lo = np.maximum(started, window.start)
        later = lo + rng.integers(0, np.maximum(window.end - lo, 1))
        starts = np.where(at_anchor, subs["anchor"].to_numpy()[sub], later)
        ends = np.where(months > 0, add_months(starts, months), -1)
        pct_text = np.array(PERCENTS)[pct_i]
        pct_scaled = np.array([scaled_decimal(p, PCT_SCALE, "percent_off") for p in PERCENTS])[
            pct_i
        ]
        value = pd.Series(
            np.where(percent, pct_text, amounts[cur, amt_i].astype(str)), dtype="string"
        )
        kind = pd.Series(np.where(percent, "PCT", "AMT"), dtype="string")
        coupon = (
            pd.Series(_PREFIX[dur_i], dtype="string") + "_" + kind + value.str.replace(".", "_")
        )
        parts.append(
            pd.DataFrame(
                {
                    "sub": sub.astype(np.int64),
                    "level": np.full(m, level, dtype=np.int64),
                    "item_code": np.full(m, item_code, dtype=np.int64),
                    "coupon_id": coupon,
                    "pct_text": pd.Series(np.where(percent, pct_text, ""), dtype="string"),
                    "pct_scaled": np.where(percent, pct_scaled, -1).astype(np.int64),
                    "amount_off": np.where(percent, -1, amounts[cur, amt_i]).astype(np.int64),
                    "starts_at": starts.astype(np.int64),
                    "ends_at": ends.astype(np.int64),
                }
            )
        )
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["sub", "level"], kind="stable").reset_index(drop=True)
