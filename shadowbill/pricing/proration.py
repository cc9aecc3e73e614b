"""Proration fractions and amounts: Stripe prorates by the second, the demo legacy by day.

For a change at time t inside ``[period_start, period_end)`` the fraction of the period
left is ``(period_end - t) / (period_end - period_start)`` in time (``seconds``), or in
whole UTC days (``days``): from the date of t to the date of period_end over the dates of
the period. The prorated amount is ``round(exact charge x fraction)``, rounded once on
its magnitude by the catalog's mode.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from shadowbill.money import Rounding, div_round, mul_div_round
from shadowbill.pricing import explain_text as tx
from shadowbill.pricing.catalog import Proration
from shadowbill.pricing.periods import DAY_US

IntArray = npt.NDArray[np.int64]
_SAFE = 2**62


def fraction(
    method: Proration, t: IntArray, period_start: IntArray, period_end: IntArray
) -> tuple[IntArray, IntArray]:
    """(numerator, denominator) of the fraction of the period left after t, reduced."""
    if method is Proration.DAYS:
        num = period_end // DAY_US - t // DAY_US
        den = period_end // DAY_US - period_start // DAY_US
    else:
        num = period_end - t
        den = period_end - period_start
    den = np.maximum(den, 1)
    num = np.clip(num, 0, den)
    g = np.maximum(np.gcd(num, den), 1)
    return np.asarray(num // g, dtype=np.int64), np.asarray(den // g, dtype=np.int64)


def prorate(exact: IntArray, factor: int, num: IntArray, den: IntArray, mode: Rounding) -> IntArray:
    """``round(exact / factor x num / den)`` on magnitudes, exact for any size."""
    exact = np.asarray(exact, dtype=np.int64)
    out = np.zeros(len(exact), dtype=np.int64)
    if not len(exact):
        return out
    denom_ok = den < _SAFE // factor
    idx = np.flatnonzero(denom_ok)
    out[idx] = mul_div_round(np.abs(exact[idx]), num[idx], den[idx] * factor, mode)
    big = np.flatnonzero(~denom_ok)
    if len(big):  # a denominator too large for int64: exact Python integers
        numer = np.abs(exact[big]).astype(object) * num[big].astype(object)
        out[big] = div_round(numer, den[big].astype(object) * factor, mode)
    return np.asarray(np.where(exact < 0, -out, out), dtype=np.int64)


def fraction_text(
    method: Proration, t: IntArray, period_start: IntArray, period_end: IntArray
) -> pa.Array:
    """ "prorated 11d 4h / 31d" (seconds) or "prorated 11 / 31 days" (days)."""
    if method is Proration.DAYS:
        left = period_end // DAY_US - t // DAY_US
        whole = period_end // DAY_US - period_start // DAY_US
        return tx.join("prorated ", tx.counts(left), " / ", tx.counts(whole), " days")
    return tx.join(
        "prorated ", tx.durations(period_end - t), " / ", tx.durations(period_end - period_start)
    )
