"""The ``--out`` option of commands whose output may go to a data lake (an fsspec URL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from shadowbill.output_urls import is_url


class _OutputFolder(click.ParamType):
    """A local folder (a Path) or an fsspec URL kept as text (s3://bucket/prefix)."""

    name = "folder_or_url"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, Path) or is_url(value):
            return value
        return click.Path(file_okay=False, path_type=Path).convert(value, param, ctx)


OUTPUT = _OutputFolder()


def shown(path: Path | str, local: Path, target: Path | str) -> str:
    """Where an output file ends up: its path, or its URL once the folder is uploaded."""
    if not is_url(target):
        return str(path)
    return f"{str(target).rstrip('/')}/{Path(path).relative_to(local).as_posix()}"
