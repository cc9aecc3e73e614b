"""The target's invoice previews as canonical invoice and line frames, for comparison C.

After a batch is applied, the runner fetches each migrated subscription's upcoming invoice
(:meth:`StripeTarget.preview`, Stripe's ``POST /v1/invoices/create_preview``) and turns
them here into the canonical ``invoices`` and ``invoice_lines`` frames, keyed by the LEGACY
subscription and customer ids and OUR catalog price ids, so that
:func:`shadowbill.reconcile.compare_c.compare_cutover` can match them against the new
model's invoices (invoice key: subscription + period start; lines: price, kind, period).

Mapping of Stripe's invoice (older and current API shapes are both read):

- invoice ``subtotal``, ``total``; ``discount`` = sum of ``total_discount_amounts``;
  ``tax`` = sum of ``total_taxes`` (current API), else ``tax``, else sum of
  ``total_tax_amounts``;
- the invoice's period is its recurring lines' period (Stripe's invoice
  ``period_start``/``period_end`` describe the period BEFORE the one billed in advance);
  ``issued_at`` is that period's start; ``status`` is ``draft`` (a preview);
- each line: ``amount``, ``quantity``, ``period``; ``kind`` = ``proration`` when the line
  is a proration, ``usage`` for a metered price (the price's ``recurring.usage_type``, or
  named in ``metered``), ``recurring`` for another price,
  ``one_off`` for an invoice item without a price; ``price_id`` is translated back to our
  catalog's id by the price's ``metadata.shadowbill_price_id``, else the ``price_ids``
  map (target price id -> catalog id, e.g. from the ledger), else its ``lookup_key``,
  else the target's price id as is; ``unit_amount_decimal`` in plain notation without
  trailing zeros (None for tiered prices), as the pricing engine writes it.

Every money column is an integer count of minor units; nothing here does arithmetic on
money other than adding a preview's discount and tax amounts.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd

from shadowbill.snapshot.tables import INVOICE_LINES, INVOICES

PreviewTuple = tuple[str, str, Mapping[str, Any]]


def _amount_sum(entries: Any) -> int:
    return int(sum(int(e.get("amount") or 0) for e in entries or []))


def _tax(preview: Mapping[str, Any]) -> int:
    if isinstance(preview.get("total_taxes"), list):
        return _amount_sum(preview["total_taxes"])
    if preview.get("tax") is not None:
        return int(preview["tax"])
    return _amount_sum(preview.get("total_tax_amounts"))


def _plain_decimal(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    text = f"{d.normalize():f}"
    return text


def _col(frame: pd.DataFrame, *names: str) -> pd.Series:
    """The first of ``names`` present in ``frame``, coalesced left to right (all-NA if none)."""
    out = pd.Series(pd.NA, index=frame.index, dtype="object")
    for name in names:
        if name in frame.columns:
            out = out.where(out.notna(), frame[name])
    return out


def _utc(seconds: pd.Series) -> pd.Series:
    values = pd.to_numeric(seconds, errors="coerce").astype("Int64")
    return pd.to_datetime(values, unit="s", utc=True).astype("datetime64[us, UTC]")


def empty_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Empty canonical invoice and line frames."""
    inv = pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in INVOICES.column_names})
    lines = pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in INVOICE_LINES.column_names})
    return inv, lines


def _dtype(column: str) -> str:
    if column in ("period_start", "period_end", "issued_at"):
        return "datetime64[us, UTC]"
    if column in ("subtotal", "discount", "tax", "total"):
        return "int64"
    if column in ("amount", "quantity"):
        return "Int64"
    return "string"


