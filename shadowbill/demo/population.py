"""The demo company's customers, their subscriptions and the billing periods they invoice.

One subscription per customer. Everything is drawn from one seed, column by column, so
the same seed always gives the same company. Times are int64 epoch seconds; -1 means none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from shadowbill.demo.billing_calendar import DAY, add_months, month_index
from shadowbill.demo.price_book import CURRENCIES

# Countries, the currency each bills in, and the share of customers.
COUNTRIES = ("US", "GB", "DE", "FR", "NL", "JP", "KW")
COUNTRY_CURRENCY = np.array(
    [CURRENCIES.index(c) for c in ("USD", "GBP", "EUR", "EUR", "EUR", "JPY", "KWD")]
)
COUNTRY_SHARE = np.array([0.38, 0.14, 0.09, 0.08, 0.06, 0.15, 0.10])
PLANS = ("starter", "pro", "premium")
STATUSES = ("active", "trialing", "past_due", "canceled")
TRIAL_DAYS = 14
PRE_START_MONTHS = 30  # existing customers signed up within this many months before the window

_ADJECTIVES = np.array(
    ["Bright", "North", "Blue", "Quiet", "Rapid", "Silver", "Open", "Clear", "Bold", "Green"]
)
_NOUNS = np.array(["Harbor", "Pixel", "Summit", "Maple", "Orbit", "Cedar", "Signal", "Forge"])
_SUFFIXES = np.array(["Labs", "Ltd", "GmbH", "Studio", "Co", "Systems", "KK", "Group"])


@dataclass(frozen=True)
class Window:
    """The billing window: invoices for periods ending in ``(start, end]``, epoch seconds."""

    start: int
    end: int
    months: int


@dataclass(frozen=True)
class Population:
    """Customers, subscriptions and the billing periods that get an invoice."""

    customers: pd.DataFrame
    subscriptions: pd.DataFrame
    periods: pd.DataFrame


def _rng(seed: int, part: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, part]))


def make_customers(n: int, window: Window, seed: int) -> pd.DataFrame:
    """Customers: country and currency, segment, tax exemption, sign-up time, names."""
    rng = _rng(seed, 1)
    country = rng.choice(len(COUNTRIES), size=n, p=COUNTRY_SHARE)
    sales = rng.random(n) < 0.25
    exempt = rng.random(n) < np.where(sales, 0.15, 0.04)
    existing = rng.random(n) < 0.65
    start_month = int(month_index(np.array([window.start]))[0])
    offset = np.where(
        existing,
        rng.integers(-PRE_START_MONTHS, 0, size=n),
        rng.integers(0, window.months, size=n),
    )
    day = rng.integers(0, 28, size=n)  # day of month 1..28
    tod = rng.integers(1, DAY, size=n)  # never exactly midnight
    month_start = (np.int64(start_month) + offset).astype("datetime64[M]").astype("datetime64[D]")
    started = (month_start.astype(np.int64) + day) * DAY + tod
    late = started > window.end - 7 * DAY  # new customers sign up at least a week before the end
    started = np.where(late, add_months(started, -1), started)
    created = started - rng.integers(0, 2 * DAY, size=n)
    names = (
        pd.Series(_ADJECTIVES[rng.integers(0, len(_ADJECTIVES), n)], dtype="string")
        + " "
        + pd.Series(_NOUNS[rng.integers(0, len(_NOUNS), n)], dtype="string")
        + " "
        + pd.Series(_SUFFIXES[rng.integers(0, len(_SUFFIXES), n)], dtype="string")
    )
    return pd.DataFrame(
        {
            "cust": np.arange(n, dtype=np.int64),
            "country": country.astype(np.int64),
            "cur": COUNTRY_CURRENCY[country].astype(np.int64),
            "sales": sales,
            "tax_exempt": exempt,
            "created_at": created.astype(np.int64),
            "started_at": started.astype(np.int64),
            "name": names,
        }
    )


def make_subscriptions(customers: pd.DataFrame, window: Window, seed: int) -> pd.DataFrame:
    """One subscription per customer: plan, interval, first seats, trial, anchor."""
    rng = _rng(seed, 2)
    n = len(customers)
    sales = customers["sales"].to_numpy()
    plan = rng.choice(3, size=n, p=[0.45, 0.38, 0.17])
    annual = rng.random(n) < np.where(sales, 0.45, 0.12)
    seats = np.where(sales, rng.integers(8, 120, size=n), rng.integers(1, 12, size=n))
    started = customers["started_at"].to_numpy()
    trial = rng.random(n) < np.where(sales, 0.08, 0.22)
    trial_end = np.where(trial, started + TRIAL_DAYS * DAY, -1)
    anchor = np.where(trial, trial_end, started)
    return pd.DataFrame(
        {
            "sub": customers["cust"].to_numpy(),
            "cust": customers["cust"].to_numpy(),
            "cur": customers["cur"].to_numpy(),
            "plan": plan.astype(np.int64),
            "every": np.where(annual, 12, 1).astype(np.int64),
            "seats": seats.astype(np.int64),
            "started_at": started,
            "trial_end": trial_end.astype(np.int64),
            "anchor": anchor.astype(np.int64),
        }
    )


def candidate_periods(subs: pd.DataFrame, window: Window) -> pd.DataFrame:
    """Every billing period that ends in the window or contains its end, per subscription."""
    anchor = subs["anchor"].to_numpy()
    every = subs["every"].to_numpy()
    gap = month_index(np.full(len(subs), window.start)) - month_index(anchor)
    first_k = np.maximum(0, gap // every - 1)
    per_sub = window.months // every + 3
    rows = np.repeat(np.arange(len(subs)), per_sub)
    step = np.arange(len(rows)) - np.repeat(np.cumsum(per_sub) - per_sub, per_sub)
    k = first_k[rows] + step
    ps = add_months(anchor[rows], k * every[rows])
    pe = add_months(anchor[rows], (k + 1) * every[rows])
    keep = (pe > window.start) & (ps <= window.end)
    return pd.DataFrame(
        {"sub": subs["sub"].to_numpy()[rows][keep], "k": k[keep], "ps": ps[keep], "pe": pe[keep]}
    ).reset_index(drop=True)


def settle_statuses(
    subs: pd.DataFrame, candidates: pd.DataFrame, window: Window, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cancel some at a period end, mark some past due; return subscriptions and invoiced periods."""
    rng = _rng(seed, 3)
    billed = candidates[candidates["pe"] <= window.end]
    count = np.bincount(billed["sub"].to_numpy(), minlength=len(subs))
    first = np.searchsorted(billed["sub"].to_numpy(), np.arange(len(subs)))
    has_bill = count > 0
    cancel = has_bill & (rng.random(len(subs)) < 0.07)
    pick = first + rng.integers(0, np.maximum(count, 1))
    ends = billed["pe"].to_numpy()
    canceled_at = np.where(cancel, ends.take(pick, mode="clip") if len(ends) else -1, -1)
    trialing = subs["trial_end"].to_numpy() > window.end
    past_due = has_bill & ~cancel & ~trialing & (rng.random(len(subs)) < 0.03)
    status = np.select([cancel, trialing, past_due], [3, 1, 2], default=0)
    subs = subs.assign(status=status.astype(np.int64), canceled_at=canceled_at.astype(np.int64))

    cut = canceled_at[candidates["sub"].to_numpy()]
    alive = (cut < 0) | (candidates["pe"].to_numpy() <= cut)
    candidates = candidates[alive]
    # Current period: the open one containing the window's end, or the last before a cancel.
    open_now = candidates[(candidates["ps"] <= window.end) & (candidates["pe"] > window.end)]
    last = candidates.drop_duplicates("sub", keep="last")
    current = pd.concat([open_now, last[last["sub"].isin(subs.loc[cancel, "sub"])]])
    current = current.drop_duplicates("sub", keep="last")
    # Trialing subscriptions (no period yet) have the trial as their current period.
    cps = subs["started_at"].to_numpy().copy()
    cpe = subs["trial_end"].to_numpy().copy()
    cps[current["sub"].to_numpy()] = current["ps"].to_numpy()
    cpe[current["sub"].to_numpy()] = current["pe"].to_numpy()
    subs = subs.assign(cps=cps, cpe=cpe)
    periods = candidates[candidates["pe"] <= window.end].reset_index(drop=True)
    periods.insert(0, "inv", np.arange(len(periods), dtype=np.int64))
    return subs, periods


def make_population(n: int, window: Window, seed: int) -> Population:
    """The whole company: customers, subscriptions, and the periods that are invoiced."""
    customers = make_customers(n, window, seed)
    subs = make_subscriptions(customers, window, seed)
    subs, periods = settle_statuses(subs, candidate_periods(subs, window), window, seed)
    return Population(customers, subs, periods)
