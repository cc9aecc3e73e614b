"""``ref()`` placeholders inside operation parameters: which operations they name, and
the parameters with each replaced by the id its operation created."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from shadowbill.targets.model import ref_key


def refs(value: Any) -> Iterator[str]:
    """Every operation key referred to by a ``ref()`` placeholder inside ``value``."""
    key = ref_key(value)
    if key is not None:
        yield key
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from refs(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from refs(v)


def resolve(value: Any, ids: Mapping[str, str]) -> Any:
    """``value`` with every placeholder replaced by the id its operation created."""
    key = ref_key(value)
    if key is not None:
        return ids[key]
    if isinstance(value, Mapping):
        return {k: resolve(v, ids) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [resolve(v, ids) for v in value]
    return value
