"""The transition table, and the ledger following it under random sequences of moves."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings
from ledger_cases import FINGERPRINTS, plan_frame

from shadowbill.errors import ShadowbillError
from shadowbill.ledger import Ledger, LedgerError, TransitionError, open_ledger
from shadowbill.ledger import states as S


def test_the_table_covers_every_state_and_only_known_states():
    assert set(S.TRANSITIONS) == set(S.SUBSCRIPTION_STATES)
    for targets in S.TRANSITIONS.values():
        assert targets <= set(S.SUBSCRIPTION_STATES)
    assert set(S.BATCH_TRANSITIONS) == set(S.BATCH_STATUSES)
    for targets in S.BATCH_TRANSITIONS.values():
        assert targets <= set(S.BATCH_STATUSES)


def test_the_moves_the_issue_asks_for():
    assert S.TRANSITIONS["planned"] >= {"applied", "failed"}
    assert S.TRANSITIONS["applied"] == {"verified", "failed", "rolled_back"}
    assert S.TRANSITIONS["verified"] == {"cut_over", "rolled_back", "failed"}
    assert S.TRANSITIONS["failed"] == {"applied", "rolled_back", "planned"}
    assert S.TRANSITIONS["cut_over"] == frozenset()
    assert S.TRANSITIONS["rolled_back"] == frozenset()
    assert not S.allowed("cut_over", "rolled_back")
    assert not S.batch_allowed("cut_over", "rolled_back")
    assert S.sources("cut_over") == {"verified"}
    assert set(S.SUBSCRIPTION_STATES) - {"rolled_back"} == S.LIVE_STATES


def test_ledger_errors_are_shadowbill_errors():
    assert issubclass(TransitionError, LedgerError)
    assert issubclass(LedgerError, ShadowbillError)


@pytest.fixture(scope="module")
def memory_ledger() -> Iterator[Ledger]:
    """One in-memory ledger for all hypothesis examples (each example plans its own batch)."""
    with open_ledger("sqlite://", actor="hypothesis") as ledger:
        yield ledger


_batch_numbers = itertools.count()
SIZE = 4
moves = st.lists(
    st.tuples(
        st.lists(st.integers(0, SIZE - 1), min_size=1, max_size=SIZE, unique=True),
        st.sampled_from(S.SUBSCRIPTION_STATES),
    ),
    min_size=1,
    max_size=10,
)


@settings(max_examples=30, deadline=None)
@given(moves=moves)
def test_random_moves_follow_the_table_and_audit_each_move_once(memory_ledger, moves):
    ledger = memory_ledger
    n = next(_batch_numbers)
    ids = [f"h{n}_{i}" for i in range(SIZE)]
    batch = ledger.create_batch(1, plan_frame(ids), FINGERPRINTS)
    model = dict.fromkeys(ids, "planned")
    for picks, to_state in moves:
        chosen = [ids[i] for i in picks]
        before = len(ledger.log(batch))
        expect_ok = all(S.allowed(model[s], to_state) for s in chosen)
        if expect_ok:
            assert ledger.transition(batch, chosen, to_state) == len(chosen)
            for s in chosen:
                model[s] = to_state
            assert len(ledger.log(batch)) == before + len(chosen)
        else:
            with pytest.raises(TransitionError) as info:
                ledger.transition(batch, chosen, to_state)
            refused = next(s for s in chosen if not S.allowed(model[s], to_state))
            assert refused in str(info.value)
            assert model[refused] in str(info.value) and to_state in str(info.value)
            assert len(ledger.log(batch)) == before  # all or nothing
        stored = ledger.subscriptions(batch).set_index("subscription_id")["state"].to_dict()
        assert stored == model
        assert set(stored.values()) <= set(S.SUBSCRIPTION_STATES)
    log = ledger.log(batch)
    moved = log[log["subscription_id"].notna() & (log["action"] != "plan")]
    for row in moved.itertuples():
        assert S.allowed(row.from_state, row.to_state)


def test_batch_statuses_guard_what_matters():
    final = {"cut_over", "rolled_back"}
    for status, targets in S.BATCH_TRANSITIONS.items():
        if status in final:
            assert targets == frozenset()
        else:
            assert status in targets and "rolled_back" in targets and "failed" in targets
    assert {s for s, t in S.BATCH_TRANSITIONS.items() if "cut_over" in t} == {"verified"}
    assert not S.batch_allowed("planned", "applying")  # gate first
