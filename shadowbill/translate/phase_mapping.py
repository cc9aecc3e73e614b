"""Map a phase's cohort through its rules, segment by segment of item history.

Each cohort subscription's history is cut into segments of constant items; every
segment is matched against the rules (first match wins); the rule of the current
segment is the subscription's rule and fixes its cut-over and scheduled switches. When
switches exist, the history is cut again at their instants and matched once more, so a
switch is an ordinary item-history change. Then the rules' ``then`` give the new items.

Subscriptions are keyed by their position in the cohort (``sub``) so that every lookup
is an array index rather than a string join.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt
import pandas as pd

from shadowbill.translate.keys import positions
from shadowbill.translate.plan import TS
from shadowbill.translate.renewal import next_renewal
from shadowbill.translate.rollout_model import NEXT_RENEWAL, Phase, When
from shadowbill.translate.rule_apply import Applied, apply_rules
from shadowbill.translate.rule_match import NO_MATCH, StateMatcher
from shadowbill.translate.segments import Segments, build_segments

IntArray = npt.NDArray[np.int64]
_STATE_DROP = ["started_at", "trial_end", "canceled_at", "current_period_start"]


@dataclass(frozen=True)
class PhaseMapping:
    """Everything known about a phase's cohort after its rules were applied.

    ``cohort`` has one row per cohort subscription; its position is the subscription's
    ``sub`` key. ``segments`` (frame: seg, sub, subscription_id, start, end, current) and
    ``seg_rule``: the item-history segments and the rule index each matched (-1: none);
    a seg id is the segment's position in the frame. ``applied``: new items and lineage
    per segment. Aligned with ``cohort``: ``rule`` (index, -1: none), ``state_start``
    (start of the current legacy items, NaT: none), ``cutover``; ``switch_at`` maps
    (rule index, switch index) to the switch instants (NaT for subscriptions on another
    rule).
    """

    phase: Phase
    as_of: pd.Timestamp
    cohort: pd.DataFrame
    segments: Segments
    seg_rule: IntArray
    applied: Applied
    rule: IntArray
    state_start: pd.Series
    cutover: pd.Series
    switch_at: dict[tuple[int, int], pd.Series]

    @property
    def seg_sub(self) -> IntArray:
        """Per segment: the subscription's position in the cohort."""
        return self.segments.frame["sub"].to_numpy(dtype=np.int64)

    @property
    def new_rows(self) -> pd.DataFrame:
        """New items per segment with the segment's sub, subscription_id, start and end."""
        new = self.applied.new_items.reset_index(drop=True)
        frame = self.segments.frame[["sub", "subscription_id", "start", "end"]]
        where = frame.iloc[new["seg"].to_numpy()].reset_index(drop=True)
        return pd.concat([new, where], axis=1)


def resolve_when(when: When, subs: pd.DataFrame, as_of: pd.Timestamp) -> pd.Series:
    """Per subscription (aligned with ``subs``): the instant ``when`` names."""
    if when.at != NEXT_RENEWAL:
        assert isinstance(when.at, datetime)
        return pd.Series(pd.Timestamp(when.at), index=subs.index, dtype=TS)
    ref = pd.Timestamp(when.not_before) if when.not_before is not None else as_of
    return next_renewal(subs, pd.Series(ref, index=subs.index, dtype=TS))


def _segments_and_rules(
    items: pd.DataFrame,
    cohort: pd.DataFrame,
    phase: Phase,
    product_of: dict[str, str],
    seat_prices: list[str],
    extra_bounds: tuple[IntArray, pd.Series] | None = None,
) -> tuple[Segments, StateMatcher, IntArray]:
    segments = build_segments(items, extra_bounds)
    seg_sub = segments.frame["sub"].to_numpy(dtype=np.int64)
    ids = cohort["subscription_id"].astype("string").iloc[seg_sub].reset_index(drop=True)
    segments = Segments(segments.frame.assign(subscription_id=ids), segments.items)
    states = cohort.drop(columns=_STATE_DROP, errors="ignore").iloc[seg_sub]
    matcher = StateMatcher(
        states.reset_index(drop=True),
        segments.items.rename(columns={"seg": "state"}),
        product_of,
        seat_prices,
    )
    return segments, matcher, matcher.first_match([r.match for r in phase.rules])


def map_phase(
    items: pd.DataFrame,
    cohort: pd.DataFrame,
    phase: Phase,
    as_of: pd.Timestamp,
    product_of: dict[str, str],
    seat_prices: list[str],
) -> PhaseMapping:
    """Match and apply the phase's rules to the item history of its cohort."""
    cohort = cohort.reset_index(drop=True)
    sub = positions(items["subscription_id"], cohort["subscription_id"])
    items = items[sub >= 0].assign(sub=sub[sub >= 0])
    segments, matcher, seg_rule = _segments_and_rules(items, cohort, phase, product_of, seat_prices)
    frame = segments.frame
    current = frame[frame["current"].to_numpy(dtype=bool)]
    current_sub = current["sub"].to_numpy(dtype=np.int64)
    rule = np.full(len(cohort), NO_MATCH, dtype=np.int64)
    rule[current_sub] = seg_rule[current["seg"].to_numpy(dtype=np.int64)]
    state_start = pd.Series(pd.NaT, index=cohort.index, dtype=TS)
    state_start.iloc[current_sub] = current["start"].array

    cutover = pd.Series(pd.NaT, index=cohort.index, dtype=TS)
    switch_at: dict[tuple[int, int], pd.Series] = {}
    for r, spec in enumerate(phase.rules):
        chosen = rule == r
        if not chosen.any():
            continue
        cutover[chosen] = resolve_when(phase.cutover_of(spec), cohort[chosen], as_of)
        for k, switch in enumerate(spec.then.switch):
            at = pd.Series(pd.NaT, index=cohort.index, dtype=TS)
            at[chosen] = resolve_when(switch.at, cohort[chosen], as_of)
            switch_at[(r, k)] = at
    if switch_at:
        extra_sub = np.concatenate([np.flatnonzero(at.notna()) for at in switch_at.values()])
        extra_at = pd.concat([at[at.notna()] for at in switch_at.values()], ignore_index=True)
        segments, matcher, seg_rule = _segments_and_rules(
            items, cohort, phase, product_of, seat_prices, (extra_sub, extra_at)
        )
    seg_sub = segments.frame["sub"].to_numpy(dtype=np.int64)
    seg_start = segments.frame["start"].reset_index(drop=True)
    switch_applies = {}
    for key, at in switch_at.items():
        at_of_seg = at.iloc[seg_sub].reset_index(drop=True)
        switch_applies[key] = (seg_start >= at_of_seg).fillna(False).to_numpy(dtype=bool)
    applied = apply_rules(phase, seg_rule, segments.items, matcher, seat_prices, switch_applies)
    return PhaseMapping(
        phase=phase,
        as_of=as_of,
        cohort=cohort,
        segments=segments,
        seg_rule=seg_rule,
        applied=applied,
        rule=rule,
        state_start=state_start,
        cutover=cutover,
        switch_at=switch_at,
    )
