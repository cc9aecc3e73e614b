"""The Stripe API target: send a batch's operations through the official ``stripe`` SDK.

:class:`StripeTarget` creates (or finds and reuses) every object of an operation list, in
dependency order, concurrently where operations are independent, paced under Stripe's
documented rate limits (https://docs.stripe.com/rate-limits), retrying what Stripe says
is safe to retry (https://docs.stripe.com/error-low-level). Every create carries the
operation's deterministic Idempotency-Key, so a retry after a lost response, or a rerun
after a crash within Stripe's 24-hour idempotency window, returns the object already
created instead of a duplicate (https://docs.stripe.com/api/idempotent_requests).

Finding existing objects before creating them (so a rerun after the idempotency window,
or after the ledger was lost, duplicates nothing):

- ``{"id": ...}`` (products, coupons): retrieve by id;
- ``{"lookup_key": ...}`` (prices): ``prices.list(lookup_keys=[...])``; a price found with
  a different currency, amount or interval is reported as a conflict, never reused;
- ``{"metadata.shadowbill_key": ...}``: customers through the Search API (at most 20
  requests/s, eventually consistent: an object created seconds ago may not be found yet;
  the Idempotency-Key covers that window); subscriptions and subscription schedules by
  listing the (already resolved) customer's objects and matching the metadata, which is
  immediate and costs no search quota; tax rates and other kinds by listing;
- meters have no metadata on Stripe: found by their unique ``event_name``.

The API key is read from ``STRIPE_API_KEY`` (or given) and never appears in a log line, an
exception or a report: Stripe's error messages are scrubbed of anything shaped like a key.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from graphlib import CycleError, TopologicalSorter
from typing import Any, Final, cast

import stripe

from shadowbill.errors import (
    MissingApiKeyError,
    TargetError,
    TargetRequestError,
)
from shadowbill.targets.api_version import STRIPE_API_VERSION
from shadowbill.targets.apply_report import ApplyReport, OperationFailure, Outcome, RemoveReport
from shadowbill.targets.key_scrub import scrub_key
from shadowbill.targets.model import (
    ATTACHED_CUSTOMER,
    KIND_ORDER,
    ObjectKind,
    Operation,
    attached_customer_id,
    idempotency_key,
)
from shadowbill.targets.placeholders import refs, resolve
from shadowbill.targets.rate_limit import (
    STRIPE_LIVE_OPS_PER_SECOND,
    STRIPE_SEARCH_READS_PER_SECOND,
    TokenBucket,
)
from shadowbill.targets.retry import RetryPolicy

log = logging.getLogger(__name__)

API_KEY_ENV: Final = "STRIPE_API_KEY"
# Stripe's live-mode basic limit: 100 reads and 100 writes per second (docs.stripe.com/rate-limits).
DEFAULT_RATE_LIMIT: Final = STRIPE_LIVE_OPS_PER_SECOND
DEFAULT_CONCURRENCY: Final = 8
DEFAULT_MAX_RETRIES: Final = 6
DEFAULT_TIMEOUT: Final = 30.0
METADATA_KEY: Final = "shadowbill_key"


_GONE_STATUSES: Final = frozenset({"canceled", "incomplete_expired"})


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """A field of a StripeObject or a dict."""
    try:
        value = obj[name]
    except (KeyError, TypeError, IndexError):
        return default
    return default if value is None else value


def _search_literal(value: str) -> str:
    """A value quoted for Stripe's search query language."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class StripeTarget:
    """Create a batch's objects on Stripe (or a Stripe-compatible server) through the SDK."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        rate_limit: float = DEFAULT_RATE_LIMIT,
        concurrency: int = DEFAULT_CONCURRENCY,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: stripe.HTTPClient | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        search_rate_limit: float = STRIPE_SEARCH_READS_PER_SECOND,
        search_lookups: bool = True,
        retry_policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        api_version: str = STRIPE_API_VERSION,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV, "")
        if not key.strip():
            raise MissingApiKeyError(
                f"{API_KEY_ENV} is not set: export the Stripe secret key "
                "(sk_live_... or sk_test_...) before applying to Stripe"
            )
        if "\n" in key or "\r" in key:
            raise MissingApiKeyError(
                f"{API_KEY_ENV} contains a newline; set the key alone (a key read from a file "
                "or pasted with its line end carries one)"
            )
        if key != key.strip() or any(c.isspace() for c in key):
            raise MissingApiKeyError(f"{API_KEY_ENV} contains whitespace; set the key alone")
        if concurrency < 1:
            raise TargetError(f"concurrency must be at least 1, got {concurrency}")
        self._secret = key
        self.base_url = (base_url or stripe.DEFAULT_API_BASE).rstrip("/")
        self.concurrency = concurrency
        self.search_lookups = search_lookups
        self.api_version = api_version
        self._sleep = sleep
        self._policy = retry_policy or RetryPolicy(max_retries=max_retries)
        self.writes = TokenBucket(rate_limit)
        self.reads = TokenBucket(rate_limit)
        self.searches = TokenBucket(min(search_rate_limit, rate_limit))
        client = http_client if http_client is not None else stripe.RequestsClient(timeout=timeout)
        self.client = stripe.StripeClient(
            key,
            base_addresses={"api": self.base_url},
            http_client=client,
            max_network_retries=0,  # retries are ours: see shadowbill.targets.retry
            stripe_version=api_version,  # pinned: the arithmetic and params depend on it
        )
        self._count_lock = threading.Lock()
        self._requests = 0
        self._retries = 0

    def __repr__(self) -> str:
        return (
            f"StripeTarget(base_url={self.base_url!r}, concurrency={self.concurrency}, "
            f"api_version={self.api_version!r})"
        )

    # -- existing customers ---------------------------------------------------------------

    def retrieve_customer(self, customer_id: str) -> dict[str, Any] | None:
        """The customer as a dict, or None when it does not exist or was deleted."""
        found = self._retrieve("customer", customer_id)
        return None if found is None else cast(dict[str, Any], found.to_dict())

    def search_customers(self, query: str) -> list[dict[str, Any]]:
        """Every customer matching a Search API query, under the search rate limit (20/s)."""
        out: list[dict[str, Any]] = []
        params: dict[str, Any] = {"query": query, "limit": 100}
        while True:
            page = self._call(
                self.searches,
                "search customers",
                self.client.v1.customers.search,
                params=cast(Any, params),
            )
            data = list(_get(page, "data", []))
            out.extend(cast(dict[str, Any], c.to_dict()) for c in data)
            nxt = _get(page, "next_page")
            if not _get(page, "has_more", False) or not nxt or not data:
                return out
            params = {**params, "page": nxt}

    def _attach(self, op: Operation, params: Mapping[str, Any], customer_id: str) -> Outcome:
        """An existing customer the batch hangs its subscriptions on: never created, never
        changed but for an address it lacks (automatic tax needs one); its default payment
        method is left as it is."""
        found = self._retrieve("customer", customer_id)
        if found is None:
            return Outcome(
                op.key,
                failure=OperationFailure(
                    op.key,
                    op.kind,
                    f"customer {customer_id} (legacy {op.customer_id}) does not exist on the "
                    "target; fix the link (snapshot stripe_customer_id or the mapping file)",
                    "attach_missing",
                ),
            )
        address = params.get("address")
        if address and not _get(found, "address"):
            self._call(
                self.writes,
                f"address of customer {customer_id}",
                self.client.v1.customers.update,
                customer_id,
                params=cast(Any, {"address": dict(address)}),
                options={"idempotency_key": idempotency_key(op.batch_id, op.key, "address")},
            )
        return Outcome(op.key, customer_id, reused=True)

    # -- requests ---------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        """``text`` without the API key or anything shaped like a Stripe key."""
        return scrub_key(text, self._secret)

    def _failure(self, op_key: str, kind: str, exc: stripe.StripeError) -> OperationFailure:
        """What the target answered (Stripe's code and message, scrubbed of secrets)."""
        message = exc.user_message or type(exc).__name__
        if isinstance(exc, stripe.APIConnectionError):
            message = "could not reach the target (connection error or timeout)"
        return OperationFailure(
            op_key,
            kind,
            self._scrub(str(message)),
            code=exc.code,
            http_status=exc.http_status,
        )

    def _call(
        self, bucket: TokenBucket, what: str, fn: Callable[..., Any], *args: Any, **kw: Any
    ) -> Any:
        """One SDK call under ``bucket``, retried as :class:`RetryPolicy` decides."""
        attempt = 0
        while True:
            bucket.acquire()
            with self._count_lock:
                self._requests += 1
            try:
                return fn(*args, **kw)
            except stripe.StripeError as exc:
                attempt += 1
                connection = isinstance(exc, stripe.APIConnectionError)
                if connection and not cast(stripe.APIConnectionError, exc).should_retry:
                    raise
                decision = self._policy.decide(
                    attempt,
                    status=None if connection else exc.http_status,
                    headers=exc.headers,
                    code=exc.code,
                    connection_error=connection,
                )
                if not decision.retry:
                    raise
                with self._count_lock:
                    self._retries += 1
                log.info(
                    "retrying %s in %.2fs (attempt %d): %s",
                    what,
                    decision.delay,
                    attempt + 1,
                    decision.reason,
                )
                self._sleep(decision.delay)

    def _list_all(self, what: str, fn: Callable[..., Any], params: dict[str, Any]) -> Iterator[Any]:
        """Every object of a paginated list endpoint, page by page under the read limit."""
        params = {"limit": 100, **params}
        while True:
            page = self._call(self.reads, what, fn, params=cast(Any, params))
            data = list(_get(page, "data", []))
            yield from data
            if not _get(page, "has_more", False) or not data:
                return
            params = {**params, "starting_after": _get(data[-1], "id")}

    # -- finding existing objects -----------------------------------------------------

    def _retrieve(self, kind: ObjectKind, object_id: str) -> Any:
        v1 = self.client.v1
        getters: dict[str, Callable[..., Any]] = {
            "product": v1.products.retrieve,
            "price": v1.prices.retrieve,
            "coupon": v1.coupons.retrieve,
            "tax_rate": v1.tax_rates.retrieve,
            "customer": v1.customers.retrieve,
            "subscription": v1.subscriptions.retrieve,
            "subscription_schedule": v1.subscription_schedules.retrieve,
            "meter": v1.billing.meters.retrieve,
        }
        try:
            obj = self._call(self.reads, f"retrieve {kind} {object_id}", getters[kind], object_id)
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                return None
            raise
        if _get(obj, "deleted", False):
            return None
        return obj

    def _lister(self, kind: ObjectKind) -> Callable[..., Any]:
        v1 = self.client.v1
        return cast(
            Callable[..., Any],
            {
                "product": v1.products.list,
                "price": v1.prices.list,
                "coupon": v1.coupons.list,
                "tax_rate": v1.tax_rates.list,
                "customer": v1.customers.list,
                "subscription": v1.subscriptions.list,
                "subscription_schedule": v1.subscription_schedules.list,
                "meter": v1.billing.meters.list,
            }[kind],
        )

    def _find(self, op: Operation, params: Mapping[str, Any]) -> Any:
        """The existing object ``op`` would create, or None."""
        lookup = dict(op.lookup)
        if op.kind == "meter" and "event_name" not in lookup and params.get("event_name"):
            lookup = {"event_name": str(params["event_name"])}
        if "id" in lookup:
            return self._retrieve(op.kind, lookup["id"])
        if "lookup_key" in lookup:
            page = self._call(
                self.reads,
                f"find price {lookup['lookup_key']}",
                self.client.v1.prices.list,
                params=cast(Any, {"lookup_keys": [lookup["lookup_key"]], "limit": 1}),
            )
            data = list(_get(page, "data", []))
            return data[0] if data else None
        if "event_name" in lookup:
            for meter in self._list_all("list meters", self._lister("meter"), {}):
                if (
                    _get(meter, "event_name") == lookup["event_name"]
                    and _get(meter, "status", "active") == "active"
                ):
                    return meter
            return None
        meta = lookup.get(f"metadata.{METADATA_KEY}")
        if meta is None:
            return None
        return self._find_by_metadata(op, params, meta)

    def _find_by_metadata(self, op: Operation, params: Mapping[str, Any], value: str) -> Any:
        def matches(obj: Any) -> bool:
            return _get(_get(obj, "metadata", {}), METADATA_KEY) == value

        if op.kind == "customer":
            if not self.search_lookups:
                return None
            query = f"metadata[{_search_literal(METADATA_KEY)}]:{_search_literal(value)}"
            page = self._call(
                self.searches,
                f"search customer {value}",
                self.client.v1.customers.search,
                params=cast(Any, {"query": query, "limit": 10}),
            )
            found = [c for c in _get(page, "data", []) if matches(c)]
            return found[0] if found else None
        list_params: dict[str, Any] = {}
        if op.kind in ("subscription", "subscription_schedule") and isinstance(
            params.get("customer"), str
        ):
            list_params["customer"] = params["customer"]
        if op.kind == "subscription":
            list_params["status"] = "all"
        for obj in self._list_all(f"list {op.kind}s", self._lister(op.kind), list_params):
            if not matches(obj):
                continue
            if _get(obj, "status") in _GONE_STATUSES or _get(obj, "active", True) is False:
                continue
            return obj
        return None

    def _conflict(self, op: Operation, params: Mapping[str, Any], found: Any) -> str | None:
        """Why an existing price must not be reused for ``op`` (None when it matches)."""
        if op.kind != "price":
            return None
        if _get(found, "active", True) is False:
            return "exists on the target but is inactive; reactivate it or use a new lookup_key"
        checks: list[tuple[str, Any, Any]] = [
            ("currency", str(params.get("currency", "")).lower() or None, _get(found, "currency")),
            ("unit_amount", params.get("unit_amount"), _get(found, "unit_amount")),
        ]
        recurring = params.get("recurring") or {}
        found_recurring = _get(found, "recurring", {}) or {}
        for name in ("interval", "interval_count"):
            if name in recurring:
                checks.append(
                    (f"recurring.{name}", recurring[name], _get(found_recurring, name, 1))
                )
        for name, wanted, have in checks:
            if wanted is None:
                continue
            if str(wanted).lower() != str(have).lower():
                return f"exists on the target with {name}={have}, the catalog says {wanted}"
        return None

    # -- creating ---------------------------------------------------------------------

    def _creator(self, kind: ObjectKind) -> Callable[..., Any]:
        v1 = self.client.v1
        return cast(
            Callable[..., Any],
            {
                "product": v1.products.create,
                "meter": v1.billing.meters.create,
                "price": v1.prices.create,
                "coupon": v1.coupons.create,
                "tax_rate": v1.tax_rates.create,
                "customer": v1.customers.create,
                "subscription": v1.subscriptions.create,
                "subscription_schedule": v1.subscription_schedules.create,
            }[kind],
        )

    def _apply_one(self, op: Operation, params: dict[str, Any], scope: str) -> Outcome:
        try:
            attach = attached_customer_id(op)
            if attach is not None:
                return self._attach(op, params, attach)
            found = self._find(op, params)
            if found is not None:
                conflict = self._conflict(op, params, found)
                if conflict:
                    return Outcome(
                        op.key,
                        failure=OperationFailure(
                            op.key, op.kind, f"{op.kind} {op.key} {conflict}", "lookup_conflict"
                        ),
                    )
                return Outcome(op.key, str(_get(found, "id")), reused=True)
            key = idempotency_key(op.batch_id, op.key, scope)
            created = self._call(
                self.writes,
                f"create {op.kind} {op.key}",
                self._creator(op.kind),
                params=cast(Any, params),
                options={"idempotency_key": key},
            )
            return Outcome(op.key, str(_get(created, "id")))
        except stripe.StripeError as exc:  # the target refused: a report line (a bug is not)
            failure = self._failure(op.key, op.kind, exc)
            log.warning("%s %s failed: %s", op.kind, op.key, failure.message)
            return Outcome(op.key, failure=failure)

    def apply(
        self,
        operations: Sequence[Operation],
        *,
        known: Mapping[str, str] | None = None,
        on_created: Callable[[Operation, str], None] | None = None,
        progress: Callable[[int, int], None] | None = None,
        idempotency_scope: str = "create",
    ) -> ApplyReport:
        """Create or reuse every operation's object; return what happened per operation key.

        ``known`` maps operation keys to ids the caller already has (the ledger): those
        operations are not sent again, and refs to them resolve. ``on_created(op, id)`` is
        called in the caller's thread for every created or reused object before any
        operation that depends on it starts. ``idempotency_scope`` changes every
        Idempotency-Key (use a new one to re-create a batch after a rollback within
        Stripe's 24-hour idempotency window).
        """
        started = time.monotonic()
        with self._count_lock:
            requests0, retries0 = self._requests, self._retries
        known = dict(known or {})
        report = ApplyReport()
        by_key: dict[str, Operation] = {}
        for op in operations:
            if op.key in by_key:
                raise TargetError(f"operation key {op.key} appears twice in the batch")
            by_key[op.key] = op
        ids: dict[str, str] = {}
        graph: TopologicalSorter[str] = TopologicalSorter()
        dependents: dict[str, list[str]] = {k: [] for k in by_key}
        order = {k: i for i, k in enumerate(by_key)}
        for key, op in by_key.items():
            if key in known:
                report.known[key] = known[key]
                ids[key] = known[key]
                continue
            deps = set(op.depends_on) | set(refs(op.params))
            missing = sorted(d for d in deps if d not in by_key and d not in known)
            if missing:
                report.failed[key] = OperationFailure(
                    key,
                    op.kind,
                    f"{op.kind} {key} refers to {', '.join(missing)}, which is neither in "
                    "this batch nor already applied",
                    "unresolved_reference",
                )
            pending = sorted(
                (d for d in deps if d in by_key and d not in known), key=order.__getitem__
            )
            graph.add(key, *pending)
            for d in pending:
                dependents[d].append(key)
        try:
            graph.prepare()
        except CycleError as exc:
            raise TargetError(
                f"operations depend on each other in a circle: {' -> '.join(exc.args[1])}"
            ) from None

        def skip_dependents(failed_key: str) -> None:
            """Every operation that needs ``failed_key`` (they never become ready)."""
            stack = [failed_key]
            while stack:
                cur = stack.pop()
                for d in dependents[cur]:
                    if d not in report.skipped and d not in report.failed:
                        report.skipped[d] = f"depends on {cur}, which failed"
                        stack.append(d)

        for key in sorted(report.failed, key=order.__getitem__):
            skip_dependents(key)
        total = len(by_key)
        done = len(report.known) + len(report.failed) + len(report.skipped)
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="stripe-apply")
        running: dict[Future[Outcome], str] = {}

        def submit_ready() -> None:
            for key in sorted(graph.get_ready(), key=order.__getitem__):
                if key in report.failed or key in report.skipped:
                    continue  # refused before any request; its dependents stay blocked
                op = by_key[key]
                params = resolve(dict(op.params), {**known, **ids})
                running[pool.submit(self._apply_one, op, params, idempotency_scope)] = key

        try:
            submit_ready()
            while running:
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in sorted(finished, key=lambda f: order[running[f]]):
                    key = running.pop(fut)
                    outcome = fut.result()
                    op = by_key[key]
                    done += 1
                    if outcome.failure is not None or outcome.target_id is None:
                        report.failed[key] = outcome.failure or OperationFailure(
                            key, op.kind, "the target returned no id"
                        )
                        before = len(report.skipped)
                        skip_dependents(key)
                        done += len(report.skipped) - before
                    else:
                        ids[key] = outcome.target_id
                        if outcome.reused:
                            report.reused[key] = outcome.target_id
                        else:
                            report.created[key] = outcome.target_id
                        if on_created is not None:
                            on_created(op, outcome.target_id)
                        graph.done(key)
                    if progress is not None:
                        progress(done, total)
                submit_ready()
        finally:
            for fut in running:
                fut.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
        with self._count_lock:
            report.requests = self._requests - requests0
            report.retries = self._retries - retries0
        report.elapsed_seconds = time.monotonic() - started
        log.info("apply: %s", report.summary())
        return report

    # -- rollback ---------------------------------------------------------------------

    def _remove_one(self, kind: str, target_id: str, deactivate_catalog: bool) -> str:
        """Remove one object; return "removed", "deactivated" or "kept"."""
        v1 = self.client.v1
        what = f"remove {kind} {target_id}"
        try:
            if kind == "subscription":
                sub = self._retrieve("subscription", target_id)
                if sub is None or _get(sub, "status") in _GONE_STATUSES:
                    return "removed"
                self._call(
                    self.writes,
                    what,
                    v1.subscriptions.cancel,
                    target_id,
                    params=cast(Any, {"prorate": False, "invoice_now": False}),
                )
                return "removed"
            if kind == "subscription_schedule":
                sched = self._retrieve("subscription_schedule", target_id)
                if sched is None or _get(sched, "status") in ("canceled", "completed"):
                    return "removed"
                if _get(sched, "status") == "released":
                    released = _get(sched, "released_subscription")
                    if released:
                        self._remove_one("subscription", str(released), deactivate_catalog)
                    return "removed"
                self._call(
                    self.writes,
                    what,
                    v1.subscription_schedules.cancel,
                    target_id,
                    params=cast(Any, {"prorate": False, "invoice_now": False}),
                )
                return "removed"
            if kind == ATTACHED_CUSTOMER:
                return "kept"  # it existed before the batch: only attached, never removed
            if kind == "customer":
                self._call(self.writes, what, v1.customers.delete, target_id)
                return "removed"
            if kind == "coupon":
                self._call(self.writes, what, v1.coupons.delete, target_id)
                return "removed"
            if not deactivate_catalog:
                return "kept"
            if kind == "meter":
                self._call(self.writes, what, v1.billing.meters.deactivate, target_id)
            else:
                updater = {
                    "price": v1.prices.update,
                    "product": v1.products.update,
                    "tax_rate": v1.tax_rates.update,
                }[kind]
                self._call(self.writes, what, updater, target_id, params={"active": False})
            return "deactivated"
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404 or exc.code == "resource_missing":
                return "removed"
            raise

    def cancel_and_remove(
        self,
        objects: Sequence[tuple[str, str]],
        *,
        deactivate_catalog: bool = False,
    ) -> RemoveReport:
        """Roll back created objects, in reverse creation order.

        Subscriptions are cancelled without proration or a final invoice, schedules
        cancelled (a released schedule's subscription is cancelled), customers and coupons
        deleted; customers the batch only attached to (``customer_attached``) are kept. Products, prices, meters and tax rates are shared catalog objects: kept,
        or deactivated when ``deactivate_catalog`` is true. Already-removed objects count
        as removed, so a rollback can be rerun.
        """
        report = RemoveReport()
        rank: dict[str, int] = {k: i for i, k in enumerate(KIND_ORDER)}
        rank[ATTACHED_CUSTOMER] = rank["customer"]
        unknown = sorted({k for k, _ in objects if k not in rank})
        if unknown:
            raise TargetError(f"cannot roll back objects of unknown kind: {', '.join(unknown)}")
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="stripe-rollback") as pool:
            for kind in reversed(KIND_ORDER):
                group = [
                    (k, i)
                    for k, i in objects
                    if k == kind or (kind == "customer" and k == ATTACHED_CUSTOMER)
                ]
                futures = {
                    pool.submit(self._remove_one, k, i, deactivate_catalog): (k, i)
                    for k, i in group
                }
                for fut, (k, i) in futures.items():
                    try:
                        result = fut.result()
                    except stripe.StripeError as exc:
                        message = self._failure(i, k, exc).message
                        report.failed[i] = f"could not remove {k} {i}: {message}"
                        log.warning("%s", report.failed[i])
                        continue
                    {"removed": report.removed, "deactivated": report.deactivated}.get(
                        result, report.kept
                    ).append((k, i))
        return report

    # -- previews ---------------------------------------------------------------------

    def preview(self, target_customer_id: str, target_subscription_id: str) -> dict[str, Any]:
        """The target's upcoming invoice for one subscription (POST /v1/invoices/create_preview)."""
        try:
            invoice = self._call(
                self.reads,
                f"preview {target_subscription_id}",
                self.client.v1.invoices.create_preview,
                params=cast(
                    Any, {"customer": target_customer_id, "subscription": target_subscription_id}
                ),
            )
        except stripe.StripeError as exc:
            failure = self._failure(target_subscription_id, "invoice", exc)
            raise TargetRequestError(
                f"could not preview the upcoming invoice of subscription "
                f"{target_subscription_id}: {failure.message}",
                code=failure.code,
                status=failure.http_status,
            ) from None
        return cast(dict[str, Any], invoice.to_dict())
