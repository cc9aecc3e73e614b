"""localstripe on loopback, with an adapter for the Stripe API calls shadowbill makes.

Run ONLY as its own process::

    python -m shadowbill.rehearsal.localstripe_server --port 0

localstripe (https://github.com/adrienverge/localstripe, GPL-3.0) is imported here and
nowhere else in shadowbill; this module is a separate program that shadowbill talks to over
HTTP, as it talks to Stripe. It listens on 127.0.0.1 only (localstripe's own CLI binds every
interface) and prints ``READY http://127.0.0.1:<port>`` once it accepts connections.

localstripe speaks an older Stripe API (plans, one item per subscription). The adapter is
an aiohttp middleware in the same process, in front of localstripe's routes, that maps the
current API onto it. It never computes money: every amount in a preview is localstripe's.

What the adapter adds or maps:

- ``Idempotency-Key`` replay, as Stripe does: the first response (status and body) for a
  key is saved and returned again for the same key, with ``Idempotent-Replayed: true``; a
  key reused with other parameters gets a 400 ``idempotency_key_mismatch``; a key whose
  first request is still running gets a 409 ``idempotency_key_in_use`` (both of type
  ``idempotency_error``). Saved responses are kept for the server's lifetime (Stripe: 24 h).
- ``/v1/prices`` (create, retrieve, update, list incl. ``lookup_keys``) on localstripe
  plans: ``recurring.interval`` -> interval, ``unit_amount`` (or an integral
  ``unit_amount_decimal``) -> amount, tiers with an explicit ``flat_amount`` and
  ``unit_amount`` (0 when absent; localstripe fails without them). ``lookup_key``,
  ``tax_behavior`` and ``recurring.meter`` are kept by the adapter. Each of
  ``currency_options`` becomes a hidden localstripe plan in that currency, and a
  subscription in that currency is put on it (localstripe bills a plan in its own
  currency only). Metered prices may have fractional ``unit_amount_decimal`` (kept and
  echoed: localstripe never bills them).
- ``/v1/billing/meters`` (create, retrieve, list, deactivate), kept by the adapter.
- ``POST /v1/subscriptions`` with several items (localstripe holds one): the first
  licensed item creates the localstripe subscription, the others are added to it as
  localstripe subscription items, so localstripe's invoices bill every item.
  ``items[].price`` -> plan. A future ``billing_cycle_anchor`` with
  ``proration_behavior=none`` (or a ``trial_end``) starts localstripe's billing period at
  that date (its ``backdate_start_date``) without an invoice now; see "Differences".
  A ``backdate_start_date`` (it must be in the past) beside such an anchor is checked and
  returned as the subscription's ``start_date``, as Stripe does for a backdated
  subscription. ``billing_mode`` (default ``flexible``) and ``automatic_tax`` are kept
  and echoed.
- ``discounts: [{coupon}]`` (and the older ``coupon``) are checked and echoed on the
  subscription; item-level ``items[].discounts`` are accepted and ignored. localstripe
  applies no coupon to any invoice: previews carry no discount.
- ``/v1/subscription_schedules``: create makes the subscription of phase 1 and remembers
  the later phases (never applied: localstripe has no clock); retrieve, list, release,
  cancel.
- ``/v1/customers/search`` and ``/v1/subscriptions/search`` for ``metadata['k']:'v'``,
  ``email:'x'`` and ``status:'x'`` clauses joined by AND.
- ``POST /v1/invoices/create_preview`` -> localstripe's ``GET /v1/invoices/upcoming``, with
  each line's ``price`` (and the current API's ``pricing`` and ``parent`` shapes) filled in
  from the plan, and ``total_taxes`` from localstripe's tax amounts.
- Stripe parameters localstripe rejects but that change no amount it computes
  (``tax_exempt``, ``collection_method``, coupon ``name``/``applies_to``, tax rate
  ``country``/``tax_type``, product ``tax_code``/``unit_label`` ...) are kept by the adapter
  and echoed; parameters that would change an amount localstripe cannot compute
  (``transform_quantity``, a licensed price's fractional ``unit_amount_decimal``, one-time
  prices, prorating a stub period) are refused with a 400 that says so, never silently dropped.

Differences from Stripe that remain (previews from this server are NOT Stripe's):

- no discounts on any invoice; metered prices bill nothing (no usage line, no meter
  events); tax rates apply per line, rounded half up, whatever ``tax_exempt`` says;
- graduated tiers are billed wrong by localstripe 1.15 (every unit at the first tier's
  price, later flat amounts ignored); volume tiers are right;
- billing periods: raw localstripe ignores ``billing_cycle_anchor`` and starts the period
  when the subscription is created (and invoices the full price at once, failing without a
  payment method). With the adapter's mapping the subscription's period is
  [anchor, anchor + interval] and its upcoming invoice bills one full period of every
  licensed item, with the lines' period starting at the anchor, as Stripe's does after an
  anchor with ``proration_behavior=none``; the preview is dated at the end of that period
  (Stripe: at the anchor) and its ``period_start``/``period_end`` are that period (Stripe:
  the period before): read the lines' period. Without an anchor, localstripe's upcoming
  invoice repeats the current period instead of the next one;
- subscription schedules never move to a later phase; a schedule starting in the future
  gets its subscription at once;
- searches are immediately consistent (Stripe's are not);
- ``automatic_tax`` computes no tax (Stripe Tax would, from the customer's address);
  ``billing_mode`` changes nothing localstripe bills (it prorates nothing).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from shadowbill.rehearsal.localstripe_subscriptions import SubscriptionRoutes
from shadowbill.rehearsal.localstripe_wire import (
    AdapterError,
    Handler,
    _error,
    _Idem,
)


@dataclass
class Adapter(SubscriptionRoutes):
    """The adapter's request handlers in front of localstripe's routes (its state: :class:`AdapterState`)."""

    def __post_init__(self) -> None:
        r = self.routes

        def add(method: str, pattern: str, handler: Handler) -> None:
            r.append((method, re.compile("^" + pattern + "$"), handler))

        add("GET", "/__health", self.health)
        add("POST", "/v1/prices", self.create_price)
        add("GET", "/v1/prices", self.list_prices)
        add("GET", "/v1/prices/(?P<id>[^/]+)", self.get_price)
        add("POST", "/v1/prices/(?P<id>[^/]+)", self.update_price)
        add("POST", "/v1/billing/meters", self.create_meter)
        add("GET", "/v1/billing/meters", self.list_meters)
        add("GET", "/v1/billing/meters/(?P<id>[^/]+)", self.get_meter)
        add("POST", "/v1/billing/meters/(?P<id>[^/]+)/deactivate", self.deactivate_meter)
        add("POST", "/v1/products", self.create_simple("product"))
        add("POST", "/v1/coupons", self.create_simple("coupon"))
        add("POST", "/v1/tax_rates", self.create_simple("tax_rate"))
        add("POST", "/v1/customers", self.create_simple("customer"))
        add("GET", "/v1/tax_rates", self.list_tax_rates)
        add("GET", "/v1/customers/search", self.search("customer"))
        add("GET", "/v1/subscriptions/search", self.search("subscription"))
        for name in ("product", "coupon", "tax_rate", "customer"):
            add("GET", f"/v1/{name}s/(?P<id>[^/]+)", self.get_simple(name))
        add("POST", "/v1/subscriptions", self.create_subscription)
        add("GET", "/v1/subscriptions", self.list_subscriptions)
        add("GET", "/v1/subscriptions/(?P<id>[^/]+)", self.get_subscription)
        add("DELETE", "/v1/subscriptions/(?P<id>[^/]+)", self.cancel_subscription)
        add("POST", "/v1/subscription_schedules", self.create_schedule)
        add("GET", "/v1/subscription_schedules", self.list_schedules)
        add("GET", "/v1/subscription_schedules/(?P<id>[^/]+)", self.get_schedule)
        add("POST", "/v1/subscription_schedules/(?P<id>[^/]+)/cancel", self.cancel_schedule)
        add("POST", "/v1/subscription_schedules/(?P<id>[^/]+)/release", self.release_schedule)
        add("POST", "/v1/invoices/create_preview", self.create_preview)

    # -- plumbing -----------------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith(("/_config/", "/js.stripe.com/")):
            return await handler(request)
        if request.path != "/__health" and self.S.get_api_key(request) is None:
            return _error(401, "Invalid API Key provided", code="api_key_invalid")
        key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
        if not key:
            return await self.dispatch(request, handler)
        body = await request.read()
        fingerprint = hashlib.sha256(
            b"\x1f".join([request.method.encode(), request.path_qs.encode(), body])
        ).hexdigest()
        saved = self.idem.get(key)
        if saved is not None:
            if saved.fingerprint != fingerprint:
                return _error(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters "
                    "they were first used with.",
                    code="idempotency_key_mismatch",
                    kind="idempotency_error",
                )
            replay = web.Response(
                status=saved.status, body=saved.body, content_type=saved.content_type
            )
            replay.headers["Idempotent-Replayed"] = "true"
            replay.headers["Idempotency-Key"] = key
            return replay
        if key in self.inflight:
            return _error(
                409,
                "There is currently another in-progress request using this Idempotent Key.",
                code="idempotency_key_in_use",
                kind="idempotency_error",
            )
        self.inflight.add(key)
        try:
            resp = await self.dispatch(request, handler)
        finally:
            self.inflight.discard(key)
        if isinstance(resp, web.Response) and resp.status not in (401, 409, 429):
            raw = resp.body
            if isinstance(raw, bytes | bytearray):
                self.idem[key] = _Idem(
                    fingerprint, resp.status, bytes(raw), resp.content_type or "application/json"
                )
        resp.headers["Idempotency-Key"] = key
        return resp

    async def dispatch(self, request: web.Request, handler: Any) -> web.StreamResponse:
        for method, pattern, fn in self.routes:
            if method != request.method:
                continue
            m = pattern.match(request.path)
            if m:
                try:
                    return await fn(request, m.groupdict())
                except AdapterError as e:
                    return _error(e.status, e.message, code=e.code, param=e.param)
                except self.R.UserError as e:
                    return e.to_response()
        return await handler(request)

    async def health(self, request: web.Request, _: dict[str, str]) -> web.StreamResponse:
        return web.json_response({"ok": True, "pid": os.getpid()})


def build_app() -> web.Application:
    """localstripe's aiohttp app with the adapter in front, and nothing written to disk."""
    from localstripe import resources, server  # GPL-3.0: imported only in this process

    # localstripe pickles its whole store to /tmp/localstripe.pickle after every write
    # (quadratic, and shared between processes): keep the store in memory only.
    resources.Store.dump_to_disk = lambda self: None
    adapter = Adapter(resources, server)
    app: web.Application = server.app
    app.middlewares.insert(0, adapter.middleware)
    app["shadowbill_adapter"] = adapter
    return app


def _watch_stdin() -> None:
    """Stop when the parent closes our stdin (it exited): no orphan servers."""
    try:
        sys.stdin.buffer.read()
    finally:
        os._exit(0)


def main(argv: list[str] | None = None) -> None:
    """Serve localstripe and the adapter on 127.0.0.1 until stopped."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    parser.add_argument("--access-log", action="store_true")
    args = parser.parse_args(argv)
    app = build_app()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))  # loopback only, never 0.0.0.0
    sock.listen(128)
    if args.exit_on_stdin_eof:
        threading.Thread(target=_watch_stdin, daemon=True).start()
    # All state is in memory and disposable: stop at once on SIGTERM/SIGINT.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    print(f"READY http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    access_log = None
    if args.access_log:
        import logging

        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        access_log = logging.getLogger("aiohttp.access")
    web.run_app(
        app,
        sock=sock,
        print=None,
        access_log=access_log,
        handle_signals=False,
        shutdown_timeout=0.5,
    )


if __name__ == "__main__":
    main()
