"""Atomic writes: all or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from geosound.atomic import atomic_path, write_json


def test_success_replaces_destination(tmp_path: Path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and not tmp.exists()
        tmp.write_text("new")
        assert target.read_text() == "old"  # readers still see the old file mid-write
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_failure_mid_write_leaves_old_file_and_no_temp(tmp_path: Path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk on fire")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_nothing_written_is_an_error(tmp_path: Path):
    with (
        pytest.raises(FileNotFoundError, match="nothing was written"),
        atomic_path(tmp_path / "x.json"),
    ):
        pass
    assert list(tmp_path.iterdir()) == []


def test_write_json_creates_parent_folders(tmp_path: Path):
    path = write_json(tmp_path / "a" / "b.json", {"k": [1, 2]})
    assert path.read_text().startswith("{")
