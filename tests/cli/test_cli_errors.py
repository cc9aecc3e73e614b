"""Errors a user can act on reach the terminal as one line and exit status 2."""

from __future__ import annotations

import errno

import click
from click.testing import CliRunner

from shadowbill.cli.errors import os_reason, user_errors
from shadowbill.errors import InputError


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
