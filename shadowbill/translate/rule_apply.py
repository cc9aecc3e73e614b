"""Apply the ``then`` of matched rules to item-history segments: new items and their lineage.

For each segment (a stretch of a subscription's history with constant items) whose rule
is known, the rule's items consume the legacy items named in their ``from`` and give new
items with quantities from their formulas; ``drop`` removes legacy items on purpose; what
is left keeps its legacy price (``recreate_legacy_prices``, possibly switched to a new
price from a date) or goes through the phase's ``item_map``. A legacy item nothing maps
is reported, never dropped silently. Loops run over rules and items of the rollout file,
never over subscriptions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from shadowbill.translate.quantity_formula import evaluate, parse_formula
from shadowbill.translate.rollout_model import Phase
from shadowbill.translate.rule_match import StateMatcher

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

# How a new item came to be, per segment (the ``change`` column of a plan's lineage).
MAPPED = "mapped"  # a rule item replaced the legacy item
ADDED = "added"  # a rule item with no `from`: new, nothing replaced
DROPPED = "dropped"  # removed on purpose by the rule's `drop`
ITEM_MAP = "item_map"  # mapped through the phase's item_map
RECREATED = "recreated"  # legacy price kept (recreated on the new platform)
SWITCHED = "switched"  # legacy price replaced by a scheduled switch


@dataclass(frozen=True)
class Applied:
    """The result of applying rules to segments.

    ``new_items``: seg, price_id, quantity, bad_quantity (one row per new price per seg).
    ``lineage``: seg, legacy_item_id, legacy_price_id, legacy_quantity, new_price_id,
    change, note. ``unmapped_items``: seg, item_id, price_id (nothing maps them).
    """

    new_items: pd.DataFrame
    lineage: pd.DataFrame
    unmapped_items: pd.DataFrame


_KEEP = -1  # the new price is the legacy row's own price (kept, recreated)
_NONE = -2  # no new price (dropped)


class _Collector:
    """Collects new items and lineage as integer codes; frames are built once at the end."""

    def __init__(self, matcher: StateMatcher, items: pd.DataFrame) -> None:
        self.matcher = matcher
        self.items = items.reset_index(drop=True)
        self.item_seg = self.items["seg"].to_numpy(dtype=np.int64)
        self.quantity = self.items["quantity"].fillna(0).to_numpy(dtype=np.int64)
        self.n_segs = matcher.size
        self.texts: list[str] = []  # prices, changes and notes, by code
        self.codes: dict[str, int] = {}
        # new items: seg, price code (or _KEEP with the row), quantity, bad
        self.out_seg: list[IntArray] = []
        self.out_price: list[IntArray] = []
        self.out_row: list[IntArray] = []
        self.out_qty: list[IntArray] = []
        self.out_bad: list[BoolArray] = []
        # lineage: seg, legacy row (-1: none), new price code, change code, note code
        self.lin: list[tuple[IntArray, IntArray, int, int, int]] = []

    def code(self, text: str) -> int:
        if text not in self.codes:
            self.codes[text] = len(self.texts)
            self.texts.append(text)
        return self.codes[text]

    def per_seg(self, mask: BoolArray) -> tuple[IntArray, IntArray]:
        """Segments having a row in ``mask`` and the summed quantity of those rows."""
        qty = np.zeros(self.n_segs, dtype=np.int64)
        np.add.at(qty, self.item_seg[mask], self.quantity[mask])
        has = np.zeros(self.n_segs, dtype=bool)
        has[self.item_seg[mask]] = True
        segs = np.flatnonzero(has)
        return segs, qty[segs]

    def emit(self, segs: IntArray, price: str, formula: str, quantity: IntArray) -> None:
        values, bad = evaluate(
            parse_formula(formula),
            {"seats": self.matcher.seats[segs], "quantity": quantity},
            len(segs),
        )
        self.out_seg.append(segs)
        self.out_price.append(np.full(len(segs), self.code(price), dtype=np.int64))
        self.out_row.append(np.full(len(segs), -1, dtype=np.int64))
        self.out_qty.append(values)
        self.out_bad.append(bad)

    def emit_rows(self, mask: BoolArray) -> None:
        """Each row keeps its own legacy price and quantity."""
        rows = np.flatnonzero(mask)
        self.out_seg.append(self.item_seg[rows])
        self.out_price.append(np.full(len(rows), _KEEP, dtype=np.int64))
        self.out_row.append(rows)
        self.out_qty.append(self.quantity[rows])
        self.out_bad.append(np.zeros(len(rows), dtype=bool))

    def trace(self, mask: BoolArray, new_price: str | None, change: str, note: str = "") -> None:
        """Lineage rows for the legacy rows in ``mask``; ``None`` keeps the legacy price."""
        rows = np.flatnonzero(mask)
        price = _KEEP if new_price is None else self.code(new_price)
        self.lin.append((self.item_seg[rows], rows, price, self.code(change), self.code(note)))

    def trace_dropped(self, mask: BoolArray, reason: str) -> None:
        rows = np.flatnonzero(mask)
        self.lin.append((self.item_seg[rows], rows, _NONE, self.code(DROPPED), self.code(reason)))

    def trace_added(self, segs: IntArray, new_price: str) -> None:
        rows = np.full(len(segs), -1, dtype=np.int64)
        self.lin.append((segs, rows, self.code(new_price), self.code(ADDED), self.code("")))

    def _text(self, codes: IntArray, rows: IntArray, column: str) -> pd.Series:
        """Texts by code; _KEEP takes the legacy row's ``column``; _NONE is missing."""
        texts = pd.Series(np.array([*self.texts, None, None], dtype=object)[codes], dtype="string")
        keep = codes == _KEEP
        if keep.any():
            legacy = self.items[column].iloc[rows[keep]].to_numpy(dtype=object)
            texts[keep] = legacy
        return texts

    def new_items(self) -> pd.DataFrame:
        if not self.out_seg:
            return pd.DataFrame(
                {
                    "seg": pd.Series(dtype="int64"),
                    "price_id": pd.Series(dtype="string"),
                    "quantity": pd.Series(dtype="int64"),
                    "bad_quantity": pd.Series(dtype=bool),
                }
            )
        rows = np.concatenate(self.out_row)
        frame = pd.DataFrame(
            {
                "seg": np.concatenate(self.out_seg),
                "price_id": self._text(np.concatenate(self.out_price), rows, "price_id"),
                "quantity": np.concatenate(self.out_qty),
                "bad_quantity": np.concatenate(self.out_bad),
            }
        )
        return frame.groupby(["seg", "price_id"], as_index=False, sort=True).agg(
            quantity=("quantity", "sum"), bad_quantity=("bad_quantity", "any")
        )

    def lineage(self) -> pd.DataFrame:
        if not self.lin:
            return pd.DataFrame({k: pd.Series(dtype=v) for k, v in _LINEAGE_DTYPES.items()})
        seg = np.concatenate([p[0] for p in self.lin])
        rows = np.concatenate([p[1] for p in self.lin])
        price = np.concatenate([np.full(len(p[0]), p[2], dtype=np.int64) for p in self.lin])
        change = np.concatenate([np.full(len(p[0]), p[3], dtype=np.int64) for p in self.lin])
        note = np.concatenate([np.full(len(p[0]), p[4], dtype=np.int64) for p in self.lin])
        has_row = rows >= 0
        legacy = self.items[["item_id", "price_id", "quantity"]].iloc[np.where(has_row, rows, 0)]
        legacy = legacy.reset_index(drop=True).astype(
            {"item_id": "string", "price_id": "string", "quantity": "Int64"}
        )
        if not has_row.all():
            legacy.loc[~has_row] = pd.NA
        return pd.DataFrame(
            {
                "seg": seg,
                "legacy_item_id": legacy["item_id"],
                "legacy_price_id": legacy["price_id"],
                "legacy_quantity": legacy["quantity"],
                "new_price_id": self._text(price, rows, "price_id"),
                "change": self._text(change, rows, "price_id"),
                "note": self._text(note, rows, "price_id"),
            }
        ).astype(_LINEAGE_DTYPES)


