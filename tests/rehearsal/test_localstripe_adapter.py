"""The adapter in front of localstripe: what it maps, what it refuses, how localstripe bills.

These tests talk HTTP to the real server process, as the SDK does.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from stripe_cases import TEST_KEY, anchor_in, one_month_after

from shadowbill.rehearsal.local_server import LocalServer

pytestmark = pytest.mark.server
AUTH = {"Authorization": f"Bearer {TEST_KEY}"}


class Api:
    """A tiny form-encoding client for the local server."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()

    def post(self, path: str, data: dict[str, Any], key: str | None = None) -> requests.Response:
        headers = dict(AUTH)
        if key:
            headers["Idempotency-Key"] = key
        return self.session.post(self.url + path, data=data, headers=headers, timeout=10)

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.session.get(self.url + path, params=params, headers=AUTH, timeout=10)


@pytest.fixture
def api(localstripe: LocalServer) -> Api:
    return Api(localstripe.url)


def _product(api: Api, uid: str) -> str:
    r = api.post("/v1/products", {"id": f"prod_{uid}", "name": "P", "tax_code": "txcd_10000000"})
    assert r.status_code == 200, r.text
    assert r.json()["tax_code"] == "txcd_10000000"  # kept and echoed by the adapter
    return r.json()["id"]


def _price(api: Api, product: str, **extra: Any) -> dict[str, Any]:
    data = {"currency": "usd", "product": product, "recurring[interval]": "month", **extra}
    r = api.post("/v1/prices", data)
    assert r.status_code == 200, r.text
    return r.json()


def _customer(api: Api, uid: str) -> str:
    r = api.post("/v1/customers", {"name": "C", "metadata[shadowbill_key]": f"customer:{uid}"})
    assert r.status_code == 200, r.text
    return r.json()["id"]


def test_listens_on_loopback_only(localstripe: LocalServer) -> None:
    host, port = urlsplit(localstripe.url).hostname, urlsplit(localstripe.url).port
    assert host == "127.0.0.1"
    tcp = Path("/proc/net/tcp")
    if not tcp.exists():
        pytest.skip("no /proc/net/tcp on this system")
    listening = [
        line.split()[1]
        for line in tcp.read_text().splitlines()[1:]
        if line.split()[3] == "0A" and int(line.split()[1].split(":")[1], 16) == port
    ]
    assert listening == [f"0100007F:{port:04X}"]  # 127.0.0.1, not 0.0.0.0
    v6 = Path("/proc/net/tcp6")
    if v6.exists():
        assert not any(
            int(line.split()[1].split(":")[1], 16) == port and line.split()[3] == "0A"
            for line in v6.read_text().splitlines()[1:]
        )


def test_requests_without_a_secret_key_are_refused(api: Api) -> None:
    r = requests.get(api.url + "/v1/customers", timeout=5)
    assert r.status_code == 401
    r = requests.get(api.url + "/v1/prices", headers={"Authorization": "Bearer pk_x"}, timeout=5)
    assert r.status_code == 401


def test_prices_map_to_plans_with_lookup_keys(api: Api, uid: str) -> None:
    product = _product(api, uid)
    price = _price(
        api,
        product,
        unit_amount_decimal="3900",
        lookup_key=f"seat_{uid}",
        tax_behavior="exclusive",
        **{"metadata[shadowbill_price_id]": "seat"},
    )
    assert price["id"].startswith("price_") and price["object"] == "price"
    assert price["unit_amount"] == 3900 and price["unit_amount_decimal"] == "3900"
    assert price["recurring"]["interval"] == "month"
    found = api.get("/v1/prices", **{"lookup_keys[0]": f"seat_{uid}"}).json()["data"]
    assert [p["id"] for p in found] == [price["id"]]
    assert api.get(f"/v1/prices/{price['id']}").json()["lookup_key"] == f"seat_{uid}"
    # A lookup key belongs to one price unless transferred, as on Stripe.
    dup = api.post(
        "/v1/prices",
        {"currency": "usd", "product": product, "unit_amount": 1, "recurring[interval]": "month", "lookup_key": f"seat_{uid}"},
    )  # fmt: skip
    assert dup.status_code == 400 and "lookup key" in dup.json()["error"]["message"]
    moved = _price(api, product, unit_amount=4100, lookup_key=f"seat_{uid}", transfer_lookup_key="true")  # fmt: skip
    found = api.get("/v1/prices", **{"lookup_keys[0]": f"seat_{uid}"}).json()["data"]
    assert [p["id"] for p in found] == [moved["id"]]
    off = api.post(f"/v1/prices/{moved['id']}", {"active": "false"}).json()
    assert off["active"] is False


