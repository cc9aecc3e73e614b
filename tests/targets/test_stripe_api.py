"""StripeTarget against the real localstripe process (with the adapter): create, reuse, refs,
failures, rollback, previews, and the API key never leaking."""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest
import stripe
from stripe_cases import TEST_KEY, RecordingHTTPClient, anchor_in, one_month_after

from shadowbill.errors import ShadowbillError
from shadowbill.reconcile.compare_c import compare_cutover
from shadowbill.rehearsal.local_server import LocalServer
from shadowbill.targets.model import Operation, ref
from shadowbill.targets.previews import preview_frames
from shadowbill.targets.stripe_api import (
    API_KEY_ENV,
    DEFAULT_RATE_LIMIT,
    MissingApiKeyError,
    StripeTarget,
    TargetRequestError,
)

pytestmark = pytest.mark.server


def _raw(localstripe: LocalServer) -> stripe.StripeClient:
    return stripe.StripeClient(TEST_KEY, base_addresses={"api": localstripe.url})


def test_default_rate_limit_is_stripes_live_mode_limit() -> None:
    assert DEFAULT_RATE_LIMIT == 100.0


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    with pytest.raises(MissingApiKeyError, match=API_KEY_ENV) as info:
        StripeTarget()
    assert isinstance(info.value, ShadowbillError)


def test_key_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, localstripe: LocalServer
) -> None:
    monkeypatch.setenv(API_KEY_ENV, TEST_KEY)
    target = StripeTarget(base_url=localstripe.url)
    assert TEST_KEY not in repr(target)
    assert target.preview  # constructed without an explicit key


def test_apply_creates_everything_then_reuses_without_duplicates(
    target: StripeTarget,
    recorder: RecordingHTTPClient,
    localstripe: LocalServer,
    make_ops: Callable[..., list[Operation]],
    uid: str,
) -> None:
    ops = make_ops(uid, 5, schedule_every=5)
    seen: list[tuple[str, str]] = []

    def on_created(op: Operation, target_id: str) -> None:
        recorder.mark(op.key)
        seen.append((op.key, target_id))

    progress: list[tuple[int, int]] = []
    first = target.apply(ops, on_created=on_created, progress=lambda d, t: progress.append((d, t)))
    assert first.ok, first.failed
    assert set(first.created) == {op.key for op in ops}
    assert dict(seen) == first.created
    assert progress[-1] == (len(ops), len(ops))

    # Every create carried the operation's own Idempotency-Key.
    creates = [c for c in recorder.calls if c.method == "POST" and c.idempotency_key]
    keys = {op.idempotency_key for op in ops}
    assert keys <= {c.idempotency_key for c in creates}

    # on_created(op, id) ran before any request that uses the id.
    created_at = {key: i for i, (kind, key) in enumerate(recorder.events) if kind == "created"}
    own_key = {op.key: op.idempotency_key for op in ops}
    for key, target_id in first.created.items():
        for i, (kind, call) in enumerate(recorder.events):
            if kind != "request" or call.method != "POST" or call.idempotency_key == own_key[key]:
                continue
            if target_id in (call.body or ""):
                assert i > created_at[key], f"{call.url} used {key} before on_created"

    second = target.apply(ops)
    assert second.ok and not second.created
    assert second.reused == first.created

    third = target.apply(ops, known=first.created)
    assert third.requests == 0 and third.known == first.created

    # Count on the server: exactly one of each.
    raw = _raw(localstripe)
    for i in range(5):
        ckey = f"customer:cus_{uid}_{i:03d}"
        found = raw.v1.customers.search(params={"query": f"metadata['shadowbill_key']:'{ckey}'"})
        assert len(found.data) == 1
        subs = raw.v1.subscriptions.list(params={"customer": first.created[ckey], "status": "all"})
        assert len(subs.data) == 1
    prices = raw.v1.prices.list(params={"lookup_keys": [f"advanced_month_{uid}"]})
    assert len(prices.data) == 1
    meters = [m for m in raw.v1.billing.meters.list().data if m.event_name.endswith(uid)]
    assert len(meters) == 1


