"""The pair manifest: building it from real-format pairs tables, validating, reading, writing."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import soundfile as sf
from pyproj import Transformer

from geosound.data.manifest import (
    REQUIRED_COLUMNS,
    read_manifest,
    validate_manifest,
    write_manifest,
)
from geosound.data.pairs_table import manifest_from_pairs_table
from geosound.data.recipe import is_recipe
from geosound.errors import DataError, OutsideRasterError
from geosound.geo import RasterSource, chip_windows
from geosound.geo.images import format_image_ref, parse_image_ref

UTM32 = Transformer.from_crs("EPSG:32632", "EPSG:4326", always_xy=True)


def _pyarrow_works() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


needs_parquet = pytest.mark.skipif(
    not _pyarrow_works(),
    reason="pyarrow cannot be imported in this environment (pyarrow>=26 needs NumPy 2; "
    "geosound pins numpy<2, so install pyarrow<26)",
)


def _write_wav(path: Path, frequency: float = 440.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(8000) / 16000
    sf.write(path, 0.3 * np.sin(2 * np.pi * frequency * t), 16000)
    return path


def test_pairs_with_raster_give_windows_around_each_point(raster_pairs):
    table, raster = raster_pairs
    manifest = manifest_from_pairs_table(table, imagery=raster, chip_size=16)
    assert set(REQUIRED_COLUMNS) <= set(manifest.columns)
    assert manifest.crs.to_epsg() == 4326 and len(manifest) == 3
    with RasterSource(raster) as source:
        expected = chip_windows(source, manifest[["lon", "lat"]].to_numpy(), 16, "EPSG:4326")
    for (_, row), window in zip(manifest.iterrows(), expected, strict=True):
        path, parsed = parse_image_ref(row["image"])
        assert path == str(raster.resolve()) and parsed == window
        assert parsed.width == parsed.height == 16
        assert row["geometry"].contains(shapely.Point(row["lon"], row["lat"]))
        assert Path(row["audio"]).is_absolute() and Path(row["audio"]).is_file()
    first = manifest.iloc[0]
    # (500155, 5199905) is pixel column 15.5, row 9.5: the 16-px window starts at 7, 1.
    assert first["image"].endswith("#7,1,16,16")
    assert first["audio_caption"] == "recording 0: birds and wind" and first["label"] == "Forest"
    assert first["image_caption"] == "" and first["split"] == "train"
    assert first["source"] == "pairs" and first["licence"] == "unknown"
    assert list(manifest["month"]) == [4, 5, 6]
    assert list(manifest["hour"]) == [6.5, 7.5, 8.5]


def test_point_outside_raster_names_row_and_raster(raster_pairs):
    table, raster = raster_pairs
    frame = pd.read_csv(table)
    frame.loc[1, ["lon", "lat"]] = [2.35, 48.85]  # Paris, far outside the UTM 32 scene
    frame.to_csv(table, index=False)
    with pytest.raises(OutsideRasterError) as caught:
        manifest_from_pairs_table(table, imagery=raster)
    message = str(caught.value)
    assert "scene.tif" in message and "pairs.csv" in message
    assert "row 1" in message and "line 3" in message and "rec1" in message


def test_missing_audio_file_is_named(raster_pairs):
    table, raster = raster_pairs
    (table.parent / "audio" / "rec2.wav").unlink()
    with pytest.raises(DataError, match=r"rec2\.wav") as caught:
        manifest_from_pairs_table(table, imagery=raster)
    assert "row 2" in str(caught.value) and "pairs.csv" in str(caught.value)


def test_table_without_image_source_or_location(raster_pairs):
    table, _ = raster_pairs
    with pytest.raises(DataError, match="gives no image"):
        manifest_from_pairs_table(table)
    pd.read_csv(table).drop(columns=["lat"]).to_csv(table, index=False)
    with pytest.raises(DataError, match="lon and lat"):
        manifest_from_pairs_table(table)


@pytest.fixture
def chips_layout(tmp_path: Path, make_raster) -> Path:
    """The GeoSound / SoundingEarth layout: one chip file and one recording per sample."""
    root = tmp_path / "soundingearth"
    (root / "images").mkdir(parents=True)
    rows = []
    for i in range(3):
        chip = make_raster(f"chip{i}.tif", width=8, height=8)
        chip.rename(root / "images" / f"{i}.tif")
        _write_wav(root / "sounds" / f"{i}.wav")
        rows.append(
            {
                "key": i,
                "chip": f"images/{i}.tif",
                "audio_path": f"sounds/{i}.wav",
                "description": f"field recording {i}",
                "licence": "CC BY 4.0",
            }
        )
    points = gpd.GeoSeries(
        shapely.points([500100.0, 500200.0, 500300.0], [5199900.0] * 3), crs="EPSG:32632"
    )
    table = gpd.GeoDataFrame(pd.DataFrame(rows), geometry=points.to_crs("EPSG:3857"))
    path = root / "metadata.parquet"
    if _pyarrow_works():
        table.to_parquet(path)
    else:  # the same table as CSV where Parquet cannot be written
        path = root / "metadata.csv"
        wgs84 = points.to_crs("EPSG:4326")
        pd.DataFrame({**pd.DataFrame(rows), "lon": wgs84.x, "lat": wgs84.y}).to_csv(
            path, index=False
        )
    return path


def test_chips_layout(chips_layout: Path):
    manifest = manifest_from_pairs_table(chips_layout, split="val")
    expected_lon, expected_lat = UTM32.transform(500100.0, 5199900.0)
    first = manifest.iloc[0]
    assert first["lon"] == pytest.approx(expected_lon) and first["lat"] == pytest.approx(
        expected_lat
    )
    assert first["geometry"].geom_type == "Point"
    assert first["image"] == str(chips_layout.parent / "images" / "0.tif")
    assert parse_image_ref(first["image"])[1] is None
    assert first["audio"] == str(chips_layout.parent / "sounds" / "0.wav")
    assert first["audio_caption"] == "field recording 0" and first["licence"] == "CC BY 4.0"
    assert set(manifest["split"]) == {"val"}
    assert manifest["id"].tolist() == [f"metadata-{i:06d}" for i in range(3)]


def test_street_level_photos_keep_heading(tmp_path: Path):
    rows = []
    for i in range(2):
        _write_wav(tmp_path / f"a{i}.wav")
        (tmp_path / f"p{i}.jpg").write_bytes(b"\xff\xd8 not decoded here")
        rows.append(
            {"photo": f"p{i}.jpg", "audio": f"a{i}.wav", "lon": 8.5 + i, "lat": 47.3,
             "heading": 90.0 * i}
        )  # fmt: skip
    table = tmp_path / "photos.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    manifest = manifest_from_pairs_table(table, licence="CC0")
    assert manifest["heading"].tolist() == [0.0, 90.0]
    assert manifest["image"].tolist() == [str(tmp_path / "p0.jpg"), str(tmp_path / "p1.jpg")]
    assert manifest.geometry.iloc[1].equals(shapely.Point(9.5, 47.3))
    assert set(manifest["licence"]) == {"CC0"}


def test_image_refs_round_trip():
    from rasterio.windows import Window

    ref = format_image_ref("/data/scene#1.tif", Window(-3, 5, 64, 64))
    assert ref == "/data/scene#1.tif#-3,5,64,64"
    assert parse_image_ref(ref) == ("/data/scene#1.tif", Window(-3, 5, 64, 64))
    assert parse_image_ref("/data/scene#1.tif") == ("/data/scene#1.tif", None)
    assert is_recipe('  {"kind": "mix"}') and not is_recipe("/data/a.wav")


def _tiny_manifest() -> gpd.GeoDataFrame:
    frame = pd.DataFrame(
        {
            "id": ["a", "b"],
            "lon": [8.0, 9.0],
            "lat": [47.0, 47.5],
            "image": ["/x/a.tif", "/x/b.tif#0,0,64,64"],
            "audio": ["/x/a.wav", '{"kind": "mix", "sources": []}'],
            "image_caption": ["birds chirping in trees", ""],
            "audio_caption": ["birds chirping", ""],
            "label": ["Forest", ""],
            "split": ["train", "eval"],
            "source": ["test", "test"],
            "licence": ["CC0", "CC0"],
            "month": pd.array([5, None], dtype="Int64"),
        }
    )
    return gpd.GeoDataFrame(frame, geometry=shapely.points([8.0, 9.0], [47.0, 47.5]), crs=4326)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.drop(columns=["licence"]), "lacks required column"),
        (lambda m: m.assign(id=["a", "a"]), "not unique"),
        (lambda m: m.assign(split=["train", "holdout"]), "holdout"),
        (lambda m: m.assign(lat=[47.0, 95.0]), "'lat'"),
        (lambda m: m.assign(audio=["/x/a.wav", ""]), "'audio' is empty in row 1 \\(id b\\)"),
        (lambda m: m.assign(month=[5, 13]), "'month'"),
        (lambda m: m.assign(label=["Forest", None]), "'label' is null"),
        (lambda m: m.set_crs(None, allow_override=True), "no CRS"),
    ],
)
def test_validation_names_the_problem(change, message, tmp_path: Path):
    with pytest.raises(DataError, match=message) as caught:
        validate_manifest(change(_tiny_manifest()), tmp_path / "m.parquet")
    assert "m.parquet" in str(caught.value)


def test_invalid_manifest_never_replaces_a_file(tmp_path: Path):
    target = tmp_path / "m.parquet"
    target.write_bytes(b"old")
    with pytest.raises(DataError):
        write_manifest(_tiny_manifest().assign(split=["x", "y"]), target)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["m.parquet"]


@needs_parquet
def test_write_read_round_trip(tmp_path: Path, raster_pairs):
    table, raster = raster_pairs
    manifest = manifest_from_pairs_table(table, imagery=raster)
    path = write_manifest(manifest, tmp_path / "out" / "manifest.parquet")
    back = read_manifest(path)
    assert back.crs.to_epsg() == 4326
    pd.testing.assert_frame_equal(
        pd.DataFrame(back.drop(columns="geometry")),
        pd.DataFrame(manifest.drop(columns="geometry")),
        check_dtype=False,
    )
    assert back.geometry.geom_equals(manifest.geometry).all()
    assert sorted(p.name for p in path.parent.iterdir()) == ["manifest.parquet"]

    tiny = write_manifest(_tiny_manifest(), tmp_path / "tiny.parquet")
    assert read_manifest(tiny)["month"].isna().tolist() == [False, True]


@needs_parquet
def test_read_rejects_non_manifests(tmp_path: Path):
    with pytest.raises(DataError, match="not found"):
        read_manifest(tmp_path / "absent.parquet")
    junk = tmp_path / "junk.parquet"
    junk.write_text("hello")
    with pytest.raises(DataError, match="not a readable GeoParquet") as caught:
        read_manifest(junk)
    assert "junk.parquet" in str(caught.value)
    plain = tmp_path / "plain.parquet"
    pd.DataFrame({"id": ["a"]}).to_parquet(plain)
    with pytest.raises(DataError, match=r"plain\.parquet"):
        read_manifest(plain)
