"""The states a subscription and a batch go through, and the only moves between them.

A subscription of a batch (``TRANSITIONS``)::

    planned  -> applied | failed | rolled_back
    applied  -> verified | failed | rolled_back
    verified -> cut_over | failed | rolled_back
    failed   -> planned (retry) | applied (resumed apply) | rolled_back
    cut_over     final: the target bills it now; rolling it back is refused
    rolled_back  final for that batch; the subscription returns to the pool and can
                 be planned in a later batch

``planned -> rolled_back`` gives up a subscription before its apply finished (e.g. a
batch whose gate failed) so that it can be planned again; rollback removes whatever
objects the ledger recorded for it.

A batch (``BATCH_TRANSITIONS``) moves ``planned -> gated -> applying -> applied ->
verified -> cut_over``, with ``failed`` and ``rolled_back`` beside them; the same status
again is allowed in every non-final one (a resumed step). ``applying`` needs a gate that
passed or was forced with a reason; ``cut_over`` comes only from ``verified``; a batch
with a cut-over subscription cannot be rolled back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

SubscriptionState = Literal["planned", "applied", "verified", "cut_over", "failed", "rolled_back"]
BatchStatus = Literal[
    "planned", "gated", "applying", "applied", "verified", "cut_over", "rolled_back", "failed"
]
GateVerdict = Literal["pass", "fail"]

PLANNED: Final = "planned"
APPLIED: Final = "applied"
VERIFIED: Final = "verified"
CUT_OVER: Final = "cut_over"
FAILED: Final = "failed"
ROLLED_BACK: Final = "rolled_back"
GATED: Final = "gated"
APPLYING: Final = "applying"

SUBSCRIPTION_STATES: Final[tuple[str, ...]] = (
    PLANNED,
    APPLIED,
    VERIFIED,
    CUT_OVER,
    FAILED,
    ROLLED_BACK,
)
BATCH_STATUSES: Final[tuple[str, ...]] = (
    PLANNED,
    GATED,
    APPLYING,
    APPLIED,
    VERIFIED,
    CUT_OVER,
    ROLLED_BACK,
    FAILED,
)
GATE_VERDICTS: Final[tuple[str, ...]] = ("pass", "fail")

# from-state -> the states it may move to.
TRANSITIONS: Final[Mapping[str, frozenset[str]]] = {
    PLANNED: frozenset({APPLIED, FAILED, ROLLED_BACK}),
    APPLIED: frozenset({VERIFIED, FAILED, ROLLED_BACK}),
    VERIFIED: frozenset({CUT_OVER, ROLLED_BACK, FAILED}),
    FAILED: frozenset({APPLIED, ROLLED_BACK, PLANNED}),
    CUT_OVER: frozenset(),
    ROLLED_BACK: frozenset(),
}
FINAL_STATES: Final[frozenset[str]] = frozenset({CUT_OVER, ROLLED_BACK})
# States that keep a subscription out of the planning pool ("not yet migrated" excludes them).
LIVE_STATES: Final[frozenset[str]] = frozenset(SUBSCRIPTION_STATES) - {ROLLED_BACK}

# A batch's status summarizes its subscriptions, so forward moves are lenient (a resumed
# or repeated step); what matters is guarded: applying needs an open gate (checked by the
# ledger), cut_over only from verified, cut_over and rolled_back are final.
BATCH_TRANSITIONS: Final[Mapping[str, frozenset[str]]] = {
    PLANNED: frozenset({PLANNED, GATED, FAILED, ROLLED_BACK}),
    GATED: frozenset({GATED, PLANNED, APPLYING, FAILED, ROLLED_BACK}),
    APPLYING: frozenset({APPLYING, APPLIED, VERIFIED, FAILED, ROLLED_BACK}),
    APPLIED: frozenset({APPLIED, APPLYING, VERIFIED, FAILED, ROLLED_BACK}),
    VERIFIED: frozenset({VERIFIED, APPLYING, CUT_OVER, FAILED, ROLLED_BACK}),
    FAILED: frozenset({FAILED, PLANNED, GATED, APPLYING, APPLIED, VERIFIED, ROLLED_BACK}),
    CUT_OVER: frozenset(),
    ROLLED_BACK: frozenset(),
}
# Batch statuses in which a gate may be (re)recorded.
GATEABLE: Final[frozenset[str]] = frozenset({PLANNED, GATED, FAILED})

# The audit-log verb of a move to each state (batch statuses and subscription states).
ACTIONS: Final[Mapping[str, str]] = {
    PLANNED: "retry",
    GATED: "gate",
    APPLYING: "apply",
    APPLIED: "apply",
    VERIFIED: "verify",
    CUT_OVER: "cutover",
    FAILED: "fail",
    ROLLED_BACK: "rollback",
}

# How far along a subscription is, to find the ones behind their batch's status.
PROGRESS: Final[Mapping[str, int]] = {PLANNED: 0, APPLIED: 1, VERIFIED: 2, CUT_OVER: 3}
# The subscription state a batch in each status expects of all its subscriptions.
EXPECTED_STATE: Final[Mapping[str, str]] = {
    APPLYING: APPLIED,
    APPLIED: APPLIED,
    VERIFIED: VERIFIED,
    CUT_OVER: CUT_OVER,
}


def allowed(from_state: str, to_state: str) -> bool:
    """True when the transition table lets a subscription move from ``from_state`` to ``to_state``."""
    return to_state in TRANSITIONS.get(from_state, frozenset())


def sources(to_state: str) -> frozenset[str]:
    """The states a subscription may move to ``to_state`` from."""
    return frozenset(s for s, targets in TRANSITIONS.items() if to_state in targets)


def batch_allowed(from_status: str, to_status: str) -> bool:
    """True when a batch may move from ``from_status`` to ``to_status``."""
    return to_status in BATCH_TRANSITIONS.get(from_status, frozenset())
