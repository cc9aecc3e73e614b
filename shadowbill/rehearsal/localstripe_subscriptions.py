"""The localstripe adapter's subscription routes: subscriptions with several items, schedules,
and invoice previews mapped onto localstripe's upcoming invoice."""

from __future__ import annotations

import secrets
import time
from typing import Any

from aiohttp import web

from shadowbill.rehearsal.localstripe_catalog import CatalogRoutes
from shadowbill.rehearsal.localstripe_wire import (
    AdapterError,
    Handler,
    _bool,
    _check_known,
    _int,
    _matches,
    _paginate,
    _rand,
    _unsupported,
    parse_search,
)


def _billing_mode(value: Any) -> dict[str, Any]:
    """The subscription's ``billing_mode`` as Stripe returns it (default: flexible, as from
    API 2025-09-30.clover). localstripe computes no proration, so the mode changes no amount
    it bills; it is kept and echoed."""
    mode = dict(value) if isinstance(value, dict) else {}
    kind = str(mode.get("type", "flexible"))
    if kind not in ("classic", "flexible"):
        raise AdapterError(400, f"Invalid billing_mode[type]: {kind}", "parameter_invalid")
    return {"type": kind}


def _automatic_tax(value: Any) -> dict[str, Any]:
    """``automatic_tax`` as Stripe returns it; localstripe computes no automatic tax, so an
    enabled one is echoed and its previews carry no tax for it."""
    enabled = _bool(value.get("enabled")) if isinstance(value, dict) else False
    return {"enabled": enabled, "liability": {"type": "self"} if enabled else None}


class SubscriptionRoutes(CatalogRoutes):
    """Subscriptions, schedules, previews and searches (a part of the adapter)."""

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
            "billing_mode",
            "automatic_tax",
        }
    )

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
                "billing_mode": x.get("billing_mode") or _billing_mode(None),
                "automatic_tax": x.get("automatic_tax") or _automatic_tax(None),
            }
        )
        if x.get("backdate_start_date") is not None:
            out["start_date"] = x["backdate_start_date"]
        return out

    def _sub(self, sub_id: str) -> Any:
        return self.R.Subscription._api_retrieve(sub_id)

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
        backdate = p.get("backdate_start_date")
        if backdate is not None:
            backdate = _int(backdate, "backdate_start_date")
            if backdate >= now:
                raise AdapterError(
                    400,
                    "backdate_start_date must be in the past.",
                    "parameter_invalid",
                    "backdate_start_date",
                )
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
            if backdate is not None:
                kwargs["backdate_start_date"] = backdate
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
            "days_until_due": (
                None
                if p.get("days_until_due") is None
                else _int(p["days_until_due"], "days_until_due")
            ),
            "metered_items": metered,
            "schedule": schedule,
            "billing_cycle_anchor": anchor,
            "backdate_start_date": backdate,
            "billing_mode": _billing_mode(p.get("billing_mode")),
            "automatic_tax": _automatic_tax(p.get("automatic_tax")),
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
                "billing_mode",
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
        for name in (
            "default_tax_rates",
            "discounts",
            "collection_method",
            "currency",
            "automatic_tax",
        ):
            value = first.get(name, settings.get(name))
            if value:
                sub_params[name] = value
        if p.get("billing_mode"):
            sub_params["billing_mode"] = p["billing_mode"]
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
