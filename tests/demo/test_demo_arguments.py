"""The generator refuses arguments that cannot make a company (speed lives in bench/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shadowbill.demo.generate import generate
from shadowbill.errors import InputError


@pytest.mark.parametrize("kwargs", [{"customers": 0}, {"months": 0}])
def test_refuses_an_empty_company(tmp_path: Path, kwargs: dict[str, int]) -> None:
    with pytest.raises(InputError, match="at least 1"):
        generate(tmp_path / "legacy.db", **kwargs)


def test_refuses_a_directory_as_database(tmp_path: Path) -> None:
    (tmp_path / "legacy.db").mkdir()
    with pytest.raises(InputError, match="directory"):
        generate(tmp_path / "legacy.db", customers=20, months=2)
