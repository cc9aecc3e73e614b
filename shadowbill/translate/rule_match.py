"""Vectorized matching of rollout selectors against subscription states.

A *state* is a subscription over a stretch of time during which its set of items does
not change (its current state, or one segment of its item history). Every selector of
a phase is turned into one boolean mask over all states at once; the first matching
rule is the ``argmax`` over the stacked rules x states mask.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from fnmatch import fnmatchcase

import numpy as np
import numpy.typing as npt
import pandas as pd

from shadowbill.translate.rollout_model import Match, PriceMatch, Range

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
NO_MATCH = -1


class StateMatcher:
    """Masks of selectors over states.

    ``states`` has one row per state (positional index 0..n-1) with the columns
    segment, country, currency, interval, status, created_at, tenure_months and any
    extra metadata columns. ``items`` has one row per item active in a state:
    ``state`` (position), price_id, quantity.
    """

    def __init__(
        self,
        states: pd.DataFrame,
        items: pd.DataFrame,
        product_of: Mapping[str, str],
        seat_patterns: Sequence[str],
    ) -> None:
        self.states = states.reset_index(drop=True)
        self.size = len(self.states)
        self.item_state = items["state"].to_numpy(dtype=np.int64)
        codes, uniques = pd.factorize(items["price_id"].astype("string"), use_na_sentinel=True)
        self.price_codes = codes
        self.price_ids: list[str] = [str(u) for u in uniques]
        self.products = np.array([product_of.get(p, "") for p in self.price_ids], dtype=object)
        self.quantity = items["quantity"].fillna(0).to_numpy(dtype=np.int64)
        self._price_cache: dict[tuple[str, ...], BoolArray] = {}
        self._state_cache: dict[tuple[str, ...], BoolArray] = {}
        self.seats = self.quantity_of(seat_patterns) if seat_patterns else self._zeros()

    def _zeros(self) -> IntArray:
        return np.zeros(self.size, dtype=np.int64)

    def item_mask(self, patterns: Iterable[str]) -> BoolArray:
        """Per item row: its price id matches one of the glob patterns."""
        key = tuple(sorted(set(patterns)))
        if key not in self._price_cache:
            per_price = np.array(
                [any(fnmatchcase(pid, p) for p in key) for pid in self.price_ids], dtype=bool
            )
            per_price = np.append(per_price, False)  # code -1 (missing price id) never matches
            self._price_cache[key] = per_price[self.price_codes]
        return self._price_cache[key]

    def has(self, patterns: Iterable[str]) -> BoolArray:
        """Per state: some active item's price matches one of the patterns."""
        key = tuple(sorted(set(patterns)))
        if key not in self._state_cache:
            out = np.zeros(self.size, dtype=bool)
            out[self.item_state[self.item_mask(key)]] = True
            self._state_cache[key] = out
        return self._state_cache[key]

    def quantity_of(self, patterns: Iterable[str]) -> IntArray:
        """Per state: summed quantity of the items whose price matches the patterns."""
        mask = self.item_mask(patterns)
        out = self._zeros()
        np.add.at(out, self.item_state[mask], self.quantity[mask])
        return out

    def has_product(self, products: Iterable[str]) -> BoolArray:
        """Per state: some active item's price belongs to one of the products."""
        wanted = set(products)
        per_price = np.array([p in wanted for p in self.products], dtype=bool)
        per_price = np.append(per_price, False)
        out = np.zeros(self.size, dtype=bool)
        out[self.item_state[per_price[self.price_codes]]] = True
        return out

    def _prices(self, m: PriceMatch) -> BoolArray:
        out = np.ones(self.size, dtype=bool)
        for pattern in m.all:
            out &= self.has([pattern])
        if m.any:
            out &= self.has(m.any)
        if m.none:
            out &= ~self.has(m.none)
        return out

    @staticmethod
    def _range(values: pd.Series | IntArray, r: Range) -> BoolArray:
        v = pd.Series(values).astype("Int64")
        out = v.notna()
        if r.min is not None:
            out &= v >= r.min
        if r.max is not None:
            out &= v <= r.max
        return out.fillna(False).to_numpy(dtype=bool)

    def _isin(self, column: str, values: Iterable[str], case: str | None = None) -> BoolArray:
        col = self.states[column].astype("string")
        if case == "lower":
            col = col.str.lower()
        elif case == "upper":
            col = col.str.upper()
        return col.isin(list(values)).fillna(False).to_numpy(dtype=bool)

    def mask(self, match: Match) -> BoolArray:
        """Per state: every condition of ``match`` holds."""
        out = np.ones(self.size, dtype=bool)
        if match.prices is not None:
            out &= self._prices(match.prices)
        if match.plan is not None:
            out &= self.has_product(match.plan)
        if match.seats is not None:
            out &= self._range(self.seats, match.seats)
        if match.segment is not None:
            out &= self._isin("segment", match.segment)
        if match.currency is not None:
            out &= self._isin("currency", match.currency, "lower")
        if match.country is not None:
            out &= self._isin("country", match.country, "upper")
        if match.interval is not None:
            out &= self._isin("interval", match.interval)
        if match.status is not None:
            out &= self._isin("status", match.status)
        if match.tenure_months is not None:
            out &= self._range(self.states["tenure_months"], match.tenure_months)
        if match.created is not None:
            created = self.states["created_at"]
            ok = created.notna()
            if match.created.on_or_after is not None:
                ok &= created >= pd.Timestamp(match.created.on_or_after)
            if match.created.before is not None:
                ok &= created < pd.Timestamp(match.created.before)
            out &= ok.fillna(False).to_numpy(dtype=bool)
        for key, value in (match.metadata or {}).items():
            if key not in self.states.columns:
                out &= False
                continue
            out &= (self.states[key].astype("string") == value).fillna(False).to_numpy(dtype=bool)
        return out

    def first_match(self, matches: Sequence[Match]) -> IntArray:
        """Per state: the index of the first selector that holds, or -1 (NO_MATCH)."""
        if not matches:
            return np.full(self.size, NO_MATCH, dtype=np.int64)
        stacked = np.vstack([self.mask(m) for m in matches])  # rules x states
        first = stacked.argmax(axis=0).astype(np.int64)
        return np.where(stacked.any(axis=0), first, NO_MATCH)
