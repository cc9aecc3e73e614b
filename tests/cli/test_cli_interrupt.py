"""Ctrl-C ends a command with exit status 130 (128 + SIGINT) and one line, not 1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import shadowbill.demo.generate
from shadowbill.cli.app import main


def _interrupt(*args: Any, **kwargs: Any) -> Any:
    raise KeyboardInterrupt


@pytest.mark.parametrize("args", [["demo-data"], ["migrate", "status"]])
def test_ctrl_c_exits_130_with_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str]
) -> None:
    monkeypatch.setattr(shadowbill.demo.generate, "generate", _interrupt)
    monkeypatch.setattr("shadowbill.cli.migrate._opened", _interrupt)
    extra = ["--out", str(tmp_path / "legacy.db")] if args[0] == "demo-data" else []
    result = CliRunner().invoke(main, [*args, *extra])
    assert result.exit_code == 130, result.output
    assert result.stderr.strip() == "shadowbill: interrupted"
