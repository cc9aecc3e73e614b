"""Page through a Stripe account's list endpoints, resumably, at a bounded request rate.

Every list is read 100 objects a page (Stripe's maximum) with ``expand`` where a page would
otherwise need one request per object, and each page is written to a staging folder before
the cursor (the last object id of the page) is advanced, so a read that was interrupted
continues from its last complete page. Requests per kind are counted, so the cost of a read
is known (docs/performance.md).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import stripe

from shadowbill.errors import SourceError

PAGE_SIZE = 100  # Stripe's largest page

# Each kind: (the service's path on the client, list parameters, what a page expands).
# Invoices carry their first lines and subscriptions their first items on the page; the
# rest is fetched per invoice or subscription only when Stripe says there is more.
KINDS: dict[str, tuple[str, dict[str, Any]]] = {
    "meters": ("billing.meters", {}),
    "prices": ("prices", {"expand": ["data.tiers"]}),
    "coupons": ("coupons", {}),
    "tax_rates": ("tax_rates", {}),
    "customers": ("customers", {}),
    "subscriptions": ("subscriptions", {"status": "all", "expand": ["data.discounts"]}),
    "invoices": ("invoices", {}),
}
CREATED_FILTERED = {"customers", "subscriptions", "invoices"}


@dataclass
class ReadStats:
    """Requests made and objects read, per kind."""

    requests: dict[str, int] = field(default_factory=dict)
    objects: dict[str, int] = field(default_factory=dict)

    @property
    def total_requests(self) -> int:
        """All requests of the read."""
        return sum(self.requests.values())


class _Pacer:
    """At most ``rate`` requests a second (Stripe's read limits: docs.stripe.com/rate-limits)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.last = 0.0

    def wait(self) -> None:
        now = time.monotonic()
        if self.last and now - self.last < self.interval:
            time.sleep(self.interval - (now - self.last))
        self.last = time.monotonic()


def _service(client: stripe.StripeClient, path: str) -> Any:
    node: Any = client.v1
    for part in path.split("."):
        node = getattr(node, part)
    return node


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, "utf-8")
    os.replace(tmp, path)


class StripePages:
    """A resumable read of one Stripe account into ``staging`` (JSON Lines per page)."""

    def __init__(
        self,
        client: stripe.StripeClient,
        staging: Path,
        *,
        created_since: int | None = None,
        rate: float = 20.0,
    ) -> None:
        self.client = client
        self.staging = Path(staging)
        self.created_since = created_since
        self.pacer = _Pacer(rate)
        self.stats = ReadStats()
        self.cursor_path = self.staging / "cursor.json"
        self.staging.mkdir(parents=True, exist_ok=True)
        self.cursor: dict[str, dict[str, Any]] = (
            json.loads(self.cursor_path.read_text("utf-8")) if self.cursor_path.exists() else {}
        )
        if self.cursor.get("_filter", {}).get("created_since") not in (None, created_since):
            raise SourceError(
                f"{self.staging}: an interrupted read with another --created-since is there;"
                " remove the folder to start again"
            )
        self.cursor["_filter"] = {"created_since": created_since}

    def _call(self, kind: str, fn: Any, *args: Any, params: Mapping[str, Any]) -> Any:
        self.pacer.wait()
        self.stats.requests[kind] = self.stats.requests.get(kind, 0) + 1
        try:
            return fn(*args, params=dict(params))
        except stripe.AuthenticationError as exc:
            raise SourceError(
                f"Stripe refused the API key ({exc.user_message or 'invalid'})"
            ) from exc
        except stripe.APIConnectionError as exc:
            raise SourceError(f"could not reach Stripe: {exc.user_message or exc}") from exc
        except stripe.StripeError as exc:
            raise SourceError(
                f"Stripe answered an error listing {kind}: {exc.user_message or exc}"
            ) from exc

    def read_all(self) -> ReadStats:
        """Read every kind (or continue an interrupted read); return the request counts."""
        for kind in KINDS:
            self._read_kind(kind)
        return self.stats

    def _read_kind(self, kind: str) -> None:
        path, extra = KINDS[kind]
        state = self.cursor.setdefault(kind, {"after": None, "pages": 0, "done": False})
        folder = self.staging / kind
        folder.mkdir(exist_ok=True)
        service = _service(self.client, path)
        while not state["done"]:
            params: dict[str, Any] = {"limit": PAGE_SIZE, **extra}
            if state["after"]:
                params["starting_after"] = state["after"]
            if kind in CREATED_FILTERED and self.created_since is not None:
                params["created"] = {"gte": self.created_since}
            page = self._call(kind, service.list, params=params)
            objects = [o.to_dict(for_json=True) for o in page.data]
            for obj in objects:
                self._complete(kind, obj)
            number = state["pages"] + 1
            text = "".join(json.dumps(o, sort_keys=True) + "\n" for o in objects)
            _write_atomically(folder / f"page-{number:06d}.jsonl", text)
            state.update(
                pages=number,
                after=objects[-1]["id"] if objects else state["after"],
                done=not page.has_more or not objects,
            )
            _write_atomically(self.cursor_path, json.dumps(self.cursor, sort_keys=True))
        self.stats.objects[kind] = sum(1 for _ in self.objects(kind))

    def _complete(self, kind: str, obj: dict[str, Any]) -> None:
        """Fetch the rest of an invoice's lines or a subscription's items when a page had more."""
        fn: Any
        if kind == "invoices":
            nested, fn, key = obj.get("lines"), self.client.v1.invoices.line_items.list, "lines"
        elif kind == "subscriptions":
            nested, fn, key = obj.get("items"), self.client.v1.subscription_items.list, "items"
        else:
            return
        if not isinstance(nested, dict) or not nested.get("has_more"):
            return
        data = list(nested.get("data") or [])
        while True:
            params: dict[str, Any] = {"limit": PAGE_SIZE, "starting_after": data[-1]["id"]}
            if kind == "invoices":
                page = self._call(kind, fn, obj["id"], params=params)
            else:
                page = self._call(kind, fn, params={**params, "subscription": obj["id"]})
            data.extend(o.to_dict(for_json=True) for o in page.data)
            if not page.has_more or not page.data:
                break
        obj[key] = {"object": "list", "data": data, "has_more": False}

    def objects(self, kind: str) -> Iterator[dict[str, Any]]:
        """Every staged object of a kind, in the order read."""
        folder = self.staging / kind
        for page in sorted(folder.glob("page-*.jsonl")):
            with page.open("r", encoding="utf-8") as handle:
                for line in handle:
                    if line.strip():
                        yield json.loads(line)
