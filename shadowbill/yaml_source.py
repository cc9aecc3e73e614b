"""YAML loading that remembers line numbers, so validation errors name file, line and key.

Configuration files are read defensively (see SECURITY.md): only a regular file of at
most ``MAX_BYTES`` is opened (never a device such as /dev/zero or a FIFO that would
block: checked with ``os.stat`` before opening, opened non-blocking and checked again);
the event stream is checked before any tree is built, so that nesting deeper than
``MAX_DEPTH``, an alias to a node that contains it (a self-referencing alias) and
aliases expanding to more than ``ALIAS_BUDGET`` values beyond the file's own (the
"billion laughs" bomb) are refused in bounded time and memory; a key must be a scalar
(``? [a, b]`` complex keys are refused). Each refusal is one line naming the file.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from shadowbill.errors import InputError

M = TypeVar("M", bound=BaseModel)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: ~10x faster
KeyPath = tuple[str | int, ...]
MAX_BYTES = 32 * 1024 * 1024  # a configuration file, not a data set
MAX_DEPTH = 64  # nested mappings/sequences; libyaml's composer recurses in C
ALIAS_BUDGET = 100_000  # values aliases may add beyond the file's own


@dataclass(frozen=True)
class YamlDocument:
    """Parsed YAML data plus the line (1-based) where each key path starts."""

    path: Path
    data: Any
    lines: dict[KeyPath, int]
    empty: bool = False  # the file holds no document at all (blank or comments only)

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
            if not isinstance(key_node, yaml.ScalarNode):
                raise _Refused(
                    "a key must be a plain value, not a list or mapping (complex key)",
                    key_node.start_mark,
                )
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


def _regular(path: Path, mode: int, error: type[InputError]) -> None:
    if stat.S_ISDIR(mode):
        raise error(f"{path}: is a folder, not a file")
    if not stat.S_ISREG(mode):
        raise error(f"{path}: not a regular file (a device, pipe or socket); give a file")


def read_config_text(path: Path, error: type[InputError] = InputError) -> str:
    """The UTF-8 text of a configuration file: a regular file of at most MAX_BYTES."""
    try:
        _regular(path, os.stat(path).st_mode, error)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())  # the file opened, not the name (it may have moved)
        _regular(path, info.st_mode, error)
        if info.st_size > MAX_BYTES:
            raise error(
                f"{path}: {info.st_size:,} bytes, more than a configuration file may hold ({MAX_BYTES:,})"
            )
        raw = handle.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise error(f"{path}: more than a configuration file may hold ({MAX_BYTES:,} bytes)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


class _Refused(Exception):
    """A YAML shape refused before composing; carries the problem and its mark."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem = problem
        self.line = None if mark is None else int(mark.line) + 1


def _check_events(text: str) -> None:
    """Refuse deep nesting, self-referencing aliases and alias bombs before composing.

    Walks libyaml's event stream (iterative, no tree): each node counts 1, an alias
    counts the expanded size of its anchor's node, computed as the node closes.
    """
    depth = 0
    open_sizes: list[int] = [0]
    open_anchors: list[str | None] = [None]
    sizes: dict[str, int] = {}
    own = expanded = 0
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, yaml.AliasEvent):
            anchor = event.anchor
            if anchor in open_anchors:
                raise _Refused(
                    f"the alias *{anchor} refers to a node that contains it",
                    event.start_mark,
                )
            size = sizes.get(str(anchor), 1)
            open_sizes[-1] += size
            expanded += size
            if expanded > own + ALIAS_BUDGET:
                raise _Refused(
                    f"aliases expand to more than {ALIAS_BUDGET:,} values beyond the "
                    "file's own (an alias bomb?)",
                    event.start_mark,
                )
        elif isinstance(event, yaml.ScalarEvent):
            own += 1
            expanded += 1
            open_sizes[-1] += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _Refused(
                    f"nested more than {MAX_DEPTH} levels deep",
                    event.start_mark,
                )
            own += 1
            expanded += 1
            open_sizes.append(1)
            open_anchors.append(event.anchor)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
            size = open_sizes.pop()
            anchor = open_anchors.pop()
            if anchor is not None:
                sizes[anchor] = size
            open_sizes[-1] += size


def load_yaml(path: Path | str, error: type[InputError] = InputError) -> YamlDocument:
    """Read a YAML file into plain data and a key-path to line map; errors name the line."""
    path = Path(path)
    text = read_config_text(path, error)
    try:
        _check_events(text)
        node = yaml.compose(text, Loader=_LOADER)
        lines: dict[KeyPath, int] = {}
        data = {} if node is None else _build(node, (), lines)
    except _Refused as exc:
        where = f"{path}:{exc.line}" if exc.line is not None else str(path)
        raise error(f"{where}: invalid YAML: {exc.problem}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise error(f"{where}: invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: invalid YAML: {exc}") from None
    return YamlDocument(path, data, lines, empty=node is None)


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
