"""Errors a user can act on reach the terminal as one line and exit status 2."""

from __future__ import annotations

import errno
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from shadowbill.cli.app import main
from shadowbill.cli.errors import os_reason, user_errors
from shadowbill.errors import InputError
from shadowbill.ledger import LedgerError


def _command(exc: BaseException) -> click.Command:
    @click.command()
    @user_errors
    def failing() -> None:
        raise exc

    return failing


def test_a_shadowbill_error_is_one_line() -> None:
    result = CliRunner().invoke(_command(InputError("rollout.yaml line 3: no plan 'x'")))
    assert result.exit_code == 2
    assert result.stderr == "shadowbill: error: rollout.yaml line 3: no plan 'x'\n"


def test_a_full_disk_names_the_file_without_a_traceback() -> None:
    full = OSError(errno.ENOSPC, "No space left on device", "out/findings.csv")
    result = CliRunner().invoke(_command(full))
    assert result.exit_code == 2
    assert result.stderr == "shadowbill: error: No space left on device: out/findings.csv\n"


def test_os_reason_names_both_files_of_a_move() -> None:
    moved = OSError(errno.EXDEV, "Invalid cross-device link", "a.tmp", None, "b")
    assert os_reason(moved) == "Invalid cross-device link: a.tmp -> b"
    assert os_reason(OSError("socket closed")) == "socket closed"


def test_a_programming_error_is_not_hidden() -> None:
    result = CliRunner().invoke(_command(KeyError("bug")))
    assert result.exit_code == 1 and isinstance(result.exception, KeyError)


def test_a_programming_error_in_a_command_keeps_its_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug under a real command is not turned into one line and exit 2."""
    import shadowbill.demo.run as demo_run

    def buggy(*_args: object, **_kwargs: object) -> None:
        raise KeyError("a bug, not bad input")

    monkeypatch.setattr(demo_run, "run_demo", buggy)
    result = CliRunner().invoke(main, ["demo", "--no-migrate"])
    assert result.exit_code == 1 and isinstance(result.exception, KeyError)
    assert "shadowbill: error" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--debug", "migrate", "gate", "--batch", "p9-0001"],
        ["migrate", "--debug", "gate", "--batch", "p9-0001"],
        ["migrate", "gate", "--batch", "p9-0001", "--debug"],
    ],
)
def test_debug_lets_a_user_error_through_with_its_traceback(
    tmp_path: Path, args: list[str]
) -> None:
    ledger = ["--ledger", f"sqlite:///{tmp_path / 'ledger.db'}"]
    plain = CliRunner().invoke(main, ["migrate", "gate", "--batch", "p9-0001", *ledger])
    assert plain.exit_code == 2 and "no batch p9-0001" in plain.stderr
    debug = CliRunner().invoke(main, [*args, *ledger])
    assert isinstance(debug.exception, LedgerError), debug.output
    assert debug.exit_code == 1
    assert "shadowbill: error" not in debug.stderr


def test_debug_is_offered_by_every_command() -> None:
    def commands(group: click.Group, path: list[str]) -> list[list[str]]:
        found = []
        for name, command in group.commands.items():
            found.append([*path, name])
            if isinstance(command, click.Group):
                found += commands(command, [*path, name])
        return found

    for path in commands(main, []):
        help_text = CliRunner().invoke(main, [*path, "--help"]).output
        assert "--debug" in help_text, path
