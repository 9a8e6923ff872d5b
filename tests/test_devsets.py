"""Dev-set loaders: counts, paths and footprints on the real dev data; clear errors without it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import rasterio
import shapely
from rasterio.warp import transform_bounds

from geosound.config import dev_data_dir
from geosound.data import (
    EUROSAT_CLASSES,
    LANDCOVER_SOUNDS,
    load_ambient,
    load_esc50,
    load_eurosat_rgb,
    load_eurosat_tiles,
    load_georaster_scenes,
    load_soundscape_24h,
)
from geosound.data.devsets import (
    AMBIENT_FOLDER,
    ESC50_FOLDER,
    EUROSAT_MS_FOLDER,
    EUROSAT_RGB_FOLDER,
    GEORASTER_FOLDER,
    SOUNDSCAPE_24H_FOLDER,
)
from geosound.errors import DataError

LOADERS: dict[str, Callable[..., Any]] = {
    ESC50_FOLDER: load_esc50,
    EUROSAT_MS_FOLDER: load_eurosat_tiles,
    EUROSAT_RGB_FOLDER: load_eurosat_rgb,
    GEORASTER_FOLDER: load_georaster_scenes,
    AMBIENT_FOLDER: load_ambient,
    SOUNDSCAPE_24H_FOLDER: load_soundscape_24h,
}


def dev_folder(folder: str) -> Path:
    """The dev folder, or skip: a user's fresh machine has no dev data (CI does)."""
    path = dev_data_dir() / folder
    if not path.is_dir():
        pytest.skip(f"dev data set not found: {path} (set GEOSOUND_DEV_DATA)")
    return path


def assert_paths_exist(paths: pd.Series) -> None:
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in paths)


# --- EuroSAT MS tiles -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiles():
    dev_folder(EUROSAT_MS_FOLDER)
    return load_eurosat_tiles()


@pytest.mark.devdata
def test_eurosat_tiles_table(tiles) -> None:
    assert len(tiles) == 181
    assert tiles.crs.to_epsg() == 4326
    assert {"id", "path", "label", "crs", "lon", "lat", "split", "geometry"} <= set(tiles.columns)
    assert set(tiles["label"]) == set(EUROSAT_CLASSES)
    assert tiles["label"].nunique() == 10
    assert set(tiles["split"]) <= {"train", "test"}
    assert tiles["crs"].str.match(r"^EPSG:326\d\d$").all()
    assert tiles["id"].is_unique
    assert_paths_exist(tiles["path"])


@pytest.mark.devdata
def test_eurosat_footprints_contain_centres(tiles) -> None:
    centres = shapely.points(tiles["lon"].to_numpy(), tiles["lat"].to_numpy())
    assert shapely.contains(tiles.geometry.values, centres).all()
    # A 640 m tile is a few thousandths of a degree across.
    widths = tiles.geometry.bounds["maxx"] - tiles.geometry.bounds["minx"]
    assert widths.between(0.005, 0.03).all()


@pytest.mark.devdata
def test_eurosat_footprints_match_the_geotiffs(tiles) -> None:
    # One tile per UTM zone present: the index bounds must be the GeoTIFF's own bounds.
    sample = tiles.drop_duplicates("crs")
    assert len(sample) >= 2
    for row in sample.itertuples():
        with rasterio.open(row.path) as src:
            assert src.crs.to_string() == row.crs
            assert src.count == 13
            expected = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
        assert row.geometry.bounds == pytest.approx(expected, abs=2e-6), row.path


@pytest.mark.devdata
def test_eurosat_class_filter() -> None:
    dev_folder(EUROSAT_MS_FOLDER)
    forest_river = load_eurosat_tiles(classes=["Forest", "River"])
    assert set(forest_river["label"]) == {"Forest", "River"}
    assert len(forest_river) == 37
    assert len(load_eurosat_tiles(classes="Forest")) == 20
    with pytest.raises(DataError, match=r"unknown class.*'Forrest'"):
        load_eurosat_tiles(classes=["Forrest"])


# --- ESC-50 -----------------------------------------------------------------------------


@pytest.mark.devdata
def test_esc50_table() -> None:
    dev_folder(ESC50_FOLDER)
    clips = load_esc50()
    assert len(clips) == 168
    assert clips["label"].nunique() == 32
    assert {"path", "label", "fold", "target", "freesound_id", "licence"} <= set(clips.columns)
    assert clips["fold"].between(1, 5).all()
    assert clips["target"].between(0, 49).all()
    # One class name per target number, as upstream.
    assert clips.groupby("target")["label"].nunique().eq(1).all()
    # ESC-10 clips are CC BY 3.0, the rest CC BY-NC 3.0; the index records which.
    assert clips["esc10"].sum() == 36
    assert clips.loc[clips["esc10"], "licence"].str.startswith("CC-BY-3.0").all()
    assert clips.loc[~clips["esc10"], "licence"].str.startswith("CC-BY-NC-3.0").all()
    assert_paths_exist(clips["path"])
    assert all(p.endswith(".flac") for p in clips["path"])

    rain = load_esc50(classes=["rain", "wind"])
    assert set(rain["label"]) == {"rain", "wind"}
    with pytest.raises(DataError, match="unknown class"):
        load_esc50(classes=["vacuum_cleaner"])


