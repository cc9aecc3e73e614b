"""Configuration YAML read defensively: each hostile file is one line naming it, quickly."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from shadowbill.errors import InputError
from shadowbill.yaml_source import ALIAS_BUDGET, MAX_BYTES, MAX_DEPTH, load_yaml


def _laughs(levels: int) -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    previous = "a"
    for name in "bcdefghijk"[:levels]:
        text += f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]\n"
        previous = name
    return text


def _refused(path: Path, *needles: str) -> str:
    started = time.monotonic()
    with pytest.raises(InputError) as caught:
        load_yaml(path)
    message = str(caught.value)
    assert time.monotonic() - started < 5
    assert "\n" not in message and str(path) in message
    for needle in needles:
        assert needle in message
    return message


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (_laughs(8), "alias bomb"),  # 9^9 strings: about 545 bytes of YAML
        ("prices: &a [*a]\n", "refers to a node that contains it"),
        ("prices: &a {x: [*a]}\n", "refers to a node that contains it"),
        ("? [a, b]\n: 1\n", "complex key"),
        ("? {a: 1}\n: 1\n", "complex key"),
        ("[" * 100_000 + "]" * 100_000, f"more than {MAX_DEPTH} levels"),
        ("".join(" " * i + "a:\n" for i in range(200)), f"more than {MAX_DEPTH} levels"),
    ],
    ids=[
        "billion-laughs",
        "self-alias",
        "self-alias-nested",
        "complex-seq",
        "complex-map",
        "deep-flow",
        "deep-block",
    ],
)
def test_hostile_yaml_is_refused_in_one_line(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "rollout.yaml"
    path.write_text(text)
    _refused(path, needle)


def test_reused_anchors_within_the_budget_load(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text("base: &b {x: 1, y: [1, 2]}\n" + "".join(f"k{i}: *b\n" for i in range(500)))
    data = load_yaml(path).data
    assert data["k499"] == {"x": 1, "y": [1, 2]} and ALIAS_BUDGET > 500 * 4


def test_devices_fifos_and_folders_are_not_read(tmp_path: Path) -> None:
    _refused(Path("/dev/zero"), "not a regular file")
    fifo = tmp_path / "policy.yaml"
    os.mkfifo(fifo)
    _refused(fifo, "not a regular file")  # no writer: opening it would block
    _refused(tmp_path, "is a folder")
    _refused(tmp_path / "missing.yaml", "file not found")


def test_a_file_larger_than_a_configuration_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    with path.open("wb") as f:
        f.truncate(MAX_BYTES + 1)  # sparse: no disk used
    _refused(path, "more than a configuration file may hold")