def test_tiers_without_flat_amount_work(api: Api, uid: str) -> None:
    product = _product(api, uid)
    price = _price(
        api,
        product,
        billing_scheme="tiered",
        tiers_mode="volume",
        **{"tiers[0][up_to]": "10", "tiers[0][unit_amount]": "500", "tiers[1][up_to]": "inf", "tiers[1][unit_amount]": "400"},
    )  # fmt: skip
    assert [t["flat_amount"] for t in price["tiers"]] == [0, 0]


def test_what_localstripe_cannot_bill_is_refused_not_dropped(api: Api, uid: str) -> None:
    product = _product(api, uid)
    base = {"currency": "usd", "product": product, "unit_amount": "100"}
    for extra, words in [
        ({"recurring[interval]": "month", "transform_quantity[divide_by]": "10", "transform_quantity[round]": "up"}, "transform_quantity"),
        ({"recurring[interval]": "month", "unit_amount_decimal": "0.5", "unit_amount": ""}, "fraction"),
        ({}, "one-time price"),
        ({"recurring[interval]": "month", "bogus": "1"}, "unknown parameter: bogus"),
    ]:  # fmt: skip
        data = {k: v for k, v in {**base, **extra}.items() if v != ""}
        r = api.post("/v1/prices", data)
        assert r.status_code == 400, (extra, r.text)
        assert words in r.json()["error"]["message"], r.json()


def test_idempotency_key_replays_the_first_response(api: Api, uid: str) -> None:
    body = {"name": "Once", "metadata[shadowbill_key]": f"customer:{uid}"}
    first = api.post("/v1/customers", body, key=f"idem-{uid}")
    again = api.post("/v1/customers", body, key=f"idem-{uid}")
    assert first.status_code == again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    other = api.post("/v1/customers", {**body, "name": "Twice"}, key=f"idem-{uid}")
    assert other.status_code == 400
    assert other.json()["error"]["code"] == "idempotency_key_mismatch"
    hits = api.get("/v1/customers/search", query=f"metadata['shadowbill_key']:'customer:{uid}'")
    assert len(hits.json()["data"]) == 1
    # Errors are replayed too, as Stripe does.
    bad = api.post("/v1/prices", {"currency": "usd"}, key=f"bad-{uid}")
    assert api.post("/v1/prices", {"currency": "usd"}, key=f"bad-{uid}").json() == bad.json()


