"""The localstripe adapter's catalog routes: prices on localstripe plans, billing meters, and
the objects localstripe keeps as they are (products, coupons, tax rates, customers, search)."""

from __future__ import annotations

import secrets
import time
from typing import Any

from aiohttp import web

from shadowbill.rehearsal.localstripe_wire import (
    ECHO,
    AdapterError,
    AdapterState,
    Handler,
    _bool,
    _check_known,
    _int,
    _paginate,
    _plan_amounts,
    _rand,
    _unsupported,
)


class CatalogRoutes(AdapterState):
    """Prices, meters and simple objects (a part of the adapter)."""

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
