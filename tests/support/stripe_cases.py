"""Shared cases for the target tests: a recording HTTP client and realistic operation lists."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import stripe
from dateutil.relativedelta import relativedelta

from shadowbill.targets.model import Operation, ref

TEST_KEY = "sk_test_shadowbillTESTKEY0123456789"


@dataclass(frozen=True)
class Call:
    """One HTTP request the SDK sent (never its headers: they hold the key)."""

    method: str
    url: str
    body: str | None
    idempotency_key: str | None


class RecordingHTTPClient(stripe.RequestsClient):
    """The SDK's default HTTP client, recording every request it sends."""

    def __init__(self, timeout: float = 10.0) -> None:
        super().__init__(timeout=timeout)
        self.calls: list[Call] = []
        self.events: list[tuple[str, Any]] = []  # ("request", Call) or ("created", key)
        self.lock = threading.Lock()

    def request(self, method, url, headers, post_data=None):  # type: ignore[override]
        body = post_data.decode() if isinstance(post_data, bytes) else post_data
        call = Call(method.upper(), url, body, (headers or {}).get("Idempotency-Key"))
        with self.lock:
            self.calls.append(call)
            self.events.append(("request", call))
        return super().request(method, url, headers, post_data)

    def mark(self, what: str) -> None:
        """Record an event (e.g. an on_created call) in request order."""
        with self.lock:
            self.events.append(("created", what))


def anchor_in(days: int = 10) -> int:
    """A billing cycle anchor ``days`` from now, on a whole second."""
    return int(time.time()) + days * 86400


def one_month_after(ts: int) -> int:
    """``ts`` plus one calendar month, computed as localstripe does (local time)."""
    return int((datetime.fromtimestamp(ts) + relativedelta(months=1)).timestamp())


def catalog_ops(batch: str, uid: str) -> list[Operation]:
    """Products, a meter, per-unit, volume and metered prices, a coupon and a tax rate."""
    product = f"prod_{uid}"
    return [
        Operation(
            batch,
            f"product:{uid}",
            "product",
            {
                "id": product,
                "name": "Seats " + uid,
                "metadata": {"shadowbill_key": f"product:{uid}"},
            },
            {"id": product},
        ),
        Operation(
            batch,
            f"meter:{uid}",
            "meter",
            {
                "display_name": "AI resolutions",
                "event_name": f"ai_resolution_{uid}",
                "default_aggregation": {"formula": "sum"},
            },
            {"event_name": f"ai_resolution_{uid}"},
        ),
        Operation(
            batch,
            f"price:advanced_month_{uid}",
            "price",
            {
                "currency": "usd",
                "product": ref(f"product:{uid}"),
                "unit_amount": 3900,
                "recurring": {"interval": "month"},
                "lookup_key": f"advanced_month_{uid}",
                "tax_behavior": "exclusive",
                "metadata": {"shadowbill_price_id": "advanced_month"},
            },
            {"lookup_key": f"advanced_month_{uid}"},
            depends_on=(f"product:{uid}",),
        ),
        Operation(
            batch,
            f"price:addon_volume_{uid}",
            "price",
            {
                "currency": "usd",
                "product": ref(f"product:{uid}"),
                "billing_scheme": "tiered",
                "tiers_mode": "volume",
                "tiers": [
                    {"up_to": 10, "unit_amount": 500},
                    {"up_to": "inf", "unit_amount": 400, "flat_amount": 1000},
                ],
                "recurring": {"interval": "month"},
                "lookup_key": f"addon_volume_{uid}",
                "metadata": {"shadowbill_price_id": "addon_volume"},
            },
            {"lookup_key": f"addon_volume_{uid}"},
        ),
        Operation(
            batch,
            f"price:resolution_{uid}",
            "price",
            {
                "currency": "usd",
                "product": ref(f"product:{uid}"),
                "unit_amount_decimal": "99",
                "recurring": {
                    "interval": "month",
                    "usage_type": "metered",
                    "meter": ref(f"meter:{uid}"),
                },
                "lookup_key": f"resolution_{uid}",
                "metadata": {"shadowbill_price_id": "resolution"},
            },
            {"lookup_key": f"resolution_{uid}"},
        ),
        Operation(
            batch,
            f"coupon:loyal_{uid}",
            "coupon",
            {"id": f"loyal_{uid}", "percent_off": "12.5", "duration": "forever", "name": "Loyal"},
            {"id": f"loyal_{uid}"},
        ),
        Operation(
            batch,
            f"tax_rate:vat_{uid}",
            "tax_rate",
            {
                "display_name": "VAT",
                "percentage": "20",
                "inclusive": False,
                "country": "FR",
                "metadata": {"shadowbill_key": f"tax_rate:vat_{uid}"},
            },
            {"metadata.shadowbill_key": f"tax_rate:vat_{uid}"},
        ),
    ]


