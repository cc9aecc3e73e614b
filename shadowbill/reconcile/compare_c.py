"""Comparison C, cut-over verification: the new model against the target platform's previews.

The migration runner fetches each applied subscription's upcoming invoice from the target
(Stripe's invoice preview) and turns it into the canonical invoice and line frames; this
module says where the target would bill differently from what the new model predicts.
A batch is verified only when this finds nothing unexplained.
"""

from __future__ import annotations

import pandas as pd

from shadowbill.reconcile.compare_a import compare_invoice_sets


def compare_cutover(
    model_invoices: pd.DataFrame,
    model_lines: pd.DataFrame,
    preview_invoices: pd.DataFrame,
    preview_lines: pd.DataFrame,
) -> pd.DataFrame:
    """Findings of comparison C at line and invoice level (only where the sides differ)."""
    return compare_invoice_sets(
        model_invoices,
        model_lines,
        preview_invoices,
        preview_lines,
        comparison="C",
        who="the target's preview",
    )
