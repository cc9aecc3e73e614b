"""How the command line reports an error a user can act on: one line, exit status 2."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from shadowbill.errors import ShadowbillError

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Turn a ShadowbillError, or a file the system refused (full disk, no permission), into
    one line on stderr and exit status 2 instead of a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ShadowbillError as exc:
            click.echo(f"shadowbill: error: {exc}", err=True)
            sys.exit(2)
        except OSError as exc:
            click.echo(f"shadowbill: error: {os_reason(exc)}", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


INTERRUPTED = 130  # the shell's convention for a command ended by Ctrl-C (128 + SIGINT)


class InterruptibleGroup(click.Group):
    """A command group whose commands exit 130 on Ctrl-C with one line (click says 1)."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a KeyboardInterrupt becomes "interrupted" and exit status 130."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("shadowbill: interrupted", err=True)
            ctx.exit(INTERRUPTED)


def os_reason(exc: OSError) -> str:
    """What the system refused and on which file, e.g. "No space left on device: out/x.csv"."""
    what = exc.strerror or str(exc) or type(exc).__name__
    files = [f for f in (exc.filename, exc.filename2) if f is not None]
    return f"{what}: {' -> '.join(str(f) for f in files)}" if files else what