def test_anchor_with_no_proration_bills_one_full_period_from_the_anchor(api: Api, uid: str) -> None:
    """What localstripe (through the adapter) does with a future billing_cycle_anchor."""
    product = _product(api, uid)
    seat = _price(api, product, unit_amount="3900")
    addon = _price(api, product, unit_amount="1500")
    customer = _customer(api, uid)
    anchor = anchor_in(9)
    created_before = int(time.time())
    r = api.post(
        "/v1/subscriptions",
        {
            "customer": customer,
            "items[0][price]": seat["id"],
            "items[0][quantity]": "3",
            "items[1][price]": addon["id"],
            "items[1][quantity]": "2",
            "billing_cycle_anchor": str(anchor),
            "proration_behavior": "none",
        },
    )
    assert r.status_code == 200, r.text
    sub = r.json()
    assert sub["status"] == "active"
    assert len(sub["items"]["data"]) == 2  # localstripe alone holds one item
    assert sub["current_period_start"] == anchor
    # Nothing billed now (no invoice, so no payment method needed).
    invoices = api.get("/v1/invoices", customer=customer).json()["data"]
    assert invoices == []
    preview = api.post(
        "/v1/invoices/create_preview", {"customer": customer, "subscription": sub["id"]}
    ).json()
    lines = preview["lines"]["data"]
    assert sorted(line["amount"] for line in lines) == [2 * 1500, 3 * 3900]  # full price
    assert all(line["period"]["start"] == anchor for line in lines)
    assert all(line["period"]["end"] == one_month_after(anchor) for line in lines)
    assert not any(line["proration"] for line in lines)
    assert preview["subtotal"] == preview["total"] == 3 * 3900 + 2 * 1500
    assert {line["price"]["id"] for line in lines} == {seat["id"], addon["id"]}
    # Differences from Stripe: localstripe dates the preview at the END of that period, and
    # the invoice's own period is the billed period (Stripe: the period before it).
    assert preview["date"] == one_month_after(anchor)
    assert preview["period_start"] == anchor
    assert preview["created"] >= created_before


def test_prorating_the_stub_period_is_refused(api: Api, uid: str) -> None:
    product = _product(api, uid)
    seat = _price(api, product, unit_amount="3900")
    customer = _customer(api, uid)
    r = api.post(
        "/v1/subscriptions",
        {"customer": customer, "items[0][price]": seat["id"], "billing_cycle_anchor": str(anchor_in(5))},
    )  # fmt: skip
    assert r.status_code == 400 and "proration_behavior=none" in r.json()["error"]["message"]


