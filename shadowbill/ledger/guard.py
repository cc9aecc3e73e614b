"""The secret guard: the ledger refuses any value that looks like a Stripe secret key.

Checked on every text and JSON value before it is written: the value of
``STRIPE_API_KEY`` (when it is set and at least 8 characters long) and anything shaped
like a Stripe secret, restricted or webhook-signing key.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from typing import Any, Final

from shadowbill.ledger.errors import SecretInLedgerError

SECRET_PATTERN: Final = re.compile(r"(?:sk|rk)_(?:test|live)_[A-Za-z0-9]+|whsec_[A-Za-z0-9]+")
KEY_ENV: Final = "STRIPE_API_KEY"
_MIN_KEY: Final = 8


def to_json(value: Any) -> str:
    """``value`` as canonical JSON text (sorted keys; dates and other objects as strings)."""
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def check_text(text: str, what: str) -> None:
    """Refuse ``text`` (described by ``what``) if it contains a Stripe secret key."""
    key = os.environ.get(KEY_ENV, "")
    if SECRET_PATTERN.search(text) or (len(key) >= _MIN_KEY and key in text):
        raise SecretInLedgerError(
            f"refused to store {what}: it contains what looks like a Stripe secret key "
            "(sk_/rk_/whsec_ or the value of STRIPE_API_KEY); the ledger never stores secrets"
        )


def check_texts(values: Iterable[object], what: str) -> None:
    """Refuse a column of values if any contains a Stripe secret key (one scan of all of them)."""
    check_text("\n".join(str(v) for v in values if v is not None), what)


def safe_json(value: Any, what: str) -> str | None:
    """``value`` as JSON text for the ledger, refused if it holds a secret; None stays None."""
    if value is None:
        return None
    text = to_json(value)
    check_text(text, what)
    return text
