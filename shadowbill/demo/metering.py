"""Metered usage (SMS, WhatsApp, AI resolutions), aggregated per billing period.

One reading per (subscription, meter, invoiced period) for every metered item; some
readings are zero (no line is billed for them).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shadowbill.demo.item_history import AIRES, SMS, WA
from shadowbill.demo.population import Population

# Mean units per seat and month, per metered item code.
_PER_SEAT = {SMS: (5, 60), WA: (3, 40), AIRES: (1, 15)}


def make_usage(pop: Population, items: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Usage rows: sub, code, price, period start/end, quantity (whole units)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 6]))
    metered = items[items["code"].isin(list(_PER_SEAT))][["sub", "code", "price", "valid_from"]]
    seats = pop.subscriptions["seats"].to_numpy()
    low = np.array([_PER_SEAT.get(c, (0, 1))[0] for c in range(max(_PER_SEAT) + 1)])
    high = np.array([_PER_SEAT.get(c, (0, 1))[1] for c in range(max(_PER_SEAT) + 1)])
    code = metered["code"].to_numpy()
    rate = seats[metered["sub"].to_numpy()] * rng.integers(low[code], high[code])
    metered = metered.assign(rate=rate)
    rows = pop.periods[["sub", "ps", "pe"]].merge(metered, on="sub", how="inner", sort=False)
    rows = rows.sort_values(["sub", "ps", "code"], kind="stable").reset_index(drop=True)
    qty = rng.poisson(rows["rate"].to_numpy())  # a count of messages, not money
    qty = np.where(rng.random(len(rows)) < 0.12, 0, qty)
    return pd.DataFrame(
        {
            "sub": rows["sub"].to_numpy(),
            "code": rows["code"].to_numpy(),
            "price": rows["price"].to_numpy(),
            "ps": rows["ps"].to_numpy(),
            "pe": rows["pe"].to_numpy(),
            "qty": qty.astype(np.int64),
        }
    )