def test_without_anchor_and_payment_method_the_subscription_is_refused(api: Api, uid: str) -> None:
    product = _product(api, uid)
    seat = _price(api, product, unit_amount="3900")
    customer = _customer(api, uid)
    r = api.post("/v1/subscriptions", {"customer": customer, "items[0][price]": seat["id"]})
    assert r.status_code == 400 and "payment method" in r.json()["error"]["message"]
    assert api.get("/v1/subscriptions", customer=customer, status="all").json()["data"] == []
    # send_invoice collection needs none: invoiced now, for the current period.
    r = api.post(
        "/v1/subscriptions",
        {"customer": customer, "items[0][price]": seat["id"], "items[0][quantity]": "2", "collection_method": "send_invoice", "days_until_due": "30"},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    invoices = api.get("/v1/invoices", customer=customer).json()["data"]
    assert [i["total"] for i in invoices] == [7800]


def test_schedule_creates_phase_one_and_can_be_released_or_cancelled(api: Api, uid: str) -> None:
    product = _product(api, uid)
    seat = _price(api, product, unit_amount="3900")
    customer = _customer(api, uid)
    start = anchor_in(3)
    data = {
        "customer": customer,
        "start_date": str(start),
        "end_behavior": "release",
        "phases[0][items][0][price]": seat["id"],
        "phases[0][items][0][quantity]": "4",
        "phases[0][end_date]": str(start + 30 * 86400),
        "phases[1][items][0][price]": seat["id"],
        "phases[1][items][0][quantity]": "6",
        "metadata[shadowbill_key]": f"subscription_schedule:{uid}",
    }
    first = api.post("/v1/subscription_schedules", data).json()
    sub = api.get(f"/v1/subscriptions/{first['subscription']}").json()
    assert sub["items"]["data"][0]["quantity"] == 4 and sub["schedule"] == first["id"]
    assert sub["current_period_start"] == start
    listed = api.get("/v1/subscription_schedules", customer=customer).json()["data"]
    assert [s["id"] for s in listed] == [first["id"]]
    released = api.post(f"/v1/subscription_schedules/{first['id']}/release", {}).json()
    assert released["status"] == "released"
    assert released["released_subscription"] == sub["id"]
    again = api.post(f"/v1/subscription_schedules/{first['id']}/release", {})
    assert again.status_code == 400

    second = api.post("/v1/subscription_schedules", data).json()
    cancelled = api.post(f"/v1/subscription_schedules/{second['id']}/cancel", {}).json()
    assert cancelled["status"] == "canceled"
    assert api.get(f"/v1/subscriptions/{second['subscription']}").json()["status"] == "canceled"


def test_search_by_metadata(api: Api, uid: str) -> None:
    customer = _customer(api, uid)
    product = _product(api, uid)
    seat = _price(api, product, unit_amount="100")
    api.post(
        "/v1/subscriptions",
        {"customer": customer, "items[0][price]": seat["id"], "billing_cycle_anchor": str(anchor_in(2)), "proration_behavior": "none", "metadata[shadowbill_key]": f"subscription:{uid}"},
    )  # fmt: skip
    q = f"metadata['shadowbill_key']:'customer:{uid}'"
    assert [c["id"] for c in api.get("/v1/customers/search", query=q).json()["data"]] == [customer]
    q = f"metadata['shadowbill_key']:'subscription:{uid}' AND status:'active'"
    hits = api.get("/v1/subscriptions/search", query=q).json()["data"]
    assert len(hits) == 1 and hits[0]["customer"] == customer
    assert api.get("/v1/customers/search", query="name~'x'").status_code == 400


def test_meters_are_kept_by_the_adapter(api: Api, uid: str) -> None:
    body = {
        "display_name": "Res",
        "event_name": f"res_{uid}",
        "default_aggregation[formula]": "sum",
    }
    meter = api.post("/v1/billing/meters", body).json()
    assert meter["id"].startswith("mtr_") and meter["status"] == "active"
    assert api.post("/v1/billing/meters", body).status_code == 400  # event_name taken
    assert api.get(f"/v1/billing/meters/{meter['id']}").json()["event_name"] == f"res_{uid}"
    off = api.post(f"/v1/billing/meters/{meter['id']}/deactivate", {}).json()
    assert off["status"] == "inactive"


def test_discounts_are_kept_but_not_applied_by_localstripe(api: Api, uid: str) -> None:
    product = _product(api, uid)
    seat = _price(api, product, unit_amount="1000")
    customer = _customer(api, uid)
    coupon = api.post("/v1/coupons", {"id": f"c_{uid}", "percent_off": "50", "duration": "forever", "name": "Half"}).json()  # fmt: skip
    assert coupon["name"] == "Half"
    sub = api.post(
        "/v1/subscriptions",
        {"customer": customer, "items[0][price]": seat["id"], "billing_cycle_anchor": str(anchor_in(2)), "proration_behavior": "none", "discounts[0][coupon]": coupon["id"]},
    ).json()  # fmt: skip
    assert sub["discounts"][0]["coupon"]["id"] == coupon["id"]
    preview = api.post(
        "/v1/invoices/create_preview", {"customer": customer, "subscription": sub["id"]}
    ).json()
    assert preview["total"] == 1000  # Stripe would bill 500: localstripe has no discounts
    assert preview["total_discount_amounts"] == []


@pytest.mark.xfail(strict=True, reason="localstripe bills every unit at the first graduated tier")
def test_graduated_tiers_as_stripe_bills_them(api: Api, uid: str) -> None:
    product = _product(api, uid)
    price = _price(
        api,
        product,
        billing_scheme="tiered",
        tiers_mode="graduated",
        **{"tiers[0][up_to]": "10", "tiers[0][unit_amount]": "100", "tiers[1][up_to]": "inf", "tiers[1][unit_amount]": "50", "tiers[1][flat_amount]": "7"},
    )  # fmt: skip
    customer = _customer(api, uid)
    sub = api.post(
        "/v1/subscriptions",
        {"customer": customer, "items[0][price]": price["id"], "items[0][quantity]": "12", "billing_cycle_anchor": str(anchor_in(2)), "proration_behavior": "none"},
    ).json()  # fmt: skip
    preview = api.post(
        "/v1/invoices/create_preview", {"customer": customer, "subscription": sub["id"]}
    ).json()
    assert preview["subtotal"] == 10 * 100 + 2 * 50 + 7  # Stripe: 1107; localstripe: 1200
