"""The operations a migration batch performs on a target, in dependency order.

A batch's plan becomes a list of :class:`Operation`: catalog objects first (products,
meters, prices, coupons, tax rates), then per subscription its customer, its
subscription (or subscription schedule). Every target consumes the same list: the
Stripe API target sends it, the CSV and JSONL targets write it for review or import.
An operation refers to the object another operation creates with :func:`ref`, which
the executor replaces by the created object's id.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

ObjectKind = Literal[
    "product",
    "meter",
    "price",
    "coupon",
    "tax_rate",
    "customer",
    "subscription",
    "subscription_schedule",
]
# Creation order; rollback removes in the reverse order.
KIND_ORDER: Final[tuple[ObjectKind, ...]] = (
    "product",
    "meter",
    "price",
    "coupon",
    "tax_rate",
    "customer",
    "subscription",
    "subscription_schedule",
)
# The ledger kind of an existing customer a batch hangs its subscriptions on: never
# created by the batch, so never removed by its rollback.
ATTACHED_CUSTOMER: Final = "customer_attached"
_REF: Final = re.compile(r"^\{\{ref:(?P<key>[^}]+)\}\}$")


def ref(key: str) -> str:
    """A placeholder for the id of the object that operation ``key`` creates."""
    return "{{ref:" + key + "}}"


def ref_key(value: object) -> str | None:
    """The operation key a placeholder refers to, or None for a plain value."""
    if isinstance(value, str):
        m = _REF.match(value)
        if m:
            return m["key"]
    return None


def idempotency_key(batch_id: str, operation_key: str, attempt_scope: str = "create") -> str:
    """The deterministic Idempotency-Key of one write: same batch, object and step, same key."""
    digest = hashlib.sha256(f"{batch_id}\x1f{operation_key}\x1f{attempt_scope}".encode())
    return f"shadowbill-{digest.hexdigest()[:40]}"


@dataclass(frozen=True)
class Operation:
    """One object to create (or find and reuse) on the target.

    - ``key``: unique in the batch and stable across runs, e.g. ``price:advanced_month``,
      ``customer:cus_000123``, ``subscription:sub_000123``.
    - ``params``: the Stripe create parameters (nested dicts/lists as the SDK takes them);
      a value ``ref(other_key)`` stands for the id ``other_key`` created.
    - ``lookup``: how to find the object if it already exists, so nothing is duplicated:
      ``{"lookup_key": ...}`` for prices, ``{"id": ...}`` for objects created with a
      chosen id (products, coupons), ``{"attach": "cus_..."}`` for a customer that exists
      already (attached, never created: see :mod:`.customer_links`), else
      ``{"metadata.shadowbill_key": key}``.
    - ``subscription_id`` / ``customer_id``: the legacy ids the operation belongs to
      (None for shared catalog objects).
    """

    batch_id: str
    key: str
    kind: ObjectKind
    params: Mapping[str, Any]
    lookup: Mapping[str, str] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    subscription_id: str | None = None
    customer_id: str | None = None

    @property
    def idempotency_key(self) -> str:
        """The Idempotency-Key every attempt of this create sends."""
        return idempotency_key(self.batch_id, self.key)

    def as_json(self) -> dict[str, Any]:
        """A plain-data form for JSONL and the ledger (no secrets are ever in params)."""
        return {
            "batch_id": self.batch_id,
            "key": self.key,
            "kind": self.kind,
            "params": self.params,
            "lookup": dict(self.lookup),
            "depends_on": list(self.depends_on),
            "subscription_id": self.subscription_id,
            "customer_id": self.customer_id,
            "idempotency_key": self.idempotency_key,
        }


def attached_customer_id(op: Operation) -> str | None:
    """The existing Stripe customer a customer operation attaches to (None: it creates one)."""
    if op.kind == "customer":
        value = op.lookup.get("attach")
        if value:
            return str(value)
    return None


def recorded_kind(op: Operation) -> str:
    """The kind the ledger records for the object of ``op`` (attached customers apart)."""
    return ATTACHED_CUSTOMER if attached_customer_id(op) is not None else op.kind