def test_refs_resolve_to_the_created_ids(
    target: StripeTarget,
    localstripe: LocalServer,
    make_ops: Callable[..., list[Operation]],
    uid: str,
) -> None:
    ops = make_ops(uid, 2)
    report = target.apply(ops)
    assert report.ok, report.failed
    raw = _raw(localstripe)
    sub = raw.v1.subscriptions.retrieve(report.created[f"subscription:sub_{uid}_000"])
    assert sub.customer == report.created[f"customer:cus_{uid}_000"]
    prices = {item["price"]["id"] for item in sub["items"]["data"]}
    assert report.created[f"price:advanced_month_{uid}"] in prices
    assert report.created[f"price:addon_volume_{uid}"] in prices
    assert sub["discounts"][0]["coupon"]["id"] == f"loyal_{uid}"
    price = raw.v1.prices.retrieve(report.created[f"price:resolution_{uid}"])
    assert price.recurring.meter == report.created[f"meter:{uid}"]


def test_failure_is_reported_and_dependents_skipped(target: StripeTarget, uid: str) -> None:
    b = f"batch_{uid}"
    ops = [
        Operation(b, "price:p", "price", {"currency": "usd", "product": "prod_missing_" + uid, "unit_amount": 100, "recurring": {"interval": "month"}}, {"lookup_key": "p_" + uid}),
        Operation(b, "customer:c", "customer", {"name": "C", "metadata": {"shadowbill_key": f"customer:c{uid}"}}, {"metadata.shadowbill_key": f"customer:c{uid}"}),
        Operation(b, "subscription:s", "subscription", {"customer": ref("customer:c"), "items": [{"price": ref("price:p")}]}, {"metadata.shadowbill_key": f"s{uid}"}),
        Operation(b, "subscription_schedule:t", "subscription_schedule", {"customer": ref("customer:c"), "phases": [{"items": [{"price": ref("price:p")}]}]}, depends_on=("subscription:s",)),
        Operation(b, "customer:d", "customer", {"name": "D", "metadata": {"shadowbill_key": ref("nowhere")}}),
    ]  # fmt: skip
    report = target.apply(ops)
    assert set(report.created) == {"customer:c"}
    assert report.failed["price:p"].http_status == 404
    assert report.failed["customer:d"].code == "unresolved_reference"
    assert "nowhere" in report.failed["customer:d"].message
    assert report.skipped == {
        "subscription:s": "depends on price:p, which failed",
        "subscription_schedule:t": "depends on price:p, which failed",
    }
    assert not report.ok


def test_conflicting_price_is_not_reused(target: StripeTarget, uid: str) -> None:
    b = f"batch_{uid}"
    base = {"currency": "usd", "product": ref("product:x"), "recurring": {"interval": "month"}, "lookup_key": f"lk_{uid}"}  # fmt: skip
    product = Operation(b, "product:x", "product", {"id": f"px_{uid}", "name": "X"}, {"id": f"px_{uid}"})  # fmt: skip
    first = target.apply([product, Operation(b, "price:a", "price", {**base, "unit_amount": 100}, {"lookup_key": f"lk_{uid}"})])  # fmt: skip
    assert first.ok
    changed = Operation(f"other_{uid}", "price:a", "price", {**base, "unit_amount": 120}, {"lookup_key": f"lk_{uid}"})  # fmt: skip
    report = target.apply([product, changed])
    assert report.failed["price:a"].code == "lookup_conflict"
    assert "unit_amount=100" in report.failed["price:a"].message


def test_api_key_never_appears_in_logs_errors_or_reports(
    localstripe: LocalServer,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    uid: str,
) -> None:
    secret = "sk_test_SECRET" + uid + "XYZ"
    bad = "notakey_SECRET" + uid  # localstripe answers 401 to keys not shaped like sk_
    stripe.log = "debug"
    caplog.set_level(logging.DEBUG)
    try:
        texts: list[str] = []
        for key in (secret, bad):
            target = StripeTarget(key, base_url=localstripe.url, max_retries=1)
            b = f"batch_{uid}"
            ops = [
                Operation(b, "price:p", "price", {"currency": "usd", "product": "prod_nope", "unit_amount": 1, "recurring": {"interval": "month"}}, {"lookup_key": "nope_" + uid}),
                Operation(b, "subscription:s", "subscription", {"customer": "cus_nope", "items": [{"price": ref("price:p")}]}),
            ]  # fmt: skip
            report = target.apply(ops)
            assert report.failed
            texts += [repr(report), report.summary(), repr(target), str(report.failed)]
            with pytest.raises(TargetRequestError) as info:
                target.preview("cus_nope", "sub_nope")
            texts += [str(info.value), repr(info.value)]
            removed = target.cancel_and_remove([("customer", "cus_nope")])
            texts.append(repr(removed))
    finally:
        stripe.log = None
    out = capsys.readouterr()
    texts += [caplog.text, out.out, out.err]
    assert any("401" in t or "Unauthorized" in t or "API Key" in t for t in texts)
    blob = "\n".join(texts)
    assert secret not in blob and bad not in blob
    assert "SECRET" + uid not in blob


