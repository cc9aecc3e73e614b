"""Every request shadowbill sends is valid against Stripe's OpenAPI spec; the validator bites."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from stripe_cases import TEST_KEY, RecordingHTTPClient, anchor_in, catalog_ops

from shadowbill.errors import ContractError
from shadowbill.rehearsal.contract import (
    decode_form,
    match_path,
    spec_version,
    stripe_spec,
    validate_encoded,
    validate_request,
)
from shadowbill.rehearsal.local_server import LocalServer
from shadowbill.targets.api_version import STRIPE_API_VERSION
from shadowbill.targets.model import Operation, ref
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


class _VersionRecorder(RecordingHTTPClient):
    """Also records the Stripe-Version header of every request (never the key)."""

    def __init__(self) -> None:
        super().__init__()
        self.versions: set[str] = set()

    def request(self, method, url, headers, post_data=None):  # type: ignore[no-untyped-def, override]
        self.versions.add(str((headers or {}).get("Stripe-Version")))
        return super().request(method, url, headers, post_data)


@pytest.mark.server
def test_the_pinned_version_is_sent_and_its_spec_admits_every_new_parameter(
    localstripe: LocalServer, uid: str
) -> None:
    """billing_mode (docs.stripe.com/billing/subscriptions/billing-mode), collection_method and
    days_until_due (docs.stripe.com/billing/collection-method), automatic_tax
    (docs.stripe.com/billing/taxes/collect-taxes), backdate_start_date
    (docs.stripe.com/billing/subscriptions/backdating), an attached customer's address."""
    recorder = _VersionRecorder()
    target = StripeTarget(
        TEST_KEY, base_url=localstripe.url, rate_limit=1000.0, http_client=recorder
    )
    assert target.api_version == STRIPE_API_VERSION
    batch = f"v_{uid}"
    existing = target.client.v1.customers.create(params={"name": "Existing"})
    ops = [
        *catalog_ops(batch, uid),
        Operation(
            batch,
            "customer:E",
            "customer",
            {
                "address": {
                    "line1": "1 Main St",
                    "city": "Austin",
                    "postal_code": "78701",
                    "state": "TX",
                    "country": "US",
                }
            },
            {"attach": existing.id},
            customer_id="E",
        ),
        Operation(
            batch,
            "subscription:S",
            "subscription",
            {
                "customer": ref("customer:E"),
                "items": [{"price": ref(f"price:advanced_month_{uid}"), "quantity": 1}],
                "backdate_start_date": anchor_in(-20),
                "billing_cycle_anchor": anchor_in(10),
                "proration_behavior": "none",
                "collection_method": "send_invoice",
                "days_until_due": 30,
                "automatic_tax": {"enabled": True},
                "billing_mode": {"type": "classic"},
                "metadata": {"shadowbill_key": f"subscription:S{uid}"},
            },
            {"metadata.shadowbill_key": f"subscription:S{uid}"},
            subscription_id="S",
            customer_id="E",
        ),
    ]
    report = target.apply(ops)
    assert report.ok, report.failed
    sub = target.client.v1.subscriptions.retrieve(report.ids["subscription:S"]).to_dict()
    assert (sub["collection_method"], sub["days_until_due"]) == ("send_invoice", 30)
    assert sub["billing_mode"]["type"] == "classic" and sub["automatic_tax"]["enabled"]
    assert recorder.versions == {STRIPE_API_VERSION}
    problems = [
        p
        for c in recorder.calls
        for p in validate_encoded(c.method, c.url, c.body, api_version=STRIPE_API_VERSION)
    ]
    assert problems == []


def test_a_pinned_version_without_its_spec_is_named() -> None:
    with pytest.raises(ContractError, match="not the pinned 2020-01-01"):
        stripe_spec("2020-01-01")
    assert spec_version() == STRIPE_API_VERSION