_LINEAGE_DTYPES = {
    "seg": "int64",
    "legacy_item_id": "string",
    "legacy_price_id": "string",
    "legacy_quantity": "Int64",
    "new_price_id": "string",
    "change": "string",
    "note": "string",
}


def apply_rules(
    phase: Phase,
    seg_rule: IntArray,
    items: pd.DataFrame,
    matcher: StateMatcher,
    seat_patterns: list[str],
    switch_applies: Mapping[tuple[int, int], BoolArray],
) -> Applied:
    """New items per segment for the rule each segment matched (``seg_rule``, -1 = none).

    ``items`` are the segments' active rows (seg, item_id, price_id, quantity) and
    ``matcher`` the StateMatcher built on them; ``switch_applies[(rule, k)]`` says per
    segment whether switch ``k`` of that rule is in force.
    """
    c = _Collector(matcher, items)
    rule_of_item = seg_rule[c.item_seg] if len(c.item_seg) else np.zeros(0, dtype=np.int64)
    to_item_map = np.zeros(len(c.item_seg), dtype=bool)
    for r, rule in enumerate(phase.rules):
        in_rule = rule_of_item == r
        seg_in_rule = np.flatnonzero(seg_rule == r)
        if len(seg_in_rule) == 0:
            continue
        consumed = np.zeros(len(c.item_seg), dtype=bool)
        for spec in rule.then.items:
            if spec.from_:
                mask = in_rule & matcher.item_mask(spec.from_)
                segs, qty = c.per_seg(mask)
                c.trace(mask, spec.price, MAPPED)
                consumed |= mask
            else:
                segs, qty = seg_in_rule, np.zeros(len(seg_in_rule), dtype=np.int64)
                c.trace_added(segs, spec.price)
            c.emit(segs, spec.price, spec.formula, qty)
        for drop in rule.then.drop:
            mask = in_rule & ~consumed & matcher.item_mask(drop.from_)
            c.trace_dropped(mask, drop.reason)
            consumed |= mask
        leftover = in_rule & ~consumed
        if not rule.then.recreate_legacy_prices:
            to_item_map |= leftover
            continue
        for k, switch in enumerate(rule.then.switch):
            applies = switch_applies.get((r, k))
            if applies is None:
                continue
            mask = leftover & applies[c.item_seg] & matcher.item_mask(switch.from_ or seat_patterns)
            segs, qty = c.per_seg(mask)
            c.trace(mask, switch.to, SWITCHED, f"switch at {switch.at.describe()}")
            c.emit(segs, switch.to, switch.formula, qty)
            leftover &= ~mask
        c.trace(leftover, None, RECREATED)
        c.emit_rows(leftover)
    for entry in phase.item_map:
        mask = to_item_map & matcher.item_mask(entry.from_)
        segs, qty = c.per_seg(mask)
        c.trace(mask, entry.price, ITEM_MAP)
        c.emit(segs, entry.price, entry.formula, qty)
        to_item_map &= ~mask

    unmapped = c.items[["seg", "item_id", "price_id"]][to_item_map].reset_index(drop=True)
    return Applied(
        new_items=c.new_items(),
        lineage=c.lineage(),
        unmapped_items=unmapped.astype({"item_id": "string", "price_id": "string"}),
    )
