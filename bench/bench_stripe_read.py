"""Requests and time to read a Stripe account back (``extract --source stripe:``).

    python bench/bench_stripe_read.py --customers 2000

Starts the local Stripe-compatible server (the ``rehearsal`` extra), creates N customers
with one subscription each (one issued invoice each), reads the account back with
``extract_stripe`` and prints the requests per kind, the invoices per request and the time
the same reads would take at Stripe's documented read rate limits (docs.stripe.com/rate-limits).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import stripe

from shadowbill.extract.stripe_source import extract_stripe, stripe_client
from shadowbill.rehearsal.local_server import start_localstripe


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=2000)
    opts = parser.parse_args()
    os.environ["STRIPE_API_KEY"] = "sk_test_benchREADKEY000000"
    with start_localstripe() as server:
        client = stripe.StripeClient(
            os.environ["STRIPE_API_KEY"], base_addresses={"api": server.url}
        )
        product = client.v1.products.create(params={"name": "Seats"})
        price = client.v1.prices.create(
            params={
                "product": product.id,
                "currency": "usd",
                "unit_amount": 1500,
                "recurring": {"interval": "month"},
                "metadata": {"shadowbill_price_id": "seat_month"},
            }
        )
        started = time.perf_counter()
        for i in range(opts.customers):
            cus = client.v1.customers.create(
                params={
                    "name": f"C{i}",
                    "address": {"country": "US"},
                    "metadata": {"legacy_customer_id": f"C{i}"},
                }
            )
            client.v1.subscriptions.create(
                params={
                    "customer": cus.id,
                    "items": [{"price": price.id, "quantity": 1 + i % 7}],
                    "collection_method": "send_invoice",
                    "days_until_due": 30,
                    "metadata": {"legacy_subscription_id": f"S{i}"},
                }
            )
        print(
            f"created {opts.customers} customers and subscriptions in {time.perf_counter() - started:.1f} s"
        )
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            _, stats = extract_stripe(
                Path(tmp) / "snap", client=stripe_client(server.url), rate=1000
            )
            elapsed = time.perf_counter() - started
    invoices = stats.objects.get("invoices", 0)
    print(f"read back in {elapsed:.1f} s: {stats.total_requests} requests")
    for kind in sorted(stats.requests):
        print(
            f"  {kind:<14} {stats.requests[kind]:>5} requests, {stats.objects.get(kind, 0):>6} objects"
        )
    print(f"invoices per request (all requests): {invoices / stats.total_requests:.1f}")
    per_invoice = stats.total_requests / max(invoices, 1)
    for rate in (100, 25):
        print(f"1M invoices at {rate} reads/s: {1_000_000 * per_invoice / rate / 60:.1f} min")


if __name__ == "__main__":
    main()