def test_rollback_cancels_deletes_and_keeps_the_catalog(
    target: StripeTarget,
    localstripe: LocalServer,
    make_ops: Callable[..., list[Operation]],
    uid: str,
) -> None:
    ops = make_ops(uid, 3, schedule_every=3)
    report = target.apply(ops)
    assert report.ok, report.failed
    kinds = {op.key: op.kind for op in ops}
    objects = [(kinds[k], i) for k, i in report.created.items()]
    removed = target.cancel_and_remove(objects)
    assert removed.ok, removed.failed
    raw = _raw(localstripe)
    for key, target_id in report.created.items():
        kind = kinds[key]
        if kind == "subscription":
            assert raw.v1.subscriptions.retrieve(target_id).status == "canceled"
        elif kind == "subscription_schedule":
            sched = raw.v1.subscription_schedules.retrieve(target_id)
            assert sched.status == "canceled"
            assert raw.v1.subscriptions.retrieve(sched.subscription).status == "canceled"
        elif kind in ("customer", "coupon"):
            getter = raw.v1.customers if kind == "customer" else raw.v1.coupons
            with pytest.raises(stripe.InvalidRequestError):
                getter.retrieve(target_id)
        elif kind == "price":
            assert raw.v1.prices.retrieve(target_id).active is True
    assert {k for k, _ in removed.kept} == {"product", "meter", "price", "tax_rate"}

    again = target.cancel_and_remove(objects, deactivate_catalog=True)
    assert again.ok, again.failed
    assert {k for k, _ in again.deactivated} == {"product", "meter", "price", "tax_rate"}
    price_id = report.created[f"price:advanced_month_{uid}"]
    assert raw.v1.prices.retrieve(price_id).active is False
    assert raw.v1.billing.meters.retrieve(report.created[f"meter:{uid}"]).status == "inactive"

    # Re-applying after a rollback, under a new idempotency scope, creates fresh objects.
    customers = [op for op in ops if op.kind == "customer"]
    redo = target.apply(customers, idempotency_scope="after-rollback-1")
    assert redo.ok and set(redo.created) == {op.key for op in customers}
    assert not set(redo.created.values()) & set(report.created.values())


def test_rollback_of_unknown_kind_is_refused(target: StripeTarget) -> None:
    with pytest.raises(ShadowbillError, match="unknown kind"):
        target.cancel_and_remove([("invoice", "in_1")])


def test_duplicate_operation_keys_are_refused(target: StripeTarget, uid: str) -> None:
    op = Operation(uid, "customer:x", "customer", {"name": "x"})
    with pytest.raises(ShadowbillError, match="twice"):
        target.apply([op, op])