def customer_ops(
    batch: str, uid: str, n: int, *, anchor: int, schedule_every: int = 0
) -> list[Operation]:
    """Per legacy subscription: its customer and its subscription (or schedule)."""
    ops: list[Operation] = []
    for i in range(n):
        cus, sub = f"cus_{uid}_{i:03d}", f"sub_{uid}_{i:03d}"
        ckey, skey = f"customer:{cus}", f"subscription:{sub}"
        ops.append(
            Operation(
                batch,
                ckey,
                "customer",
                {
                    "name": f"Customer {i}",
                    "email": f"c{i}.{uid}@example.com",
                    "address": {"country": "FR"},
                    "tax_exempt": "none",
                    "metadata": {"shadowbill_key": ckey, "legacy_customer_id": cus},
                },
                {"metadata.shadowbill_key": ckey},
                customer_id=cus,
            )
        )
        items = [
            {"price": ref(f"price:advanced_month_{uid}"), "quantity": 3 + i % 4},
            {"price": ref(f"price:addon_volume_{uid}"), "quantity": 5 + 3 * (i % 3)},
            {"price": ref(f"price:resolution_{uid}")},
        ]
        if schedule_every and i % schedule_every == schedule_every - 1:
            skey = f"subscription_schedule:{sub}"
            ops.append(
                Operation(
                    batch,
                    skey,
                    "subscription_schedule",
                    {
                        "customer": ref(ckey),
                        "start_date": anchor,
                        "end_behavior": "release",
                        "default_settings": {
                            "collection_method": "send_invoice",
                            "invoice_settings": {"days_until_due": 30},
                        },
                        "phases": [
                            {
                                "items": items,
                                "end_date": anchor + 90 * 86400,
                                "default_tax_rates": [ref(f"tax_rate:vat_{uid}")],
                            },
                            {
                                "items": [
                                    {"price": ref(f"price:advanced_month_{uid}"), "quantity": 3}
                                ]
                            },
                        ],
                        "metadata": {"shadowbill_key": skey},
                    },
                    {"metadata.shadowbill_key": skey},
                    subscription_id=sub,
                    customer_id=cus,
                )
            )
            continue
        params: dict[str, Any] = {
            "customer": ref(ckey),
            "items": items,
            "billing_cycle_anchor": anchor,
            "proration_behavior": "none",
            "collection_method": "send_invoice",
            "days_until_due": 30,
            "default_tax_rates": [ref(f"tax_rate:vat_{uid}")],
            "metadata": {"shadowbill_key": skey, "legacy_subscription_id": sub},
        }
        if i % 2 == 0:
            params["discounts"] = [{"coupon": ref(f"coupon:loyal_{uid}")}]
        ops.append(
            Operation(
                batch,
                skey,
                "subscription",
                params,
                {"metadata.shadowbill_key": skey},
                subscription_id=sub,
                customer_id=cus,
            )
        )
    return ops
