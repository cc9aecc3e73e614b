"""Output folders at an fsspec URL (``s3://bucket/prefix``, ``gs://``, ...) for a data lake.

Every output shadowbill writes (a snapshot, a report folder, hand-over files) is written to a
local temporary folder first and uploaded only when it is complete, through ``fsspec``
(``s3fs`` for S3, installed with the ``s3`` extra). The folder's completion files
(``manifest.json`` of a snapshot, ``summary.json`` of a report) are uploaded last, so a
reader that finds them finds everything else too; an output that failed half-way is never
uploaded at all. Credentials and the endpoint come from the environment, as the storage
library reads them (for S3: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_ENDPOINT_URL``); they are never part of the URL shadowbill prints.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from shadowbill.errors import InputError

LAST: Final = frozenset({"manifest.json", "summary.json", "COMPLETE", "_SUCCESS"})
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://")


def is_url(target: str | Path) -> bool:
    """True for an fsspec URL other than a local file one."""
    text = str(target)
    return bool(_URL.match(text)) and not text.startswith("file://")


def _filesystem(url: str) -> tuple[object, str]:
    try:
        import fsspec
    except ImportError as exc:  # pragma: no cover - fsspec comes with dask
        raise InputError(f"{url}: writing to a URL needs fsspec") from exc
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as exc:
        scheme = url.split("://", 1)[0]
        extra = " (pip install 'shadowbill[s3]')" if scheme in ("s3", "s3a") else ""
        raise InputError(f"{url}: no file system for {scheme}:// is installed{extra}") from exc
    except ValueError as exc:
        raise InputError(f"{url}: not a usable output URL ({exc})") from exc


def upload_folder(local: Path, url: str) -> int:
    """Upload every file of ``local`` under ``url``, completion files last; returns the count."""
    fs, root = _filesystem(url)
    files = sorted(p for p in Path(local).rglob("*") if p.is_file())
    ordered = [p for p in files if p.name not in LAST or p.parent != local] + [
        p for p in files if p.name in LAST and p.parent == local
    ]
    root = root.rstrip("/")
    try:
        for path in ordered:
            fs.put_file(str(path), f"{root}/{path.relative_to(local).as_posix()}")  # type: ignore[attr-defined]
    except (OSError, PermissionError) as exc:
        raise InputError(f"could not write {url}: {exc}") from exc
    except Exception as exc:  # the storage library's own errors (e.g. botocore's)
        if type(exc).__module__.split(".")[0] in ("botocore", "aiobotocore", "s3fs", "gcsfs"):
            raise InputError(f"could not write {url}: {type(exc).__name__}: {exc}") from exc
        raise
    return len(ordered)


@contextmanager
def output_folder(target: str | Path) -> Iterator[Path]:
    """A local folder to write an output into: ``target`` itself, or for a URL a temporary
    folder uploaded to it when the block completes (and discarded if it fails)."""
    if not is_url(target):
        yield Path(target)
        return
    _filesystem(str(target))  # an unusable URL fails before the work, not after
    tmp = Path(tempfile.mkdtemp(prefix="shadowbill-out-"))
    try:
        local = tmp / "out"
        yield local
        upload_folder(local, str(target))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