def test_preview_becomes_canonical_frames_that_compare_c_accepts(
    target: StripeTarget,
    recorder: RecordingHTTPClient,
    make_ops: Callable[..., list[Operation]],
    uid: str,
) -> None:
    anchor = anchor_in(12)
    ops = make_ops(uid, 2, anchor=anchor)
    report = target.apply(ops)
    assert report.ok, report.failed
    previews = []
    for i in range(2):
        sub, cus = f"sub_{uid}_{i:03d}", f"cus_{uid}_{i:03d}"
        preview = target.preview(
            report.created[f"customer:{cus}"], report.created[f"subscription:{sub}"]
        )
        previews.append((sub, cus, preview))
    calls = [c for c in recorder.calls if "create_preview" in c.url]
    assert calls and all(c.method == "POST" for c in calls)
    assert parse_qs(calls[0].body or "")["subscription"]

    invoices, lines = preview_frames(previews)
    start = pd.Timestamp(anchor, unit="s", tz="UTC")
    end = pd.Timestamp(one_month_after(anchor), unit="s", tz="UTC")
    assert list(invoices["subscription_id"]) == [f"sub_{uid}_000", f"sub_{uid}_001"]
    assert (invoices["period_start"] == start).all() and (invoices["period_end"] == end).all()
    # Sub 0: 3 seats x 39.00 + 5 add-ons (volume tier 1: 5.00); sub 1: 4 x 39.00 + 8 x 5.00.
    assert list(invoices["subtotal"]) == [3 * 3900 + 5 * 500, 4 * 3900 + 8 * 500]
    assert list(invoices["tax"]) == [(3 * 3900 + 5 * 500) // 5, (4 * 3900 + 8 * 500) // 5]
    assert list(invoices["discount"]) == [0, 0]  # localstripe applies no coupon
    assert set(lines["price_id"]) == {"advanced_month", "addon_volume"}
    assert set(lines["kind"]) == {"recurring"}
    seats = lines[lines["price_id"] == "advanced_month"]
    assert list(seats["unit_amount_decimal"]) == ["3900", "3900"]
    assert list(seats["quantity"]) == [3, 4]
    assert lines["unit_amount_decimal"][lines["price_id"] == "addon_volume"].isna().all()
    assert str(invoices["period_start"].dtype) == "datetime64[us, UTC]"
    assert invoices["total"].dtype == "int64" and str(lines["amount"].dtype) == "Int64"

    # The same invoices from the model side: comparison C finds nothing; change one, it does.
    model_inv = invoices.assign(invoice_id="m_" + invoices["subscription_id"])
    model_lines = lines.assign(invoice_id="m_" + lines["invoice_id"].map(
        dict(zip(invoices["invoice_id"], invoices["subscription_id"], strict=True))
    ))  # fmt: skip
    assert compare_cutover(model_inv, model_lines, invoices, lines).empty
    changed = model_lines.copy()
    changed.loc[changed.index[0], "amount"] = int(changed["amount"].iloc[0]) + 100
    found = compare_cutover(model_inv, changed, invoices, lines)
    assert (found["level"] == "line").sum() == 1


def test_preview_of_unknown_subscription_is_a_typed_error(target: StripeTarget) -> None:
    with pytest.raises(TargetRequestError, match="sub_unknown"):
        target.preview("cus_unknown", "sub_unknown")


def test_base_url_is_used_for_every_request(
    target: StripeTarget, recorder: RecordingHTTPClient, localstripe: LocalServer, uid: str
) -> None:
    target.apply([Operation(uid, "customer:x", "customer", {"name": "x"})])
    assert recorder.calls
    assert all(urlsplit(c.url).netloc == urlsplit(localstripe.url).netloc for c in recorder.calls)


def test_a_failing_on_created_stops_the_apply(
    target: StripeTarget, recorder: RecordingHTTPClient, uid: str
) -> None:
    b = f"batch_{uid}"
    ops = [
        Operation(b, "customer:c", "customer", {"name": "c"}),
        Operation(b, "customer:d", "customer", {"name": "d", "description": ref("customer:c")}),
    ]
    seen: list[str] = []

    def ledger_down(op: Operation, target_id: str) -> None:
        seen.append(target_id)
        raise OSError("ledger unavailable")

    with pytest.raises(OSError, match="ledger unavailable"):
        target.apply(ops, on_created=ledger_down)
    assert not any("name=d" in (c.body or "") for c in recorder.calls)  # d never started
    again = target.apply(ops)
    assert again.ok
    assert again.created["customer:c"] == seen[0]  # same Idempotency-Key, same customer


@pytest.mark.parametrize("key", ["sk_test_abc123456789\n", "sk_test_abc\r\n", "sk_test_a\nb"])
def test_a_newline_in_the_key_is_named_not_a_connection_failure(
    monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    monkeypatch.setenv(API_KEY_ENV, key)
    with pytest.raises(MissingApiKeyError) as info:
        StripeTarget(base_url="http://127.0.0.1:9")
    message = str(info.value)
    assert message.startswith(f"{API_KEY_ENV} contains a newline") and "sk_test" not in message
