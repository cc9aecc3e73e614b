"""Output folders that are never seen half-written: staged beside, then moved into place.

Every folder of outputs shadowbill writes (a reconciliation's reports, ``check --out``,
a batch folder of ``migrate plan``, ``price``'s files) is written into a staging folder
``.<name>.partial-*`` beside it (the same file system) and published when complete:

- if the folder does not exist or is empty, by one ``rename`` (atomic: a reader sees
  the old state or the whole new folder, never a truncated ``report.html``);
- if it exists with files (an earlier run), file by file with ``os.replace`` (each file
  atomic), under an ``.shadowbill-incomplete`` marker created before the first file
  moves and removed after the last; files the earlier run wrote and this one did not
  are removed. A run interrupted in between leaves the marker, and readers
  (:func:`check_complete`) refuse such a folder.

A run that fails or is interrupted before publishing removes its staging folder (a
SIGKILL can leave one behind: it is hidden, named ``.partial``, and never read).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Final

from shadowbill.errors import ShadowbillError

INCOMPLETE: Final = ".shadowbill-incomplete"
MANIFEST: Final = ".shadowbill-files"  # the files the run wrote, so the next one can tidy


class IncompleteOutputError(ShadowbillError):
    """An output folder whose writing was interrupted; the message names it."""


class FolderTakenError(ShadowbillError):
    """An output folder that another run filled meanwhile (publishing refused to merge)."""


def check_complete(folder: Path) -> None:
    """Refuse a folder whose last writing was interrupted (its incomplete marker is there)."""
    if (Path(folder) / INCOMPLETE).exists():
        raise IncompleteOutputError(
            f"{folder}: its last writing was interrupted (files of two runs may be mixed); "
            "run the command that writes it again"
        )


def _files(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and p.name not in (INCOMPLETE, MANIFEST)
    )


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class StagedFolder:
    """A folder written under a temporary name and published into place when complete.

    Use as a context manager: write into :attr:`path`, call :meth:`publish`; leaving the
    block without publishing (an error, Ctrl-C) removes everything written.
    """

    def __init__(self, final: Path | str, *, merge: bool = True) -> None:
        self.final = Path(final).absolute()
        self.merge = merge  # False: refuse to publish over a folder that has files
        self._path: Path | None = None
        self.published = False

    @property
    def path(self) -> Path:
        """The staging folder to write into."""
        if self._path is None:
            raise RuntimeError("StagedFolder used outside its with-block")
        return self._path

    def __enter__(self) -> StagedFolder:
        """Create the staging folder beside the final one."""
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self._path = Path(
            tempfile.mkdtemp(prefix=f".{self.final.name}.partial-", dir=self.final.parent)
        )
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Remove the staging folder unless it was published."""
        if not self.published:
            self.discard()

    def moved(self, path: Path) -> Path:
        """Where a file written into the staging folder is once published."""
        return self.final / Path(path).relative_to(self.path)

    def discard(self) -> None:
        """Remove the staging folder and everything in it."""
        if self._path is not None:
            shutil.rmtree(self._path, ignore_errors=True)

    def publish(self) -> Path:
        """Move the staged files into place (see the module docstring); returns the folder."""
        stage = self.path
        files = _files(stage)
        (stage / MANIFEST).write_text(json.dumps(files, indent=0) + "\n", encoding="utf-8")
        try:
            os.rename(stage, self.final)  # replaces a missing or empty folder atomically
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise
            if not self.merge or not self.final.is_dir():
                raise FolderTakenError(
                    f"{self.final} already holds files written meanwhile; give another folder"
                ) from None
            self._merge(stage, files)
        self.published = True
        _fsync_dir(self.final.parent)
        return self.final

    def _merge(self, stage: Path, files: list[str]) -> None:
        final = self.final
        old: list[str] = []
        with contextlib.suppress(OSError, ValueError):
            old = json.loads((final / MANIFEST).read_text(encoding="utf-8"))
        (final / INCOMPLETE).write_text("interrupted while writing\n", encoding="utf-8")
        _fsync_dir(final)
        for rel in files:
            target = final / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / rel, target)
        for rel in set(old) - set(files):
            if isinstance(rel, str) and ".." not in Path(rel).parts:
                (final / rel).unlink(missing_ok=True)
        os.replace(stage / MANIFEST, final / MANIFEST)
        _fsync_dir(final)
        (final / INCOMPLETE).unlink()
        shutil.rmtree(stage, ignore_errors=True)
