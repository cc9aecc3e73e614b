"""Subscription item history: seats, add-ons and metered channels, one row per change.

A quantity or price change closes the item's row at ``t`` (``valid_to = t``) and opens a
new one (``valid_from = t``). Seat changes and add-ons added or removed mid-period fall on
a UTC date strictly between the period's first and last date, at a random time of day, so
that proration by days and by seconds differ. The Pro monthly price moves from
``pro_month_v1`` to ``pro_month_v2`` at the first period start on/after 2025-07-01.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import numpy.typing as npt
import pandas as pd

from shadowbill.demo.billing_calendar import DAY, epoch, first_boundary_at_or_after, utc_day
from shadowbill.demo.population import Population, Window
from shadowbill.demo.price_book import PriceBook

I64 = npt.NDArray[np.int64]
PRO_V2_EFFECTIVE = epoch(dt.date(2025, 7, 1))
# Item codes (index) and the code's suffix in the item id.
ITEM_CODES = ("SEAT", "RBOT", "RPT", "SMS", "WA", "AIRES")
SEAT, RBOT, RPT, SMS, WA, AIRES = range(6)
SEAT_PRICES = {
    1: ("starter_month", "pro_month_v1", "premium_month"),
    12: ("starter_year", "pro_year", "premium_year"),
}
ADDON_PRICES = {
    1: ("resolution_bot_month", "reporting_month"),
    12: ("resolution_bot_year", "reporting_year"),
}
METERED_PRICES = ("sms_month", "whatsapp_month", "ai_resolution_month")
_STEPS = np.array([-2, -1, 1, 2, 3])


def times_inside(ps: I64, pe: I64, rng: np.random.Generator) -> I64:
    """A random moment whose UTC date lies strictly between the dates of ``ps`` and ``pe``."""
    first, last = utc_day(ps), utc_day(pe)
    day = first + rng.integers(1, last - first)
    return np.asarray(day * DAY + rng.integers(0, DAY, size=len(day)), dtype=np.int64)


def _pick_periods(periods: pd.DataFrame, subs: I64, rng: np.random.Generator) -> tuple[I64, I64]:
    """For each entry of ``subs`` (each with invoiced periods), one of its periods at random."""
    owner = periods["sub"].to_numpy()
    first = np.searchsorted(owner, subs, side="left")
    count = np.searchsorted(owner, subs, side="right") - first
    row = first + rng.integers(0, count)
    return periods["ps"].to_numpy()[row], periods["pe"].to_numpy()[row]


def _events(frame: dict[str, npt.ArrayLike]) -> pd.DataFrame:
    return pd.DataFrame({k: np.asarray(v, dtype=np.int64) for k, v in frame.items()})


def make_item_history(pop: Population, window: Window, book: PriceBook, seed: int) -> pd.DataFrame:
    """Every item row: sub, code, price (index), quantity, valid_from, valid_to (-1 open)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 4]))
    subs = pop.subscriptions
    n = len(subs)
    every = subs["every"].to_numpy()
    plan = subs["plan"].to_numpy()
    started = subs["started_at"].to_numpy()
    sales = pop.customers["sales"].to_numpy()
    billed_subs = np.unique(pop.periods["sub"].to_numpy())
    has_bill = np.zeros(n, dtype=bool)
    has_bill[billed_subs] = True

    seat_month = np.array([book.index(p) for p in SEAT_PRICES[1]])
    seat_year = np.array([book.index(p) for p in SEAT_PRICES[12]])
    pro_v2 = book.index("pro_month_v2")
    pro_monthly = (plan == 1) & (every == 1)
    seat_price = np.where(every == 1, seat_month[plan], seat_year[plan])
    seat_price = np.where(pro_monthly & (started >= PRO_V2_EFFECTIVE), pro_v2, seat_price)

    # Seat changes: 1-3 per chosen subscription, inside invoiced periods.
    changing = has_bill & (rng.random(n) < 0.35)
    n_changes = np.where(changing, rng.integers(1, 4, size=n), 0)
    change_sub = np.repeat(np.arange(n), n_changes)
    cps, cpe = _pick_periods(pop.periods, change_sub, rng)
    change_t = times_inside(cps, cpe, rng)
    change = _events({"sub": change_sub, "t": change_t}).drop_duplicates(["sub", "t"])
    change = change.sort_values(["sub", "t"], kind="stable").reset_index(drop=True)
    steps = _STEPS[rng.integers(0, len(_STEPS), size=len(change))]
    cum = pd.Series(steps).groupby(change["sub"].to_numpy()).cumsum().to_numpy()
    seats0 = subs["seats"].to_numpy()
    low = np.full(n, 0, dtype=np.int64)
    np.minimum.at(low, change["sub"].to_numpy(), cum)
    seats0 = seats0 + np.maximum(0, 1 - (seats0 + low))
    change_qty = seats0[change["sub"].to_numpy()] + cum

    # The Pro monthly price change, at a period boundary (no proration).
    _, switch_t = first_boundary_at_or_after(subs["anchor"].to_numpy(), every, PRO_V2_EFFECTIVE)
    canceled = subs["canceled_at"].to_numpy()
    switching = (
        pro_monthly
        & (started < PRO_V2_EFFECTIVE)
        & (switch_t < window.end)
        & ((canceled < 0) | (switch_t < canceled))
    )
    all_subs = np.arange(n)
    parts = [
        _events(
            {
                "sub": all_subs,
                "code": np.full(n, SEAT),
                "t": started,
                "qty": seats0,
                "price": seat_price,
            }
        ),
        _events(
            {
                "sub": change["sub"],
                "code": np.full(len(change), SEAT),
                "t": change["t"],
                "qty": change_qty,
                "price": np.full(len(change), -1),
            }
        ),
        _events(
            {
                "sub": all_subs[switching],
                "code": np.full(int(switching.sum()), SEAT),
                "t": switch_t[switching],
                "qty": np.full(int(switching.sum()), -1),
                "price": np.full(int(switching.sum()), pro_v2),
            }
        ),
    ]

    # Add-ons: from the start (some removed mid-period later) or added mid-period.
    removed: list[pd.DataFrame] = []
    for code, share in ((RBOT, 0.22), (RPT, 0.18)):  # per add-on product
        price = np.array(
            [book.index(p) for p in (ADDON_PRICES[1][code - 1], ADDON_PRICES[12][code - 1])]
        )
        has = rng.random(n) < np.where(sales, share * 1.5, share)
        late = has & has_bill & (rng.random(n) < 0.3)
        drop = has & has_bill & ~late & (rng.random(n) < 0.15)
        t = started.copy()
        ps, pe = _pick_periods(pop.periods, all_subs[late], rng)
        t[late] = times_inside(ps, pe, rng)
        ps, pe = _pick_periods(pop.periods, all_subs[drop], rng)
        removed.append(
            _events(
                {
                    "sub": all_subs[drop],
                    "code": np.full(int(drop.sum()), code),
                    "until": times_inside(ps, pe, rng),
                }
            )
        )
        m = int(has.sum())
        parts.append(
            _events(
                {
                    "sub": all_subs[has],
                    "code": np.full(m, code),
                    "t": t[has],
                    "qty": np.ones(m),
                    "price": np.where(every[has] == 1, price[0], price[1]),
                }
            )
        )

    # Metered channels (monthly subscriptions only), from the start, never changed.
    for code, price_id, share in zip(
        (SMS, WA, AIRES), METERED_PRICES, (0.6, 0.4, 0.45), strict=True
    ):  # per metered product
        has = (every == 1) & (rng.random(n) < share)
        m = int(has.sum())
        parts.append(
            _events(
                {
                    "sub": all_subs[has],
                    "code": np.full(m, code),
                    "t": started[has],
                    "qty": np.ones(m),  # metered rows carry quantity 1; billing ignores it
                    "price": np.full(m, book.index(price_id)),
                }
            )
        )
    return _rows(pd.concat(parts, ignore_index=True), pd.concat(removed, ignore_index=True))


