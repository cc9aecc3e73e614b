"""Child process of the hostile-configuration trials: runs the command line in-process for
each (file, slot) it is given, under the parent's RLIMIT_AS, one JSON line per trial."""

from __future__ import annotations

import json
import signal
import sys
import time
from typing import Any

from click.testing import CliRunner

from shadowbill.cli.app import main

SECONDS = 30


class _TooSlow(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _TooSlow


def trial(args: list[str]) -> dict[str, Any]:
    """Run one command line; its exit status, stderr and seconds."""
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(SECONDS)
    began = time.monotonic()
    try:
        result = CliRunner().invoke(main, args)
        code, err = result.exit_code, result.stderr
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            err += f"\n{type(result.exception).__name__}: {result.exception}"
    except _TooSlow:
        code, err = -1, "timed out"
    except MemoryError:
        code, err = -2, "MemoryError"
    finally:
        signal.alarm(0)
    return {"args": args, "code": code, "stderr": err, "seconds": time.monotonic() - began}


if __name__ == "__main__":
    for line in sys.stdin:
        print(json.dumps(trial(json.loads(line))), flush=True)