@pytest.mark.devdata
def test_landcover_sounds_are_dev_esc50_classes() -> None:
    dev_folder(ESC50_FOLDER)
    esc50_classes = set(load_esc50()["label"])
    for landcover, sounds in LANDCOVER_SOUNDS.items():
        for sound in sounds["likely"] + sounds["possible"]:
            assert sound in esc50_classes, (landcover, sound)


def test_landcover_sounds_shape() -> None:
    assert set(LANDCOVER_SOUNDS) == set(EUROSAT_CLASSES)
    for landcover, sounds in LANDCOVER_SOUNDS.items():
        assert set(sounds) == {"likely", "possible"}, landcover
        assert sounds["likely"], landcover
        assert not set(sounds["likely"]) & set(sounds["possible"]), landcover


# --- EuroSAT RGB, ambience, 24 h soundscape, georaster scenes ----------------------------


@pytest.mark.devdata
def test_eurosat_rgb_table() -> None:
    dev_folder(EUROSAT_RGB_FOLDER)
    images = load_eurosat_rgb()
    assert len(images) == 3000
    assert images["label"].value_counts().to_dict() == {
        name: 600 for name in ("Forest", "Industrial", "Pasture", "Residential", "River")
    }
    assert_paths_exist(images["path"])


@pytest.mark.devdata
def test_ambient_table() -> None:
    dev_folder(AMBIENT_FOLDER)
    sounds = load_ambient()
    assert len(sounds) == 89
    assert {"path", "tags", "licence", "duration_s"} <= set(sounds.columns)
    assert all(isinstance(tags, tuple) and tags for tags in sounds["tags"])
    assert all("=" in tag for tags in sounds["tags"] for tag in tags)
    assert (sounds["duration_s"] > 0).all()
    assert sounds["licence"].str.len().gt(0).all()
    assert_paths_exist(sounds["path"])


@pytest.mark.devdata
def test_soundscape_24h_table() -> None:
    dev_folder(SOUNDSCAPE_24H_FOLDER)
    clips = load_soundscape_24h()
    assert len(clips) == 96
    assert pd.api.types.is_datetime64_any_dtype(clips["timestamp"])
    assert clips["timestamp"].iloc[0] == pd.Timestamp("2019-05-22T00:00:00")
    assert clips["timestamp"].iloc[-1] == pd.Timestamp("2019-05-22T23:45:00")
    assert clips["timestamp"].diff().dropna().eq(pd.Timedelta(minutes=15)).all()
    assert_paths_exist(clips["path"])


@pytest.mark.devdata
def test_georaster_scenes_table() -> None:
    dev_folder(GEORASTER_FOLDER)
    scenes = load_georaster_scenes()
    assert len(scenes) == 8
    assert scenes.crs.to_epsg() == 4326
    assert_paths_exist(scenes["path"])
    for row in scenes.itertuples():
        assert len(row.descriptions) == row.bands
        with rasterio.open(row.path) as src:
            assert (src.count, src.width, src.height, src.dtypes[0]) == (
                row.bands,
                row.width,
                row.height,
                row.dtype,
            )
            assert src.crs is not None


# --- errors without data ----------------------------------------------------------------


@pytest.mark.parametrize("folder", sorted(LOADERS))
def test_missing_root_names_the_folder(tmp_path: Path, folder: str) -> None:
    with pytest.raises(DataError) as info:
        LOADERS[folder](root=tmp_path / folder)
    assert folder in str(info.value)
    assert "GEOSOUND_DEV_DATA" in str(info.value)


@pytest.mark.parametrize("folder", sorted(LOADERS))
def test_default_root_follows_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder: str
) -> None:
    monkeypatch.setenv("GEOSOUND_DEV_DATA", str(tmp_path))
    with pytest.raises(DataError) as info:
        LOADERS[folder]()
    assert info.value.path == str((tmp_path / folder).resolve())


@pytest.mark.parametrize("folder", sorted(LOADERS))
def test_index_without_expected_columns(tmp_path: Path, folder: str) -> None:
    root = tmp_path / folder
    root.mkdir()
    (root / "index.csv").write_text("name,what\na.flac,x\n")
    with pytest.raises(DataError) as info:
        LOADERS[folder](root=root)
    message = str(info.value)
    assert folder in message and "lacks column(s): filename" in message


def test_missing_index_and_missing_files(tmp_path: Path) -> None:
    root = tmp_path / ESC50_FOLDER
    root.mkdir()
    with pytest.raises(DataError, match=r"no index\.csv"):
        load_esc50(root=root)
    (root / "index.csv").write_text(
        "filename,class,fold,target,freesound_id,license\n"
        "audio/1-1-A-0.flac,dog,1,0,1,CC-BY-NC-3.0\n"
    )
    with pytest.raises(DataError, match=r"1 file\(s\) listed .* missing: audio/1-1-A-0.flac"):
        load_esc50(root=root)
    (root / "audio").mkdir()
    (root / "audio" / "1-1-A-0.flac").write_bytes(b"")
    clips = load_esc50(root=root)
    assert clips.loc[0, "path"] == str(root.resolve() / "audio" / "1-1-A-0.flac")
    assert clips.loc[0, "label"] == "dog"
