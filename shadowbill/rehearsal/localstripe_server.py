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
- searches are immediately consistent (Stripe's are not).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request, dict[str, str]], Awaitable[web.StreamResponse]]


def _rand(prefix: str) -> str:
    return prefix + secrets.token_hex(7)


def _error(
    status: int,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    kind: str = "invalid_request_error",
) -> web.Response:
    body: dict[str, Any] = {"type": kind, "message": message}
    if code:
        body["code"] = code
    if param:
        body["param"] = param
    if status >= 500:
        body["type"] = "api_error"
    return web.json_response({"error": body}, status=status)


class AdapterError(Exception):
    """A request the adapter refuses (turned into a Stripe-shaped error response)."""

    def __init__(
        self, status: int, message: str, code: str | None = None, param: str | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param


def _unsupported(what: str) -> AdapterError:
    return AdapterError(
        400, f"localstripe adapter: {what} is not supported", "parameter_unsupported"
    )


def _int(value: Any, name: str) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(str(value))
    except ValueError:
        raise AdapterError(
            400, f"Invalid integer: {value}", "parameter_invalid_integer", name
        ) from None


def _bool(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _integral(value: Any, name: str) -> int:
    """An ``*_decimal`` amount localstripe can hold: a whole number of minor units."""
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise AdapterError(400, f"Invalid decimal: {value}", "parameter_invalid", name) from None
    if d != d.to_integral_value():
        raise _unsupported(f"{name}={value} (a fraction of a minor unit)")
    return int(d)


def _plan_amounts(
    spec: dict[str, Any], scheme: str, metered: bool, where: str
) -> tuple[dict[str, Any], str | None]:
    """localstripe plan amounts of a price (or one of its currency options), and the exact
    ``unit_amount_decimal`` text when localstripe cannot hold it.

    A fraction of a minor unit is refused for licensed prices (localstripe would bill it
    wrong); metered prices are never billed by localstripe, so their exact decimals are
    only kept and echoed.
    """
    prefix = f"{where}" if where else ""

    def whole(value: Any, decimal: Any, name: str) -> tuple[int, str | None]:
        if value is not None:
            return _int(value, prefix + name), None
        if decimal is None:
            return 0, None
        if metered:
            try:
                d = Decimal(str(decimal))
            except InvalidOperation:
                raise AdapterError(
                    400, f"Invalid decimal: {decimal}", "parameter_invalid"
                ) from None
            return (int(d) if d == d.to_integral_value() else 0), f"{d.normalize():f}"
        return _integral(decimal, prefix + name + "_decimal"), None

    if scheme == "tiered":
        tiers = []
        for i, t in enumerate(spec.get("tiers") or []):
            unit, _ = whole(
                t.get("unit_amount"), t.get("unit_amount_decimal"), f"tiers[{i}][unit_amount]"
            )
            flat, _ = whole(
                t.get("flat_amount"), t.get("flat_amount_decimal"), f"tiers[{i}][flat_amount]"
            )
            tiers.append({"up_to": t.get("up_to"), "unit_amount": unit, "flat_amount": flat})
        return {"tiers": tiers}, None
    if spec.get("unit_amount") is None and spec.get("unit_amount_decimal") is None:
        raise AdapterError(
            400, "Missing required param: unit_amount.", "parameter_missing", prefix + "unit_amount"
        )
    amount, decimal = whole(spec.get("unit_amount"), spec.get("unit_amount_decimal"), "unit_amount")
    return {"amount": amount}, decimal


def _check_known(params: dict[str, Any], allowed: set[str], where: str) -> None:
    for name in params:
        if name not in allowed:
            raise AdapterError(
                400, f"Received unknown parameter: {name} ({where})", "parameter_unknown", name
            )


def _field(obj: Any, name: str) -> Any:
    """A field of an adapter dict or of a localstripe object."""
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _paginate(
    objs: list[Any],
    query: dict[str, Any],
    url: str,
    export: Callable[[Any], dict[str, Any]] = lambda x: x,
) -> dict[str, Any]:
    """One page of ``objs`` (exported only for the page: exporting is the costly part)."""
    limit = _int(query.get("limit", 10), "limit")
    start = 0
    after = query.get("starting_after")
    if after:
        for i, obj in enumerate(objs):
            if _field(obj, "id") == after:
                start = i + 1
                break
    page = [export(o) for o in objs[start : start + limit]]
    return {"object": "list", "data": page, "has_more": len(objs) > start + limit, "url": url}


_CLAUSE = re.compile(
    r"""\s*(?P<field>metadata\[\s*(?P<q1>['"])(?P<mkey>.*?)(?P=q1)\s*\]|[a-z_]+)\s*:\s*"""
    r"""(?P<q2>['"])(?P<value>(?:\\.|(?!(?P=q2)).)*)(?P=q2)\s*"""
)


def parse_search(query: str) -> list[tuple[str, str]]:
    """``metadata['k']:'v' AND email:'x'`` -> [("metadata.k", "v"), ("email", "x")]."""
    clauses: list[tuple[str, str]] = []
    for part in re.split(r"\s+AND\s+", query.strip()):
        m = _CLAUSE.fullmatch(part)
        if not m:
            raise _unsupported(f"search query {query!r} (only field:'value' clauses joined by AND)")
        value = re.sub(r"\\(.)", r"\1", m["value"])
        name = f"metadata.{m['mkey']}" if m["mkey"] is not None else m["field"]
        clauses.append((name, value))
    return clauses


def _matches(obj: Any, clauses: list[tuple[str, str]]) -> bool:
    for name, value in clauses:
        if name.startswith("metadata."):
            have = (_field(obj, "metadata") or {}).get(name[len("metadata.") :])
        else:
            have = _field(obj, name)
        if have is None or str(have) != value:
            return False
    return True


# Stripe parameters localstripe rejects that change no amount localstripe computes: kept
# by the adapter and echoed in the object.
ECHO: dict[str, frozenset[str]] = {
    "customer": frozenset({"tax_exempt", "test_clock"}),
    "product": frozenset({"tax_code", "unit_label", "images"}),
    "coupon": frozenset({"name", "applies_to", "max_redemptions", "redeem_by"}),
    "tax_rate": frozenset({"country", "state", "tax_type"}),
}


@dataclass
class _Idem:
    fingerprint: str
    status: int
    body: bytes
    content_type: str


@dataclass
class Adapter:
    """State the adapter keeps beside localstripe's store, and its request handlers."""

    R: Any  # localstripe.resources
    S: Any  # localstripe.server
    price_extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    lookup_keys: dict[str, str] = field(default_factory=dict)  # lookup_key -> price id
    meters: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)  # object id -> echoed params
    sub_extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    schedules: dict[str, dict[str, Any]] = field(default_factory=dict)
    idem: dict[str, _Idem] = field(default_factory=dict)
    inflight: set[str] = field(default_factory=set)
    routes: list[tuple[str, re.Pattern[str], Handler]] = field(default_factory=list)

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

    async def params(self, request: web.Request) -> dict[str, Any]:
        if request.method == "GET":
            data = self.S.unflatten_data(request.query)
        else:
            data = await self.S.get_post_data(request)
            query = self.S.unflatten_data(request.query)
            data = {**(query or {}), **(data or {})}
        data = dict(data or {})
        data.pop("expand", None)
        return data

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

    # -- prices -------------------------------------------------------------------------

    def _plan(self, price_id: str) -> Any:
        return self.R.Plan._api_retrieve(price_id)

    def price_json(self, plan: Any) -> dict[str, Any]:
        x = self.price_extra.get(plan.id, {})
        if x.get("main"):  # a hidden per-currency plan stands for its price
            return self.price_json(self._plan(x["main"]))
        per_unit = plan.billing_scheme == "per_unit"
        decimal = x.get("unit_amount_decimal") or (str(plan.amount) if per_unit else None)
        tiers = None
        if plan.tiers:
            tiers = [
                {
                    "up_to": None if str(t["up_to"]) == "inf" else int(t["up_to"]),
                    "unit_amount": int(t["unit_amount"]),
                    "unit_amount_decimal": str(int(t["unit_amount"])),
                    "flat_amount": int(t["flat_amount"]),
                    "flat_amount_decimal": str(int(t["flat_amount"])),
                }
                for t in plan.tiers
            ]
        return {
            "id": plan.id,
            "object": "price",
            "active": bool(plan.active),
            "billing_scheme": plan.billing_scheme,
            "created": plan.created,
            "currency": plan.currency,
            "livemode": False,
            "lookup_key": x.get("lookup_key"),
            "metadata": dict(plan.metadata or {}),
            "nickname": plan.nickname,
            "product": plan.product,
            "recurring": {
                "interval": plan.interval,
                "interval_count": plan.interval_count,
                "usage_type": plan.usage_type,
                "meter": x.get("meter"),
                "trial_period_days": None,
            },
            "tax_behavior": x.get("tax_behavior", "unspecified"),
            "currency_options": x.get("currency_options"),
            "tiers_mode": plan.tiers_mode,
            "tiers": tiers,
            "transform_quantity": None,
            "type": "recurring",
            "unit_amount": plan.amount if per_unit else None,
            "unit_amount_decimal": decimal,
        }

    def unit_decimal(self, plan: Any) -> str | None:
        """The unit amount a line of ``plan`` bills (its currency's), in minor units."""
        x = self.price_extra.get(plan.id, {})
        if plan.billing_scheme != "per_unit":
            return None
        return x.get("unit_amount_decimal") or str(plan.amount)

    async def create_price(self, request: web.Request, _: dict[str, str]) -> web.StreamResponse:
        p = await self.params(request)
        _check_known(
            p,
            {
                "currency",
                "product",
                "product_data",
                "unit_amount",
                "unit_amount_decimal",
                "billing_scheme",
                "tiers_mode",
                "tiers",
                "recurring",
                "lookup_key",
                "transfer_lookup_key",
                "metadata",
                "nickname",
                "tax_behavior",
                "active",
                "transform_quantity",
                "custom_unit_amount",
                "currency_options",
            },
            "POST /v1/prices",
        )
        for name in ("transform_quantity", "custom_unit_amount"):
            if p.get(name):
                raise _unsupported(f"price {name}")
        recurring = p.get("recurring")
        if not isinstance(recurring, dict) or not recurring.get("interval"):
            raise _unsupported("a one-time price (localstripe has recurring plans only)")
        if not p.get("currency"):
            raise AdapterError(
                400, "Missing required param: currency.", "parameter_missing", "currency"
            )
        product = p.get("product")
        if product is None and isinstance(p.get("product_data"), dict):
            pd_ = dict(p["product_data"])
            pd_.pop("tax_code", None)
            pd_.pop("unit_label", None)
            product = self.R.Product(**pd_).id
        if not isinstance(product, str):
            raise AdapterError(
                400, "Missing required param: product.", "parameter_missing", "product"
            )
        scheme = p.get("billing_scheme", "per_unit")
        metered = recurring.get("usage_type", "licensed") == "metered"
        currency = str(p["currency"]).lower()
        kwargs: dict[str, Any] = {
            "id": _rand("price_"),
            "product": product,
            "currency": currency,
            "interval": recurring["interval"],
            "interval_count": _int(recurring.get("interval_count", 1), "recurring[interval_count]"),
            "usage_type": recurring.get("usage_type", "licensed"),
            "billing_scheme": scheme,
            "metadata": p.get("metadata") or {},
            "nickname": p.get("nickname"),
            "active": _bool(p.get("active", True)),
        }
        if scheme == "tiered":
            kwargs["tiers_mode"] = p.get("tiers_mode")
        options = p.get("currency_options") or {}
        if not isinstance(options, dict):
            raise AdapterError(400, "Invalid currency_options.", "parameter_invalid")
        amounts = {currency: _plan_amounts(p, scheme, metered, "")}
        for cur, option in options.items():
            if str(cur).lower() != currency:
                where = f"currency_options[{cur}]"
                amounts[str(cur).lower()] = _plan_amounts(option, scheme, metered, where)
        lookup_key = p.get("lookup_key")
        if (
            lookup_key
            and lookup_key in self.lookup_keys
            and not _bool(p.get("transfer_lookup_key"))
        ):
            raise AdapterError(
                400,
                f"A price (`{self.lookup_keys[lookup_key]}`) already uses that lookup key.",
                "lookup_key_in_use",
                "lookup_key",
            )
        plan = self.R.Plan(**kwargs, **amounts[currency][0])
        # One hidden localstripe plan per extra currency: localstripe bills a plan in its
        # own currency only; a subscription in that currency is put on that plan.
        plans = {currency: plan.id}
        for cur, (plan_amounts, decimal) in amounts.items():
            if cur == currency:
                continue
            hidden = self.R.Plan(
                **{**kwargs, "id": f"{plan.id}__{cur}", "currency": cur}, **plan_amounts
            )
            plans[cur] = hidden.id
            self.price_extra[hidden.id] = {"main": plan.id, "unit_amount_decimal": decimal}
        self.price_extra[plan.id] = {
            "lookup_key": lookup_key,
            "tax_behavior": p.get("tax_behavior", "unspecified"),
            "meter": recurring.get("meter"),
            "currency_options": options or None,
            "plans": plans,
            "unit_amount_decimal": amounts[currency][1],
        }
        if lookup_key:
            old = self.lookup_keys.get(lookup_key)
            if old:
                self.price_extra[old]["lookup_key"] = None
            self.lookup_keys[lookup_key] = plan.id
        return web.json_response(self.price_json(plan))

    async def get_price(self, request: web.Request, m: dict[str, str]) -> web.StreamResponse:
        return web.json_response(self.price_json(self._plan(m["id"])))

    async def update_price(self, request: web.Request, m: dict[str, str]) -> web.StreamResponse:
        plan = self._plan(m["id"])
        p = await self.params(request)
        _check_known(
            p, {"active", "metadata", "nickname", "lookup_key", "tax_behavior"}, "price update"
        )
        if "active" in p:
            plan.active = _bool(p["active"])
        if isinstance(p.get("metadata"), dict):
            plan.metadata = {**(plan.metadata or {}), **p["metadata"]}
        if "nickname" in p:
            plan.nickname = p["nickname"] or None
        return web.json_response(self.price_json(plan))

    async def list_prices(self, request: web.Request, _: dict[str, str]) -> web.StreamResponse:
        q = await self.params(request)
        keys = q.get("lookup_keys")
        if keys is not None:  # the index, not a scan: this is every price lookup
            wanted = keys if isinstance(keys, list) else [keys]
            ids = {self.lookup_keys[k] for k in wanted if k in self.lookup_keys}
            plans = [self._plan(i) for i in ids]
        else:
            plans = [
                v
                for k, v in self.R.store.items()
                if k.startswith("plan:") and not self.price_extra.get(v.id, {}).get("main")
            ]
        plans.sort(key=lambda p: (-p.created, p.id))
        out = [self.price_json(p) for p in plans]
        if "active" in q:
            out = [p for p in out if p["active"] == _bool(q["active"])]
        if q.get("product"):
            out = [p for p in out if p["product"] == q["product"]]
        if q.get("currency"):
            out = [p for p in out if p["currency"] == str(q["currency"]).lower()]
        return web.json_response(_paginate(out, q, "/v1/prices"))

    # -- meters -------------------------------------------------------------------------

    async def create_meter(self, request: web.Request, _: dict[str, str]) -> web.StreamResponse:
        p = await self.params(request)
        _check_known(
            p,
            {
                "display_name",
                "event_name",
                "default_aggregation",
                "customer_mapping",
                "value_settings",
                "event_time_window",
            },
            "POST /v1/billing/meters",
        )
        for name in ("display_name", "event_name"):
            if not p.get(name):
                raise AdapterError(
                    400, f"Missing required param: {name}.", "parameter_missing", name
                )
        formula = (p.get("default_aggregation") or {}).get("formula")
        if formula not in ("sum", "count", "last"):
            raise AdapterError(
                400,
                "Invalid default_aggregation[formula].",
                "parameter_invalid",
                "default_aggregation",
            )
        for m in self.meters.values():
            if m["event_name"] == p["event_name"] and m["status"] == "active":
                raise AdapterError(
                    400, "An active meter with this event_name already exists.", "parameter_invalid"
                )
        now = int(time.time())
        meter = {
            "id": _rand("mtr_"),
            "object": "billing.meter",
            "created": now,
            "updated": now,
            "livemode": False,
            "display_name": p["display_name"],
            "event_name": p["event_name"],
            "event_time_window": p.get("event_time_window"),
            "default_aggregation": {"formula": formula},
            "customer_mapping": p.get("customer_mapping")
            or {"event_payload_key": "stripe_customer_id", "type": "by_id"},
            "value_settings": p.get("value_settings") or {"event_payload_key": "value"},
            "status": "active",
            "status_transitions": {"deactivated_at": None},
        }
        self.meters[meter["id"]] = meter
        return web.json_response(meter)

    def _meter(self, meter_id: str) -> dict[str, Any]:
        if meter_id not in self.meters:
            raise AdapterError(
                404, f"No such billing.meter: '{meter_id}'", "resource_missing", "id"
            )
        return self.meters[meter_id]

    async def get_meter(self, request: web.Request, m: dict[str, str]) -> web.StreamResponse:
        return web.json_response(self._meter(m["id"]))

    async def list_meters(self, request: web.Request, _: dict[str, str]) -> web.StreamResponse:
        q = await self.params(request)
        out = sorted(self.meters.values(), key=lambda x: (-x["created"], x["id"]))
        if q.get("status"):
            out = [x for x in out if x["status"] == q["status"]]
        return web.json_response(_paginate(out, q, "/v1/billing/meters"))

    async def deactivate_meter(self, request: web.Request, m: dict[str, str]) -> web.StreamResponse:
        meter = self._meter(m["id"])
        meter["status"] = "inactive"
        meter["status_transitions"] = {"deactivated_at": int(time.time())}
        return web.json_response(meter)

    # -- customers, products, coupons, tax rates -----------------------------------------

    def _cls(self, name: str) -> Any:
        return {
            "customer": self.R.Customer,
            "product": self.R.Product,
            "coupon": self.R.Coupon,
            "tax_rate": self.R.TaxRate,
        }[name]

    def simple_json(self, obj: Any) -> dict[str, Any]:
        out = obj._export()
        out.update(self.extra.get(obj.id, {}))
        return out

    def create_simple(self, name: str) -> Handler:
        async def handler(request: web.Request, _: dict[str, str]) -> web.StreamResponse:
            p = await self.params(request)
            echo = {k: p.pop(k) for k in list(p) if k in ECHO[name]}
            if name == "coupon" and not p.get("id"):
                p["id"] = secrets.token_hex(4)
            obj = self._cls(name)._api_create(**p)
            self.extra[obj.id] = echo
            return web.json_response(self.simple_json(obj))

        return handler

    def get_simple(self, name: str) -> Handler:
        async def handler(request: web.Request, m: dict[str, str]) -> web.StreamResponse:
            return web.json_response(self.simple_json(self._cls(name)._api_retrieve(m["id"])))

        return handler

    async def list_tax_rates(self, request: web.Request, _: dict[str, str]) -> web.StreamResponse:
        q = await self.params(request)
        rates = [v for k, v in self.R.store.items() if k.startswith("tax_rate:")]
        rates.sort(key=lambda r: (-r.created, r.id))
        out = [self.simple_json(r) for r in rates]
        if "active" in q:
            out = [r for r in out if r["active"] == _bool(q["active"])]
        if "inclusive" in q:
            out = [r for r in out if r["inclusive"] == _bool(q["inclusive"])]
        return web.json_response(_paginate(out, q, "/v1/tax_rates"))

    def search(self, name: str) -> Handler:
        async def handler(request: web.Request, _: dict[str, str]) -> web.StreamResponse:
            q = await self.params(request)
            clauses = parse_search(str(q.get("query", "")))
            limit = _int(q.get("limit", 10), "limit")
            prefix = name + ":"
            objs = [v for k, v in self.R.store.items() if k.startswith(prefix)]
            found = [o for o in objs if _matches(o, clauses)]
            found.sort(key=lambda o: (-o.created, o.id))
            export = self.sub_json if name == "subscription" else self.simple_json
            return web.json_response(
                {
                    "object": "search_result",
                    "data": [export(o) for o in found[:limit]],
                    "has_more": len(found) > limit,
                    "next_page": None,
                    "url": f"/v1/{name}s/search",
                }
            )

        return handler

    # -- subscriptions ------------------------------------------------------------------

    def sub_json(self, sub: Any) -> dict[str, Any]:
        out = sub._export()
        x = self.sub_extra.get(sub.id, {})
        items = out.get("items", {}).get("data", [])
        for item in items:
            plan = item.get("plan") or {}
            if plan.get("id"):
                item["price"] = self.price_json(self._plan(plan["id"]))
        items.extend(x.get("metered_items", []))
        out["items"]["total_count"] = len(items)
        currency = items[0]["price"]["currency"] if items and "price" in items[0] else None
        out.update(
            {
                "currency": currency,
                "discounts": x.get("discounts", []),
                "collection_method": x.get("collection_method", "charge_automatically"),
                "days_until_due": x.get("days_until_due"),
                "schedule": x.get("schedule"),
                "billing_cycle_anchor": x.get("billing_cycle_anchor", out.get("start_date")),
            }
        )
        return out

    def _sub(self, sub_id: str) -> Any:
        return self.R.Subscription._api_retrieve(sub_id)

    SUB_PARAMS = frozenset(
        {
            "customer",
            "items",
            "metadata",
            "billing_cycle_anchor",
            "proration_behavior",
            "trial_end",
            "backdate_start_date",
            "default_tax_rates",
            "discounts",
            "coupon",
            "collection_method",
            "days_until_due",
            "payment_behavior",
            "currency",
            "description",
            "off_session",
            "cancel_at_period_end",
        }
    )

    def _create_sub(self, p: dict[str, Any], *, schedule: str | None = None) -> Any:
        _check_known(p, set(self.SUB_PARAMS), "POST /v1/subscriptions")
        customer = p.get("customer")
        if not isinstance(customer, str):
            raise AdapterError(
                400, "Missing required param: customer.", "parameter_missing", "customer"
            )
        cus = self.R.Customer._api_retrieve(customer)
        licensed: list[dict[str, Any]] = []
        metered: list[dict[str, Any]] = []
        for i, item in enumerate(p.get("items") or []):
            if item.get("price_data"):
                raise _unsupported(f"items[{i}][price_data]")
            price_id = item.get("price") or item.get("plan")
            if not isinstance(price_id, str):
                raise AdapterError(400, f"Missing items[{i}][price].", "parameter_missing", "items")
            plan = self._plan(price_id)
            wanted = str(p.get("currency") or plan.currency).lower()
            if wanted != plan.currency:
                hidden = self.price_extra.get(plan.id, {}).get("plans", {}).get(wanted)
                if hidden is None:
                    raise AdapterError(
                        400,
                        f"Price {plan.id} has no currency option for {wanted}.",
                        "parameter_invalid",
                        f"items[{i}][price]",
                    )
                plan = self._plan(hidden)
            entry = {
                "plan": plan.id,
                "quantity": _int(item.get("quantity", 1), f"items[{i}][quantity]"),
                "tax_rates": list(item.get("tax_rates") or []),
                "metadata": item.get("metadata"),
            }
            if plan.usage_type == "metered":
                metered.append(
                    {
                        "id": _rand("si_"),
                        "object": "subscription_item",
                        "price": self.price_json(plan),
                        "quantity": None,
                        "metadata": item.get("metadata") or {},
                        "note": "metered: localstripe bills no usage",
                    }
                )
            else:
                licensed.append(entry)
        if not licensed:
            raise _unsupported("a subscription without a licensed (non-metered) price")
        discounts = []
        for d in p.get("discounts") or []:
            if isinstance(d, dict) and d.get("coupon"):
                coupon = self.R.Coupon._api_retrieve(d["coupon"])
                discounts.append({"coupon": coupon._export(), "object": "discount"})
            elif d:
                raise _unsupported("discounts other than {coupon}")
        if p.get("coupon"):
            discounts.append(
                {"coupon": self.R.Coupon._api_retrieve(p["coupon"])._export(), "object": "discount"}
            )
        anchor = p.get("billing_cycle_anchor")
        trial_end = p.get("trial_end")
        now = int(time.time())
        if anchor is not None:
            anchor = _int(anchor, "billing_cycle_anchor")
            if anchor <= now:
                raise AdapterError(
                    400,
                    "billing_cycle_anchor must be in the future.",
                    "parameter_invalid",
                    "billing_cycle_anchor",
                )
            if p.get("proration_behavior", "create_prorations") != "none":
                raise _unsupported(
                    "prorating the period before billing_cycle_anchor (pass proration_behavior=none)"
                )
        elif trial_end is not None and str(trial_end) != "now":
            anchor = _int(trial_end, "trial_end")
        collection = p.get("collection_method", "charge_automatically")
        behaviour = p.get("payment_behavior", "allow_incomplete")
        kwargs: dict[str, Any] = {
            "customer": customer,
            "items": [dict(licensed[0])],
            "metadata": p.get("metadata") or {},
        }
        if p.get("default_tax_rates"):
            kwargs["default_tax_rates"] = list(p["default_tax_rates"])
        if anchor is not None:
            # localstripe's period starts at its start date: start it at the anchor, and
            # invoice nothing now (Stripe bills nothing before the anchor with proration none).
            kwargs.update(backdate_start_date=anchor, trial_end=anchor)
        else:
            if p.get("backdate_start_date") is not None:
                kwargs["backdate_start_date"] = _int(
                    p["backdate_start_date"], "backdate_start_date"
                )
            kwargs["trial_period_days"] = 0  # no invoice until every item is on it (below)
            if (
                collection == "charge_automatically"
                and behaviour not in ("default_incomplete",)
                and cus._get_default_payment_method_or_source() is None
            ):
                raise AdapterError(
                    400,
                    "This customer has no attached payment source or default payment method.",
                    "resource_missing",
                )
        sub = self.R.Subscription(**kwargs)
        for entry in licensed[1:]:
            sub.items._list.append(
                self.R.SubscriptionItem(
                    subscription=sub.id,
                    plan=entry["plan"],
                    quantity=entry["quantity"],
                    tax_rates=entry["tax_rates"],
                    metadata=entry["metadata"],
                )
            )
        if anchor is not None:
            sub.status = "trialing" if p.get("billing_cycle_anchor") is None else "active"
        else:
            sub.trial_period_days = None
            if collection == "send_invoice" or behaviour == "default_incomplete":
                pending = [
                    ii
                    for ii in self.R.InvoiceItem._api_list_all(
                        None, customer=customer, limit=99
                    )._list
                    if ii.invoice is None
                ]
                invoice = self.R.Invoice(
                    customer=customer,
                    subscription=sub.id,
                    items=pending + list(sub.items._list),
                    default_tax_rates=[tr.id for tr in (sub.default_tax_rates or [])],
                    date=sub.current_period_start,
                )
                invoice._finalize()
                sub.status = "active" if collection == "send_invoice" else "incomplete"
            else:
                sub._create_invoice()
        self.sub_extra[sub.id] = {
            "discounts": discounts,
            "collection_method": collection,
            "days_until_due": p.get("days_until_due"),
            "metered_items": metered,
            "schedule": schedule,
            "billing_cycle_anchor": anchor,
        }
        return sub

    async def create_subscription(
        self, request: web.Request, _: dict[str, str]
    ) -> web.StreamResponse:
        sub = self._create_sub(await self.params(request))
        return web.json_response(self.sub_json(sub))

    async def get_subscription(self, request: web.Request, m: dict[str, str]) -> web.StreamResponse:
        return web.json_response(self.sub_json(self._sub(m["id"])))

    async def cancel_subscription(
        self, request: web.Request, m: dict[str, str]
    ) -> web.StreamResponse:
        p = await self.params(request)
        _check_known(p, {"invoice_now", "prorate", "cancellation_details"}, "cancel subscription")
        sub = self._sub(m["id"])
        if sub.status == "canceled":
            raise AdapterError(400, "This subscription is already canceled.", "resource_missing")
        self.R.Subscription._api_delete(m["id"])
        return web.json_response(self.sub_json(sub))

    async def list_subscriptions(
        self, request: web.Request, _: dict[str, str]
    ) -> web.StreamResponse:
        q = await self.params(request)
        subs = [v for k, v in self.R.store.items() if k.startswith("subscription:")]
        status = q.get("status")
        if status is None:
            subs = [s for s in subs if s.status not in ("canceled", "incomplete_expired")]
        elif status != "all":
            subs = [s for s in subs if s.status == status]
        if q.get("customer"):
            subs = [s for s in subs if s.customer == q["customer"]]
        subs.sort(key=lambda s: (-s.created, s.id))
        return web.json_response(_paginate(subs, q, "/v1/subscriptions", self.sub_json))

    # -- subscription schedules -----------------------------------------------------------

    def _schedule(self, sched_id: str) -> dict[str, Any]:
        if sched_id not in self.schedules:
            raise AdapterError(
                404, f"No such subscription_schedule: '{sched_id}'", "resource_missing", "schedule"
            )
        return self.schedules[sched_id]

    async def create_schedule(self, request: web.Request, _: dict[str, str]) -> web.StreamResponse:
        p = await self.params(request)
        _check_known(
            p,
            {
                "customer",
                "start_date",
                "end_behavior",
                "phases",
                "metadata",
                "default_settings",
                "from_subscription",
            },
            "POST /v1/subscription_schedules",
        )
        if p.get("from_subscription"):
            raise _unsupported("from_subscription")
        phases = p.get("phases") or []
        if not phases:
            raise AdapterError(
                400, "Missing required param: phases.", "parameter_missing", "phases"
            )
        first = dict(phases[0])
        settings = p.get("default_settings") or {}
        sub_params: dict[str, Any] = {
            "customer": p.get("customer"),
            "items": first.get("items") or [],
            "metadata": first.get("metadata") or {},
        }
        for name in ("default_tax_rates", "discounts", "collection_method", "currency"):
            value = first.get(name, settings.get(name))
            if value:
                sub_params[name] = value
        start = p.get("start_date", "now")
        if str(start) != "now" and _int(start, "start_date") > int(time.time()):
            sub_params["trial_end"] = _int(start, "start_date")
        sched_id = _rand("sub_sched_")
        sub = self._create_sub(sub_params, schedule=sched_id)
        sched = {
            "id": sched_id,
            "object": "subscription_schedule",
            "created": int(time.time()),
            "customer": p.get("customer"),
            "subscription": sub.id,
            "status": "active",
            "end_behavior": p.get("end_behavior", "release"),
            "phases": phases,
            "default_settings": settings,
            "metadata": p.get("metadata") or {},
            "current_phase": {"start_date": sub.current_period_start, "end_date": None},
            "released_subscription": None,
            "released_at": None,
            "canceled_at": None,
            "livemode": False,
        }
        self.schedules[sched_id] = sched
        return web.json_response(sched)

    async def get_schedule(self, request: web.Request, m: dict[str, str]) -> web.StreamResponse:
        return web.json_response(self._schedule(m["id"]))

    async def list_schedules(self, request: web.Request, _: dict[str, str]) -> web.StreamResponse:
        q = await self.params(request)
        out = sorted(self.schedules.values(), key=lambda s: (-s["created"], s["id"]))
        if q.get("customer"):
            out = [s for s in out if s["customer"] == q["customer"]]
        return web.json_response(_paginate(out, q, "/v1/subscription_schedules"))

    async def cancel_schedule(self, request: web.Request, m: dict[str, str]) -> web.StreamResponse:
        sched = self._schedule(m["id"])
        if sched["status"] not in ("active", "not_started"):
            raise AdapterError(
                400, f"This schedule is {sched['status']}.", "schedule_unexpected_status"
            )
        if sched["subscription"]:
            self.R.Subscription._api_delete(sched["subscription"])
        sched.update(status="canceled", canceled_at=int(time.time()))
        return web.json_response(sched)

    async def release_schedule(self, request: web.Request, m: dict[str, str]) -> web.StreamResponse:
        sched = self._schedule(m["id"])
        if sched["status"] not in ("active", "not_started"):
            raise AdapterError(
                400, f"This schedule is {sched['status']}.", "schedule_unexpected_status"
            )
        sched.update(
            status="released",
            released_subscription=sched["subscription"],
            subscription=None,
            released_at=int(time.time()),
        )
        if sched["released_subscription"] in self.sub_extra:
            self.sub_extra[sched["released_subscription"]]["schedule"] = None
        return web.json_response(sched)

    # -- previews ---------------------------------------------------------------------

    async def create_preview(self, request: web.Request, _: dict[str, str]) -> web.StreamResponse:
        p = await self.params(request)
        _check_known(
            p, {"customer", "subscription", "schedule"}, "POST /v1/invoices/create_preview"
        )
        subscription = p.get("subscription")
        if p.get("schedule"):
            subscription = self._schedule(p["schedule"])["subscription"]
        if not subscription:
            raise _unsupported("a preview without subscription or schedule")
        customer = p.get("customer") or self._sub(subscription).customer
        # localstripe's GET /v1/invoices/upcoming: it computes every amount.
        invoice = self.R.Invoice._api_upcoming_invoice(customer=customer, subscription=subscription)
        out = invoice._export()
        out["id"] = "upcoming_" + secrets.token_hex(7)
        for line in out.get("lines", {}).get("data", []):
            plan = line.get("plan") or {}
            plan_obj = self._plan(plan["id"]) if plan.get("id") else None
            price = self.price_json(plan_obj) if plan_obj is not None else None
            line["price"] = price
            line["pricing"] = (
                {
                    "type": "price_details",
                    "price_details": {"price": price["id"], "product": price["product"]},
                    "unit_amount_decimal": self.unit_decimal(plan_obj),
                }
                if price
                else None
            )
            line["parent"] = {
                "type": "subscription_item_details",
                "subscription_item_details": {
                    "subscription": line.get("subscription"),
                    "subscription_item": line.get("subscription_item"),
                    "proration": bool(line.get("proration")),
                },
            }
        out["total_taxes"] = [
            {
                "amount": t["amount"],
                "tax_behavior": "inclusive" if t.get("inclusive") else "exclusive",
                "tax_rate_details": {"tax_rate": t.get("tax_rate")},
                "type": "tax_rate_details",
            }
            for t in out.get("total_tax_amounts") or []
        ]
        out["total_discount_amounts"] = []
        out["discounts"] = []
        return web.json_response(out)


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
