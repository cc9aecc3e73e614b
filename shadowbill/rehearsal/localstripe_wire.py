"""What the localstripe adapter shares: Stripe-shaped errors, parameter checks, pagination,
search clauses, saved idempotent responses and the adapter's state (a part of
:mod:`shadowbill.rehearsal.localstripe_server`, run only in that process)."""

from __future__ import annotations

import re
import secrets
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
class AdapterState:
    """State the adapter keeps beside localstripe's store (its request handlers: :class:`~shadowbill.rehearsal.localstripe_server.Adapter`)."""

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

    async def params(self, request: web.Request) -> dict[str, Any]:
        """The request's parameters (query and form, unflattened), without ``expand``."""
        if request.method == "GET":
            data = self.S.unflatten_data(request.query)
        else:
            data = await self.S.get_post_data(request)
            query = self.S.unflatten_data(request.query)
            data = {**(query or {}), **(data or {})}
        data = dict(data or {})
        data.pop("expand", None)
        return data