def preview_frames(
    previews: Sequence[PreviewTuple],
    *,
    price_ids: Mapping[str, str] | None = None,
    metered: Collection[str] = (),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(invoices, lines) frames of previews given as (legacy subscription, legacy customer, preview).

    ``price_ids`` maps target price ids to catalog price ids; ``metered`` names the metered
    prices (catalog or target ids): Stripe's current API gives a line only its price's id,
    not the price, so without it a usage line could not be told from a recurring one.
    """
    if not previews:
        return empty_frames()
    heads = pd.DataFrame(
        {
            "_idx": np.arange(len(previews)),
            "subscription_id": [s for s, _, _ in previews],
            "customer_id": [c for _, c, _ in previews],
            "target_id": [p.get("id") for _, _, p in previews],
            "currency": [str(p.get("currency") or "").lower() for _, _, p in previews],
            "subtotal": [int(p.get("subtotal") or 0) for _, _, p in previews],
            "discount": [_amount_sum(p.get("total_discount_amounts")) for _, _, p in previews],
            "tax": [_tax(p) for _, _, p in previews],
            "total": [int(p.get("total") or 0) for _, _, p in previews],
            "inv_start": [p.get("period_start") for _, _, p in previews],
            "inv_end": [p.get("period_end") for _, _, p in previews],
        }
    )
    records = [
        {"_idx": i, "lines": {"data": list((p.get("lines") or {}).get("data") or [])}}
        for i, (_, _, p) in enumerate(previews)
    ]
    raw = pd.json_normalize(records, record_path=["lines", "data"], meta=["_idx"], sep=".")
    if raw.empty:
        raw = pd.DataFrame({"_idx": pd.Series(dtype="int64")})
    raw = raw.reset_index(drop=True)
    raw["_idx"] = raw["_idx"].astype("int64")

    target_price = _col(raw, "price.id", "pricing.price_details.price", "plan.id").astype("string")
    mapped = target_price.map(dict(price_ids or {})).astype("string")
    price_id = (
        _col(raw, "price.metadata.shadowbill_price_id")
        .astype("string")
        .fillna(mapped)
        .fillna(_col(raw, "price.lookup_key").astype("string"))
        .fillna(target_price)
    )
    proration = (
        _col(raw, "parent.subscription_item_details.proration", "proration")
        .astype("boolean")
        .fillna(False)
    )
    named = set(metered)
    is_metered = (
        _col(raw, "price.recurring.usage_type", "plan.usage_type")
        .astype("string")
        .eq("metered")
        .fillna(False)
        | price_id.isin(named)
        | target_price.isin(named)
    )
    kind = np.select(
        [
            proration.to_numpy(dtype=bool),
            is_metered.fillna(False).to_numpy(dtype=bool),
            target_price.notna().to_numpy(dtype=bool),
        ],
        ["proration", "usage", "recurring"],
        default="one_off",
    )
    unit_raw = _col(raw, "pricing.unit_amount_decimal", "price.unit_amount_decimal")
    uniques = pd.unique(unit_raw.dropna())
    unit = unit_raw.map({u: _plain_decimal(u) for u in uniques}).astype("string")
    tiered = _col(raw, "price.billing_scheme").astype("string").eq("tiered").fillna(False)
    unit = unit.mask(tiered.to_numpy(dtype=bool))

    lines = pd.DataFrame(
        {
            "_idx": raw["_idx"],
            "line_id": _col(raw, "id").astype("string"),
            "price_id": price_id.astype("string"),
            "kind": pd.array(kind, dtype="string"),
            "description": _col(raw, "description").astype("string"),
            "quantity": pd.to_numeric(_col(raw, "quantity"), errors="coerce").astype("Int64"),
            "unit_amount_decimal": unit,
            "amount": pd.to_numeric(_col(raw, "amount"), errors="coerce").astype("Int64"),
            "period_start": _utc(_col(raw, "period.start")),
            "period_end": _utc(_col(raw, "period.end")),
        }
    )

    # The invoice's period: its recurring lines' period, else all its lines', else its own.
    recurring = lines[lines["kind"] == "recurring"]
    span_rec = recurring.groupby("_idx").agg(s=("period_start", "min"), e=("period_end", "max"))
    span_all = lines.groupby("_idx").agg(s=("period_start", "min"), e=("period_end", "max"))
    heads = heads.merge(span_rec, left_on="_idx", right_index=True, how="left")
    heads = heads.merge(
        span_all.rename(columns={"s": "s_all", "e": "e_all"}),
        left_on="_idx",
        right_index=True,
        how="left",
    )
    start = heads["s"].fillna(heads["s_all"]).fillna(_utc(heads["inv_start"]))
    end = heads["e"].fillna(heads["e_all"]).fillna(_utc(heads["inv_end"]))
    start_text = start.dt.strftime("%Y-%m-%dT%H:%M:%SZ").astype("string")
    synthetic = "preview:" + heads["subscription_id"].astype("string") + "@" + start_text
    invoice_id = heads["target_id"].astype("string").fillna(synthetic)
    invoice_id = invoice_id.mask(invoice_id.duplicated(keep=False), synthetic)
    invoices = pd.DataFrame(
        {
            "invoice_id": invoice_id.astype("string"),
            "subscription_id": heads["subscription_id"].astype("string"),
            "customer_id": heads["customer_id"].astype("string"),
            "period_start": start.astype("datetime64[us, UTC]"),
            "period_end": end.astype("datetime64[us, UTC]"),
            "currency": heads["currency"].astype("string"),
            "subtotal": heads["subtotal"].astype("int64"),
            "discount": heads["discount"].astype("int64"),
            "tax": heads["tax"].astype("int64"),
            "total": heads["total"].astype("int64"),
            "status": pd.array(["draft"] * len(heads), dtype="string"),
            "issued_at": start.astype("datetime64[us, UTC]"),
        }
    )
    lines["invoice_id"] = invoice_id.to_numpy()[lines["_idx"].to_numpy()]
    lines["invoice_id"] = lines["invoice_id"].astype("string")
    nth = lines.groupby("_idx").cumcount().astype("string")
    lines["line_id"] = lines["line_id"].fillna(lines["invoice_id"] + ":" + nth)
    lines = lines[INVOICE_LINES.column_names].reset_index(drop=True)
    return invoices[INVOICES.column_names], lines