def _rows(events: pd.DataFrame, removed: pd.DataFrame) -> pd.DataFrame:
    """Turn change events into history rows: carry quantity/price forward, close at the next."""
    events = events.sort_values(["sub", "code", "t"], kind="stable").reset_index(drop=True)
    pos = np.arange(len(events))
    for col in ("qty", "price"):  # forward-fill the unchanged value (-1) from the previous row
        vals = events[col].to_numpy()
        src = np.maximum.accumulate(np.where(vals >= 0, pos, 0))
        events[col] = vals[src]
    sub = events["sub"].to_numpy()
    code = events["code"].to_numpy()
    nxt = np.append(events["t"].to_numpy()[1:], -1)
    same = np.append((sub[1:] == sub[:-1]) & (code[1:] == code[:-1]), False)
    valid_to = np.where(same, nxt, -1)
    is_last = ~same
    # Removed add-ons: the item's last row closes at the removal time.
    gone = removed["sub"].to_numpy() * 8 + removed["code"].to_numpy()
    order = np.argsort(gone, kind="stable")
    gone, until = gone[order], removed["until"].to_numpy()[order]
    last_key = (sub * 8 + code)[is_last]
    at = np.minimum(np.searchsorted(gone, last_key), max(len(gone) - 1, 0))
    hit = (gone[at] == last_key) if len(gone) else np.zeros(len(last_key), dtype=bool)
    valid_to[is_last] = np.where(hit, until[at] if len(gone) else -1, -1)
    events["valid_to"] = valid_to
    return events.rename(columns={"t": "valid_from"})[
        ["sub", "code", "price", "qty", "valid_from", "valid_to"]
    ]
