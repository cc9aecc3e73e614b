"""Stripe keys scrubbed from any text shadowbill prints, logs or records."""

from __future__ import annotations

import re

# The shape of a Stripe secret, restricted or publishable key, to scrub from any text.
KEY_SHAPE = re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]+")


def scrub_key(text: str, secret: str | None = None) -> str:
    """``text`` without a secret key or anything shaped like a Stripe key."""
    if secret:
        text = text.replace(secret, "***")
    return KEY_SHAPE.sub("sk_***", text)
