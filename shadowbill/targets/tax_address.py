"""Which customers lack the address an outside tax engine needs.

With the target catalog's ``tax_mode: external`` Stripe Tax (or a connector) computes the
tax from the customer's address, and a subscription whose customer has no usable one
cannot be created with ``automatic_tax`` (https://docs.stripe.com/tax/customer-locations:
in the United States a postal code, in Canada a postal code or a province, elsewhere the
country). ``plan`` holds such customers' subscriptions out of the batch and names them.
"""

from __future__ import annotations

import pandas as pd

_POSTAL_NEEDED = ("US",)
_POSTAL_OR_STATE = ("CA",)


def _text(frame: pd.DataFrame, name: str) -> pd.Series:
    if name not in frame.columns:
        return pd.Series(pd.NA, index=frame.index, dtype="string")
    col = frame[name].astype("string").str.strip()
    return col.where(col != "", pd.NA)


def missing_tax_address(customers: pd.DataFrame) -> pd.Series:
    """Per customer row: True when Stripe Tax could not locate it from its address."""
    country = _text(customers, "country").str.upper()
    postal = _text(customers, "address_postal_code").notna()
    state = _text(customers, "address_state").notna()
    missing = country.isna()
    missing |= country.isin(_POSTAL_NEEDED).fillna(False) & ~postal
    missing |= country.isin(_POSTAL_OR_STATE).fillna(False) & ~(postal | state)
    return missing.fillna(True).astype(bool)
