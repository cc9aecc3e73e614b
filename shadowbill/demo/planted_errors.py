"""Legacy billing errors planted in the charge lines, with their ground truth.

Each kind hits about ``RATE`` of the invoices (at least one when any invoice qualifies),
never two errors on one invoice. Errors are planted before discounts, tax and totals are
computed, so an erroneous invoice is consistent with its own wrong lines, as the buggy
engine's would be. Amounts in the ground truth are the affected line's, in minor units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from shadowbill.demo.item_history import RBOT, RPT
from shadowbill.demo.legacy_engine import RECURRING, USAGE
from shadowbill.demo.price_book import UNIT_SCALE, PriceBook
from shadowbill.money import mul_div_round

RATE = 0.003
ERROR_KINDS = ("double_charged_addon", "stale_price", "rounding_slip", "missing_usage_line")


@dataclass(frozen=True)
class Planted:
    """The charge lines with errors applied, and one truth row per error (``err`` = row)."""

    charges: pd.DataFrame
    truth: pd.DataFrame


def _choose(
    charges: pd.DataFrame,
    eligible: np.ndarray,
    taken: np.ndarray,
    want: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Row numbers of one eligible line on each of ``want`` random untouched invoices."""
    rows = np.flatnonzero(eligible & ~taken[charges["inv"].to_numpy()])
    inv = charges["inv"].to_numpy()[rows]
    _, first = np.unique(inv, return_index=True)  # the first eligible line of each invoice
    rows = rows[first]
    if len(rows) == 0:
        return rows
    picked = rng.choice(len(rows), size=min(want, len(rows)), replace=False)
    return np.sort(rows[picked])


def plant_errors(
    charges: pd.DataFrame, invoices: pd.DataFrame, book: PriceBook, seed: int
) -> Planted:
    """Apply each error kind to a few invoices' charge lines; return them with the truth."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    n_invoices = len(invoices)
    want = max(1, round(RATE * n_invoices))
    charges = charges.copy()
    kind = charges["kind"].to_numpy()
    code = charges["code"].to_numpy()
    price = charges["price"].to_numpy()
    amount = charges["amount"].to_numpy()
    taken = np.zeros(n_invoices, dtype=bool)
    truth: list[pd.DataFrame] = []
    extra: list[pd.DataFrame] = []
    drop = np.zeros(len(charges), dtype=bool)
    v1, v2 = book.index("pro_month_v1"), book.index("pro_month_v2")
    eligible = {
        "double_charged_addon": (kind == RECURRING) & np.isin(code, (RBOT, RPT)),
        "stale_price": (kind == RECURRING) & (price == v2),
        "rounding_slip": (kind == USAGE) & (amount >= 2),
        "missing_usage_line": (kind == USAGE) & (amount > 0),
    }
    err_no = 0
    for name in ERROR_KINDS:  # per error kind
        rows = _choose(charges, eligible[name], taken, want, rng)
        taken[charges["inv"].to_numpy()[rows]] = True
        ids = np.arange(err_no, err_no + len(rows), dtype=np.int64)
        err_no += len(rows)
        expected = amount[rows].copy()
        if name == "double_charged_addon":
            dup = charges.iloc[rows].assign(dup=1, err=ids)
            extra.append(dup)
            expected, actual = np.zeros(len(rows), dtype=np.int64), amount[rows]
        elif name == "stale_price":
            cur = invoices["cur"].to_numpy()[charges["inv"].to_numpy()[rows]]
            unit_v1 = book.unit_scaled[v1, cur]
            actual = mul_div_round(
                charges["qty"].to_numpy()[rows], unit_v1, 10**UNIT_SCALE, book.rounding
            )
            charges.loc[charges.index[rows], "unit"] = unit_v1
            charges.loc[charges.index[rows], "amount"] = actual
            charges.loc[charges.index[rows], "err"] = ids
        elif name == "rounding_slip":
            actual = amount[rows] + np.where(rng.random(len(rows)) < 0.5, -1, 1)
            charges.loc[charges.index[rows], "amount"] = actual
            charges.loc[charges.index[rows], "err"] = ids
        else:
            actual = np.zeros(len(rows), dtype=np.int64)
            drop[rows] = True
        truth.append(
            pd.DataFrame(
                {
                    "err": ids,
                    "kind": name,
                    "inv": charges["inv"].to_numpy()[rows],
                    "price": price[rows],
                    "expected": expected,
                    "actual": actual,
                    "code": code[rows],
                    "qty": charges["qty"].to_numpy()[rows],
                }
            )
        )
    out = pd.concat([charges[~drop], *extra], ignore_index=True)
    return Planted(out, pd.concat(truth, ignore_index=True))
