"""Every request shadowbill sends is valid against Stripe's OpenAPI spec; the validator bites."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from stripe_cases import RecordingHTTPClient

from shadowbill.rehearsal.contract import (
    decode_form,
    match_path,
    validate_encoded,
    validate_request,
)
from shadowbill.targets.model import Operation
from shadowbill.targets.stripe_api import StripeTarget


def test_paths_match_templates_preferring_literal_segments() -> None:
    assert match_path("/v1/customers") == "/v1/customers"
    assert match_path("/v1/customers/cus_123") == "/v1/customers/{customer}"
    assert match_path("/v1/customers/search") == "/v1/customers/search"
    assert match_path("/v1/invoices/create_preview") == "/v1/invoices/create_preview"
    assert match_path("/v1/nothing/here") is None


def test_decode_form_nests_keys_and_makes_lists() -> None:
    pairs = [
        ("items[0][price]", "price_1"),
        ("items[0][quantity]", "3"),
        ("items[1][price]", "price_2"),
        ("metadata[shadowbill_key]", "k"),
        ("expand[]", "a"),
        ("expand[]", "b"),
        ("discounts", ""),
    ]
    assert decode_form(pairs) == {
        "items": [{"price": "price_1", "quantity": "3"}, {"price": "price_2"}],
        "metadata": {"shadowbill_key": "k"},
        "expand": ["a", "b"],
        "discounts": "",
    }


def test_valid_requests_pass() -> None:
    assert validate_request("POST", "/v1/customers", {"name": "A", "metadata": {"k": "v"}}) == []
    assert (
        validate_request(
            "POST",
            "/v1/subscriptions",
            {
                "customer": "cus_1",
                "items": [{"price": "price_1", "quantity": "2"}, {"price": "price_2"}],
                "billing_cycle_anchor": "1893456000",
                "proration_behavior": "none",
                "discounts": [{"coupon": "c"}],
                "default_tax_rates": ["txr_1"],
            },
        )
        == []
    )
    assert validate_encoded("GET", "/v1/prices?lookup_keys[0]=a&limit=1") == []
    assert (
        validate_encoded("DELETE", "/v1/subscriptions/sub_1?prorate=false&invoice_now=false") == []
    )
    assert validate_request("POST", "/v1/customers", {"address": ""}) == []  # "" unsets


def test_unknown_parameter_is_reported() -> None:
    problems = validate_request("POST", "/v1/customers", {"name": "A", "nmae": "typo"})
    assert problems == ["POST /v1/customers: unknown parameter nmae"]


def test_unknown_nested_parameter_is_reported() -> None:
    problems = validate_request(
        "POST", "/v1/subscriptions", {"customer": "cus_1", "items": [{"pricee": "p"}]}
    )
    assert any("items[0]" in p and "pricee" in p for p in problems), problems


def test_bad_enum_is_reported() -> None:
    problems = validate_request(
        "POST", "/v1/prices", {"currency": "usd", "billing_scheme": "per_seat"}
    )
    assert any("billing_scheme" in p and "per_seat" in p for p in problems), problems


def test_missing_required_is_reported() -> None:
    problems = validate_request("POST", "/v1/prices", {"unit_amount": "100"})
    assert any("missing required parameter currency" in p for p in problems), problems
    assert validate_encoded("GET", "/v1/customers/search") == [
        "GET /v1/customers/search: missing required parameter query"
    ]


def test_bad_types_are_reported() -> None:
    assert validate_request("POST", "/v1/prices", {"currency": "usd", "unit_amount": "1.5"})
    assert validate_request("POST", "/v1/tax_rates", {"display_name": "x", "percentage": "lots", "inclusive": "false"})  # fmt: skip
    assert validate_request("POST", "/v1/tax_rates", {"display_name": "x", "percentage": "20", "inclusive": "maybe"})  # fmt: skip
    assert validate_request("POST", "/v1/customers", {"metadata": "not-an-object"})


def test_unknown_path_and_method_are_reported() -> None:
    assert validate_request("POST", "/v1/nothing", {}) == ["POST /v1/nothing: no such path in Stripe's API"]  # fmt: skip
    assert validate_request("PUT", "/v1/customers", {}) == [
        "PUT /v1/customers: /v1/customers has no PUT operation"
    ]


@pytest.mark.server
def test_every_request_of_a_full_run_meets_the_contract(
    target: StripeTarget,
    recorder: RecordingHTTPClient,
    make_ops: Callable[..., list[Operation]],
    uid: str,
) -> None:
    ops = make_ops(uid, 6, schedule_every=3)
    report = target.apply(ops)
    assert report.ok, report.failed
    assert target.apply(ops).ok  # the lookups of a rerun too
    kinds = {op.key: op.kind for op in ops}
    sub = next(op for op in ops if op.kind == "subscription")
    target.preview(report.created[f"customer:{sub.customer_id}"], report.created[sub.key])
    objects = [(kinds[k], i) for k, i in report.created.items()]
    assert target.cancel_and_remove(objects, deactivate_catalog=True).ok

    calls = recorder.calls
    assert len(calls) > 40
    seen = {(c.method, match_path(urlsplit(c.url).path)) for c in calls}
    assert ("POST", "/v1/subscription_schedules") in seen
    assert ("GET", "/v1/customers/search") in seen
    problems = [p for c in calls for p in validate_encoded(c.method, c.url, c.body)]
    assert problems == []
