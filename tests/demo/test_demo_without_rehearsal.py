"""A plain install (no ``shadowbill[rehearsal]``): `shadowbill demo` says which extra to install and exits 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# Runs the CLI in a Python where aiohttp and localstripe cannot be imported, as after a
# plain `pip install shadowbill` (the finder refuses them before any other is asked).
WITHOUT_EXTRA = """
import sys

class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("aiohttp", "localstripe"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
from shadowbill.cli.app import main
main(sys.argv[1:], prog_name="shadowbill")
"""


@pytest.mark.slow
def test_demo_without_rehearsal_extra_names_it_and_exits_zero(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    args = ["demo", "--customers", "120", "--months", "6", "--out", str(out)]
    run = subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRA, *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    hints = [line for line in run.stdout.splitlines() if "shadowbill[rehearsal]" in line]
    assert len(hints) == 1, run.stdout
    assert "pip install 'shadowbill[rehearsal]'" in hints[0]
    assert "aiohttp" in hints[0]
    assert "Traceback" not in run.stderr
    assert (out / "report-phase2" / "summary.json").exists()
    assert not (out / "migration").exists()


def test_missing_server_modules_names_what_cannot_be_imported() -> None:
    probe = WITHOUT_EXTRA.split("from shadowbill.cli.app")[0] + (
        "from shadowbill.rehearsal.extra import missing_server_modules\n"
        "print(','.join(missing_server_modules()))\n"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "aiohttp,localstripe"


def test_missing_server_modules_is_empty_with_the_extra() -> None:
    from shadowbill.rehearsal.extra import missing_server_modules

    assert missing_server_modules() == []
