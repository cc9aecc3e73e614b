"""How the command line reports an error a user can act on: one line, exit status 2.

Only a :class:`~shadowbill.errors.ShadowbillError` (bad input, a refused operation) and an
``OSError`` (a file or connection the system refused) are such errors; anything else is a
bug and keeps its traceback. ``--debug`` (on ``shadowbill`` and on every command) lets
those two through with their traceback too.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, Final, TypeVar

import click

from shadowbill.errors import ShadowbillError

F = TypeVar("F", bound=Callable[..., Any])

DEBUG_KEY: Final = "shadowbill.debug"  # in click's context meta, shared by nested commands


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[DEBUG_KEY] = True
    return value


def debug_option(func: F) -> F:
    """``--debug``: show any error with its traceback (for a bug report), not as one line."""
    return click.option(
        "--debug",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set_debug,
        help="Show errors with their traceback instead of one line.",
    )(func)


def debugging() -> bool:
    """True when ``--debug`` was given to this command or to a group above it."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and bool(ctx.meta.get(DEBUG_KEY))


def user_errors(func: F) -> F:
    """Turn a ShadowbillError, or a file the system refused (full disk, no permission), into
    one line on stderr and exit status 2 instead of a traceback (unless ``--debug``, which
    this adds to the command). Every other exception is a bug: it keeps its traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ShadowbillError as exc:
            if debugging():
                raise
            click.echo(f"shadowbill: error: {exc}", err=True)
            sys.exit(2)
        except OSError as exc:
            if debugging():
                raise
            click.echo(f"shadowbill: error: {os_reason(exc)}", err=True)
            sys.exit(2)

    return debug_option(wrapper)  # type: ignore[return-value]


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
