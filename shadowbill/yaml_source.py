"""YAML loading that remembers line numbers, so validation errors name file, line and key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from shadowbill.errors import InputError

M = TypeVar("M", bound=BaseModel)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: ~10x faster
KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class YamlDocument:
    """Parsed YAML data plus the line (1-based) where each key path starts."""

    path: Path
    data: Any
    lines: dict[KeyPath, int]

    def line_of(self, key_path: KeyPath) -> int | None:
        """The line of the deepest known prefix of ``key_path``."""
        for end in range(len(key_path), -1, -1):
            line = self.lines.get(tuple(key_path[:end]))
            if line is not None:
                return line
        return None


def _build(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            if key in out:
                raise yaml.MarkedYAMLError(
                    problem=f"duplicate key {key!r}", problem_mark=key_node.start_mark
                )
            out[key] = _build(value_node, (*path, str(key)), lines)
            lines[(*path, str(key))] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), lines) for i, item in enumerate(node.value)]
    return _scalar(node)


_CONSTRUCTOR = yaml.SafeLoader("")


def _scalar(node: yaml.Node) -> Any:
    """The Python value of a scalar node, by the safe loader's own rules."""
    return _CONSTRUCTOR.construct_object(node, deep=True)


def load_yaml(path: Path | str, error: type[InputError] = InputError) -> YamlDocument:
    """Read a YAML file into plain data and a key-path to line map; errors name the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        node = yaml.compose(text, Loader=_LOADER)
        lines: dict[KeyPath, int] = {}
        data = {} if node is None else _build(node, (), lines)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise error(f"{where}: invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: invalid YAML: {exc}") from None
    return YamlDocument(path, data, lines)


def format_key(key_path: KeyPath) -> str:
    """Render a key path as ``prices[3].tiers[0].up_to``."""
    out = ""
    for part in key_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def problems_message(doc: YamlDocument, problems: list[tuple[KeyPath, str]]) -> str:
    """One line listing up to ten problems, each as ``file:line: key: message``."""
    messages = []
    for key_path, message in problems[:10]:
        line = doc.line_of(key_path)
        where = f"{doc.path}:{line}" if line else str(doc.path)
        messages.append(f"{where}: {format_key(key_path)}: {message}")
    if len(problems) > 10:
        messages.append(f"... and {len(problems) - 10} more")
    return "; ".join(messages)


def validate(doc: YamlDocument, model: type[M], error: type[InputError] = InputError) -> M:
    """Validate a document against a pydantic model; the error names file, line and key."""
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        messages = []
        for err in exc.errors(include_url=False)[:10]:
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
            line = doc.line_of(loc)
            where = f"{doc.path}:{line}" if line else str(doc.path)
            msg = err["msg"]
            if err["type"] == "missing":
                msg = "required key is missing"
            elif err["type"] == "extra_forbidden":
                msg = "unknown key (check its spelling)"
            messages.append(f"{where}: {format_key(loc)}: {msg}")
        more = len(exc.errors()) - len(messages)
        if more > 0:
            messages.append(f"... and {more} more")
        raise error("; ".join(messages)) from None
