"""Price protection: generated coupons that cap a customer's increase for some months."""

from __future__ import annotations

import pandas as pd

from shadowbill.money import decimal_to_scaled, mul_div_round
from shadowbill.snapshot.tables import DISCOUNTS, Snapshot, pandas_dtype

# Discount ids of generated price-protection coupons start with this; comparison B
# attributes their effect to the `price_protection` cause.
PROTECTION_PREFIX = "pp_"

_SCALE = 6


def protection_discounts(
    protections: pd.DataFrame, legacy_invoices: pd.DataFrame, new_invoices: pd.DataFrame
) -> pd.DataFrame:
    """One amount-off discount per protected invoice: new pre-tax capped at legacy x (1 + p%)."""
    if protections.empty:
        return pd.DataFrame(
            {c.name: pd.Series(dtype=pandas_dtype(c.type)) for c in DISCOUNTS.columns}
        )
    keys = ["subscription_id", "period_start"]
    legacy = legacy_invoices.assign(pre=legacy_invoices["subtotal"] - legacy_invoices["discount"])
    new = new_invoices.assign(pre=new_invoices["subtotal"] - new_invoices["discount"])
    both = new[[*keys, "period_end", "pre"]].merge(
        legacy[[*keys, "pre"]], on=keys, how="inner", suffixes=("_new", "_legacy")
    )
    both = both.merge(
        protections[["subscription_id", "max_increase_percent", "starts_at", "ends_at"]],
        on="subscription_id",
        how="inner",
    )
    inside = (both["period_start"] >= both["starts_at"]) & (both["period_start"] < both["ends_at"])
    both = both[inside.fillna(False)]
    pct = decimal_to_scaled(both["max_increase_percent"].astype(str).tolist(), _SCALE)
    cap = mul_div_round(
        both["pre_legacy"].astype("int64").to_numpy(),
        100 * 10**_SCALE + pct,
        100 * 10**_SCALE,
        "half_up",
    )
    excess = both["pre_new"].astype("int64").to_numpy() - cap
    both = both.assign(excess=excess)[excess > 0]
    stamp = both["period_start"].dt.strftime("%Y%m%dT%H%M%S")
    out = pd.DataFrame(
        {
            "discount_id": PROTECTION_PREFIX + both["subscription_id"].astype(str) + "_" + stamp,
            "subscription_id": both["subscription_id"],
            "item_id": pd.NA,
            "coupon_id": "PRICE_PROTECTION_" + both["max_increase_percent"].astype(str) + "PCT",
            "percent_off": pd.NA,
            "amount_off": both["excess"],
            "starts_at": both["period_start"],
            "ends_at": both["period_end"],
        }
    )
    return out.astype({c.name: pandas_dtype(c.type) for c in DISCOUNTS.columns}).reset_index(
        drop=True
    )


def with_discounts(snapshot: Snapshot, extra: pd.DataFrame) -> Snapshot:
    """The snapshot with more discount rows."""
    if extra.empty:
        return snapshot
    tables = dict(snapshot.tables)
    tables["discounts"] = pd.concat([snapshot["discounts"], extra], ignore_index=True)
    return Snapshot(tables, snapshot.quarantine, snapshot.manifest)
