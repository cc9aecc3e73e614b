"""StripeTarget.apply's scheduling without a server: what may start when, circles refused,
and a bug in an operation raised as itself (only the target's refusals are report lines)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import stripe

from shadowbill.targets.model import Operation, ref
from shadowbill.targets.stripe_api import StripeTarget, TargetError

KEY = "sk_test_schedulerTESTKEY0123456789"


class FakeCreates:
    """Stands in for the SDK's create calls: records the order, answers with an id."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.order: list[str] = []
        self.params: dict[str, dict[str, Any]] = {}
        self.refuse = refuse
        self._lock = threading.Lock()

    def creator(self, kind: str) -> Callable[..., Any]:
        def create(*, params: dict[str, Any], options: dict[str, Any]) -> dict[str, str]:
            name = str(params["name"])
            with self._lock:
                self.order.append(name)
                self.params[name] = params
            if name in self.refuse:
                raise stripe.InvalidRequestError(
                    "No such thing", "name", code="resource_missing", http_status=404
                )
            return {"id": f"{kind}_{name}"}

        return create


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[StripeTarget, FakeCreates]]:
    def make(refuse: frozenset[str] = frozenset()) -> tuple[StripeTarget, FakeCreates]:
        target = StripeTarget(KEY, base_url="http://127.0.0.1:9", concurrency=4)
        creates = FakeCreates(refuse)
        monkeypatch.setattr(target, "_find", lambda op, params: None)
        monkeypatch.setattr(target, "_creator", creates.creator)
        return target, creates

    return make


def _op(key: str, depends: tuple[str, ...] = (), **params: Any) -> Operation:
    return Operation("b1", key, "customer", {"name": key.split(":")[1], **params}, {}, depends)


def test_an_operation_starts_only_after_everything_it_refers_to(fake) -> None:
    target, creates = fake()
    ops = [
        _op("customer:d", description=ref("customer:c")),
        _op("customer:c", ("customer:b",)),
        _op("customer:b", description=ref("customer:a")),
        _op("customer:a"),
    ]
    report = target.apply(ops)
    assert report.ok
    assert creates.order == ["a", "b", "c", "d"]
    assert creates.params["d"]["description"] == "customer_c"  # the ref resolved to its id


def test_a_refused_operation_skips_what_depends_on_it_down_the_chain(fake) -> None:
    target, creates = fake(refuse=frozenset({"a"}))
    ops = [
        _op("customer:a"),
        _op("customer:b", ("customer:a",)),
        _op("customer:c", ("customer:b",)),
    ]
    report = target.apply([*ops, _op("customer:x")])
    assert set(report.created) == {"customer:x"}
    assert report.failed["customer:a"].code == "resource_missing"
    assert report.skipped == {
        "customer:b": "depends on customer:a, which failed",
        "customer:c": "depends on customer:b, which failed",
    }
    assert sorted(creates.order) == ["a", "x"]


def test_operations_in_a_circle_are_refused_before_any_request(fake) -> None:
    target, creates = fake()
    ops = [_op("customer:a", ("customer:b",)), _op("customer:b", ("customer:a",))]
    with pytest.raises(TargetError, match="circle"):
        target.apply(ops)
    assert creates.order == []


def test_a_bug_in_an_operation_is_raised_not_turned_into_a_report_line(
    fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    target, _ = fake()

    def buggy(op: Operation, params: Any) -> None:
        raise TypeError("a programming error, not the target's answer")

    monkeypatch.setattr(target, "_find", buggy)
    with pytest.raises(TypeError, match="programming error"):
        target.apply([_op("customer:a")])
