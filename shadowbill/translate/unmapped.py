"""Why a cohort subscription cannot be mapped: one reason per subscription, the first found.

Reasons are checked in a fixed order (``REASON_ORDER``) and each comes with a sentence
naming the items, prices, dates and rules involved, so a migration engineer can fix the
rollout file or the catalog.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shadowbill.pricing.catalog import Catalog
from shadowbill.translate.phase_mapping import PhaseMapping
from shadowbill.translate.plan import UNMAPPED_COLUMNS, UNMAPPED_REASONS, pin
from shadowbill.translate.rule_match import NO_MATCH

REASON_ORDER = {reason: i for i, reason in enumerate(UNMAPPED_REASONS)}


def _reasons(subs: pd.Series | pd.Index, reason: str, detail: pd.Series | str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "subscription_id": pd.array(np.asarray(subs, dtype=object), dtype="string"),
            "reason": reason,
            "detail": detail.astype("string").to_numpy()
            if isinstance(detail, pd.Series)
            else detail,
        }
    )


def date_text(stamps: pd.Series) -> pd.Series:
    """``2025-03-01`` per timestamp, ``open`` for none."""
    return stamps.dt.strftime("%Y-%m-%d").astype("string").fillna("open")


def _segment_reasons(pm: PhaseMapping, labels: pd.Series) -> list[pd.DataFrame]:
    """No current items, segments no rule matches, legacy items nothing maps."""
    frame = pm.segments.frame.assign(rule=pm.seg_rule)
    rule_ids = ", ".join(r.id for r in pm.phase.rules)
    tail = f" match no rule of phase {pm.phase.phase} ({rule_ids})"
    out = []
    no_items = pm.cohort["subscription_id"][pm.state_start.isna().to_numpy()]
    if len(no_items):
        out.append(
            _reasons(
                no_items,
                "no_current_items",
                "the subscription has no open item row (every item row has a valid_to)",
            )
        )
    unmatched = (frame["rule"] == NO_MATCH).to_numpy()
    current = frame["current"].to_numpy(dtype=bool)
    seg_labels = labels.reindex(frame["seg"]).fillna("").reset_index(drop=True)
    cur = unmatched & current
    if cur.any():
        detail = "current items " + seg_labels[cur] + tail
        out.append(_reasons(frame.loc[cur, "subscription_id"], "no_rule_matched", detail))
    old = unmatched & ~current
    if old.any():
        f = frame[old].reset_index(drop=True)
        detail = (
            "items "
            + seg_labels[old].reset_index(drop=True)
            + " from "
            + date_text(f["start"])
            + " to "
            + date_text(f["end"])
            + tail
        )
        out.append(_reasons(f["subscription_id"], "history_no_rule", detail))
    un = pm.applied.unmapped_items.reset_index(drop=True)
    where = frame[["subscription_id", "start", "rule"]].iloc[un["seg"].to_numpy()]
    un = pd.concat([un, where.reset_index(drop=True)], axis=1)
    if len(un):
        rule_ids_arr = np.array([r.id for r in pm.phase.rules], dtype=object)
        detail = (
            "legacy item "
            + un["item_id"].astype("string")
            + " on price "
            + un["price_id"].astype("string")
            + " (from "
            + date_text(un["start"])
            + ") is mapped by no item or drop of rule "
            + pd.Series(rule_ids_arr[un["rule"].to_numpy()], dtype="string")
            + " and by no item_map entry"
        )
        out.append(_reasons(un["subscription_id"], "unmapped_item", detail))
    return out


def _price_info(target: Catalog) -> tuple[pd.DataFrame, pd.DataFrame]:
    info = pd.DataFrame(
        {
            "price_id": pd.array([p.id for p in target.prices], dtype="string"),
            "usage_type": [
                p.recurring.usage_type if p.recurring else "licensed" for p in target.prices
            ],
            "p_interval": [p.recurring.interval if p.recurring else "month" for p in target.prices],
            "p_count": pd.array(
                [p.recurring.interval_count if p.recurring else 1 for p in target.prices],
                dtype="Int64",
            ),
        }
    )
    pairs = [(p.id, p.currency) for p in target.prices]
    pairs += [(p.id, c) for p in target.prices for c in p.currency_options]
    options = pd.DataFrame(pairs, columns=["price_id", "currency"]).astype("string")
    options["has_option"] = True
    return info, options


def _price_reasons(pm: PhaseMapping, target: Catalog) -> list[pd.DataFrame]:
    """Resulting prices unknown to the target catalog, without the subscription's
    currency, on another interval (licensed prices), or with a bad quantity."""
    info, options = _price_info(target)
    new_rows = pm.new_rows
    cohort = pm.cohort[["currency", "interval", "interval_count"]].iloc[new_rows["sub"].to_numpy()]
    rows = (
        pd.concat([new_rows, cohort.reset_index(drop=True)], axis=1)
        .merge(info, on="price_id", how="left")
        .merge(options, on=["price_id", "currency"], how="left")
    )
    out = []
    price = rows["price_id"].astype("string")
    unknown = rows["usage_type"].isna().to_numpy()
    if unknown.any():
        detail = "price " + price[unknown] + f" is not in catalog {target.catalog!r}"
        out.append(_reasons(rows.loc[unknown, "subscription_id"], "unknown_price", detail))
    no_option = ~unknown & rows["has_option"].isna().to_numpy()
    if no_option.any():
        cur = rows.loc[no_option, "currency"].astype("string")
        detail = (
            "new price "
            + price[no_option]
            + " has no amount in "
            + cur.str.upper()
            + " (add currency_options."
            + cur
            + " to it)"
        )
        out.append(
            _reasons(rows.loc[no_option, "subscription_id"], "missing_currency_option", detail)
        )
    licensed = ~unknown & (rows["usage_type"] == "licensed").fillna(False).to_numpy(dtype=bool)
    differs = (rows["p_interval"] != rows["interval"]) | (
        rows["p_count"] != rows["interval_count"].astype("Int64")
    )
    other = licensed & differs.fillna(True).to_numpy(dtype=bool)
    if other.any():
        r = rows[other]
        detail = (
            "licensed new price "
            + price[other]
            + " bills every "
            + r["p_count"].astype("string")
            + " "
            + r["p_interval"].astype("string")
            + " but the subscription every "
            + r["interval_count"].astype("string")
            + " "
            + r["interval"].astype("string")
        )
        out.append(_reasons(r["subscription_id"], "interval_mismatch", detail))
    bad = rows["bad_quantity"].to_numpy(dtype=bool)
    if bad.any():
        detail = (
            "the quantity formula of new price "
            + price[bad]
            + " divides by zero or gives a negative quantity"
        )
        out.append(_reasons(rows.loc[bad, "subscription_id"], "bad_quantity", detail))
    return out


def _switch_reasons(pm: PhaseMapping) -> list[pd.DataFrame]:
    out = []
    for (r, k), at in pm.switch_at.items():
        early = (at < pm.cutover).fillna(False).to_numpy(dtype=bool)
        if early.any():
            switch = pm.phase.rules[r].then.switch[k]
            out.append(
                _reasons(
                    pm.cohort["subscription_id"][early],
                    "switch_before_cutover",
                    f"the switch to {switch.to} ({switch.at.describe()}) comes before "
                    "the subscription's cut-over",
                )
            )
    return out


def unmapped_subscriptions(
    pm: PhaseMapping, target: Catalog, legacy_labels: pd.Series
) -> pd.DataFrame:
    """One row per cohort subscription that cannot be mapped (UNMAPPED_COLUMNS).

    ``legacy_labels`` is the readable item list of each segment, indexed by seg.
    """
    parts = [
        *_segment_reasons(pm, legacy_labels),
        *_price_reasons(pm, target),
        *_switch_reasons(pm),
    ]
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pin(pd.DataFrame(), UNMAPPED_COLUMNS)
    reasons = pd.concat(parts, ignore_index=True)
    reasons["order"] = reasons["reason"].map(REASON_ORDER)
    reasons = reasons.sort_values(["subscription_id", "order"], kind="stable").drop_duplicates(
        "subscription_id"
    )
    reasons = reasons.merge(
        pm.cohort[["subscription_id", "customer_id"]], on="subscription_id", how="left"
    )
    reasons["phase"] = pm.phase.phase
    return pin(reasons, UNMAPPED_COLUMNS)
