"""Operations as JSONL: one JSON object per line, for review, diffing and replay.

Each line is :meth:`Operation.as_json` with keys sorted, no insignificant whitespace and
UTF-8 text, so the same operations always give the same bytes. Reading checks every
line (kinds, fields, the Idempotency-Key that the batch and key imply) and refuses
floats: amounts are integers of minor units or decimal strings.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from shadowbill.errors import OperationsFileError
from shadowbill.targets.model import KIND_ORDER, Operation

FIELDS: Final = (
    "batch_id",
    "key",
    "kind",
    "params",
    "lookup",
    "depends_on",
    "subscription_id",
    "customer_id",
    "idempotency_key",
)


def _no_floats(value: Any, where: str) -> None:
    if isinstance(value, float):
        raise OperationsFileError(
            f"{where} is a float ({value!r}); amounts are integers or decimal strings"
        )
    if isinstance(value, Mapping):
        for k, v in value.items():
            _no_floats(v, f"{where}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _no_floats(v, f"{where}[{i}]")


def operation_line(op: Operation) -> str:
    """One operation as its JSONL line (without the newline): sorted keys, compact."""
    data = op.as_json()
    _no_floats(data["params"], f"operation {op.key}: params")
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def write_jsonl(operations: Iterable[Operation], path: Path | str) -> Path:
    """Write the operations, one JSON object per line, atomically; the same list always
    gives the same bytes."""
    target = Path(path)
    text = "".join(operation_line(op) + "\n" for op in operations)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(text.encode("utf-8"))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _reject_float(text: str) -> Any:
    raise ValueError(f"a float ({text}) where amounts must be integers or decimal strings")


def _operation(data: Any, where: str) -> Operation:
    if not isinstance(data, dict):
        raise OperationsFileError(f"{where}: expected a JSON object")
    missing = [f for f in FIELDS if f not in data]
    if missing:
        raise OperationsFileError(f"{where}: missing {', '.join(missing)}")
    extra = sorted(set(data) - set(FIELDS))
    if extra:
        raise OperationsFileError(f"{where}: unknown field {', '.join(extra)}")
    if data["kind"] not in KIND_ORDER:
        raise OperationsFileError(f"{where}: unknown kind {data['kind']!r}")
    texts = ("batch_id", "key")
    if any(not isinstance(data[f], str) or not data[f] for f in texts):
        raise OperationsFileError(f"{where}: batch_id and key must be non-empty text")
    if not isinstance(data["params"], dict) or not isinstance(data["lookup"], dict):
        raise OperationsFileError(f"{where}: params and lookup must be objects")
    if not isinstance(data["depends_on"], list) or not all(
        isinstance(d, str) for d in data["depends_on"]
    ):
        raise OperationsFileError(f"{where}: depends_on must be a list of operation keys")
    for f in ("subscription_id", "customer_id"):
        if data[f] is not None and not isinstance(data[f], str):
            raise OperationsFileError(f"{where}: {f} must be text or null")
    op = Operation(
        batch_id=data["batch_id"],
        key=data["key"],
        kind=data["kind"],
        params=data["params"],
        lookup={str(k): str(v) for k, v in data["lookup"].items()},
        depends_on=tuple(data["depends_on"]),
        subscription_id=data["subscription_id"],
        customer_id=data["customer_id"],
    )
    if data["idempotency_key"] != op.idempotency_key:
        raise OperationsFileError(
            f"{where}: idempotency_key does not match batch {op.batch_id!r} and key {op.key!r} "
            "(the line was edited)"
        )
    return op


def read_jsonl(path: Path | str) -> list[Operation]:
    """The operations of a JSONL file written by :func:`write_jsonl`, in file order."""
    source = Path(path)
    try:
        lines = source.read_bytes().decode("utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise OperationsFileError(f"{source}: cannot read operations: {exc}") from None
    out: list[Operation] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            data = json.loads(line, parse_float=_reject_float, parse_constant=_reject_float)
        except ValueError as exc:
            raise OperationsFileError(f"{where}: not a JSON operation: {exc}") from None
        op = _operation(data, where)
        if op.key in seen:
            raise OperationsFileError(f"{where}: operation {op.key} appears twice")
        seen.add(op.key)
        out.append(op)
    return out
