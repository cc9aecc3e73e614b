"""Output folders are staged beside and published whole; an interrupted run is detectable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shadowbill.output_folder import (
    INCOMPLETE,
    FolderTakenError,
    IncompleteOutputError,
    StagedFolder,
    check_complete,
)


def _visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".partial-" in p.name]


def test_a_new_folder_appears_whole_and_the_staging_goes(tmp_path: Path) -> None:
    final = tmp_path / "report"
    with StagedFolder(final) as staged:
        (staged.path / "a.txt").write_text("a")
        (staged.path / "sub").mkdir()
        (staged.path / "sub" / "b.txt").write_text("b")
        assert not final.exists()
        staged.publish()
    assert _visible(final) == ["a.txt", "sub"] and (final / "sub" / "b.txt").read_text() == "b"
    assert _leftovers(tmp_path) == []
    check_complete(final)


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_run_leaves_no_new_folder_and_an_old_one_untouched(
    tmp_path: Path, error: BaseException
) -> None:
    fresh = tmp_path / "fresh"
    with pytest.raises(type(error)), StagedFolder(fresh) as staged:
        (staged.path / "report.html").write_text("<html>PASS")
        raise error
    assert not fresh.exists() and _leftovers(tmp_path) == []

    old = tmp_path / "old"
    with StagedFolder(old) as staged:
        (staged.path / "report.html").write_text("old report")
        staged.publish()
    with pytest.raises(type(error)), StagedFolder(old) as staged:
        (staged.path / "findings.csv").write_text("new findings")
        raise error
    assert _visible(old) == ["report.html"] and (old / "report.html").read_text() == "old report"
    check_complete(old)


def test_publishing_over_an_earlier_run_replaces_its_files_and_keeps_others(
    tmp_path: Path,
) -> None:
    final = tmp_path / "out"
    with StagedFolder(final) as staged:
        (staged.path / "report.html").write_text("run 1")
        (staged.path / "only_in_run_1.csv").write_text("x")
        staged.publish()
    (final / "notes.txt").write_text("the user's own file")
    with StagedFolder(final) as staged:
        (staged.path / "report.html").write_text("run 2")
        staged.publish()
    assert _visible(final) == ["notes.txt", "report.html"]
    assert (final / "report.html").read_text() == "run 2"
    check_complete(final)


def test_a_merge_interrupted_half_way_is_refused_by_readers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    final = tmp_path / "out"
    with StagedFolder(final) as staged:
        (staged.path / "findings.csv").write_text("old")
        (staged.path / "report.html").write_text("old")
        staged.publish()
    moved: list[str] = []
    real_replace = os.replace

    def dying_replace(src: str | Path, dst: str | Path) -> None:
        if moved:
            raise KeyboardInterrupt  # Ctrl-C after the first file moved
        moved.append(str(dst))
        real_replace(src, dst)

    with pytest.raises(KeyboardInterrupt), StagedFolder(final) as staged:
        (staged.path / "findings.csv").write_text("new")
        (staged.path / "report.html").write_text("new")
        monkeypatch.setattr(os, "replace", dying_replace)
        staged.publish()
    monkeypatch.undo()
    assert (final / INCOMPLETE).exists()
    with pytest.raises(IncompleteOutputError, match="interrupted"):
        check_complete(final)


def test_without_merge_a_folder_filled_meanwhile_is_refused(tmp_path: Path) -> None:
    final = tmp_path / "batch"
    with StagedFolder(final, merge=False) as staged:
        (staged.path / "plan.json").write_text("{}")
        final.mkdir()
        (final / "plan.json").write_text('{"batch_id": "other"}')
        with pytest.raises(FolderTakenError):
            staged.publish()
    assert (final / "plan.json").read_text() == '{"batch_id": "other"}'
    assert _leftovers(tmp_path) == []
