"""Atomic writes: all or nothing, and temporary names that writers and the next run understand."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from geosound.atomic import atomic_path, remove_stale_temporaries, write_json, writer_tag
from geosound.geo import write_geopackage


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


def test_a_kept_suffix_ends_the_temporary_name_and_a_dead_writers_one_is_removed(tmp_path: Path):
    target = tmp_path / "layer.gpkg"
    with atomic_path(target, keep_suffix=True) as tmp:
        assert tmp.name.startswith(".layer.") and tmp.name.endswith(".tmp.gpkg")
        tmp.write_text("new")
    assert target.read_text() == "new"
    exited = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                            capture_output=True, text=True, check=True)  # fmt: skip
    stale = tmp_path / f".layer.{writer_tag().split('-')[0]}-{int(exited.stdout)}-0bad.tmp.gpkg"
    journal = stale.with_name(stale.name + "-journal")  # SQLite's, beside an open GeoPackage
    for left in (stale, journal):
        left.write_text("left behind by a killed run")
    assert sorted(remove_stale_temporaries(target)) == sorted([stale, journal])
    assert [p.name for p in tmp_path.iterdir()] == ["layer.gpkg"]


def test_geopackages_are_written_without_gdal_warning_about_their_name(tmp_path: Path):
    frame = gpd.GeoDataFrame({"a": [1]}, geometry=[shapely.Point(11.7, 48.7)], crs="EPSG:4326")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = write_geopackage(tmp_path / "points.gpkg", frame, "points")
    assert [str(w.message) for w in caught] == []  # GDAL: "extension should be 'gpkg'"
    assert gpd.read_file(path, layer="points")["a"].tolist() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["points.gpkg"]
