"""Band presets, and the GeoTIFF/COG writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from geosound.errors import RasterError
from geosound.geo import PRESETS, get_preset, guess_preset, is_valid_cog, to_rgb, write_raster

TRANSFORM = from_origin(500000.0, 5200000.0, 10.0, 10.0)


def test_sentinel2_preset_picks_true_colour_and_scales():
    pixels = np.zeros((3, 2, 2), dtype=np.uint16)
    pixels[0] = 2750
    pixels[1] = 1375
    pixels[2] = 9000
    rgb = to_rgb(pixels, PRESETS["sentinel2-rgb"])
    assert rgb.dtype == np.float32
    assert np.allclose(rgb[:, 0, 0], [1.0, 0.5, 1.0])  # clipped at 1


def test_stretch_preset_uses_raster_percentiles_and_grey_becomes_rgb():
    pixels = np.ma.masked_array(np.array([[[10.0, 20.0], [30.0, 50.0]]]), mask=[[[0, 0], [0, 1]]])
    rgb = to_rgb(pixels, PRESETS["stretch-grey"], percentiles=np.array([[10.0, 30.0]]))
    assert rgb.shape == (3, 2, 2)
    assert np.allclose(rgb[0], [[0.0, 0.5], [1.0, 0.0]])  # masked pixel → 0
    with pytest.raises(ValueError, match="percentiles"):
        to_rgb(pixels, PRESETS["stretch-grey"])


def test_batch_axis_is_supported():
    rgb = to_rgb(np.full((5, 3, 4, 4), 255, dtype=np.uint8), PRESETS["rgb8"])
    assert rgb.shape == (5, 3, 4, 4) and np.allclose(rgb, 1.0)


@pytest.mark.parametrize(
    ("count", "dtype", "expected"),
    [
        (13, "uint16", "sentinel2-rgb"),
        (4, "uint8", "rgb8"),
        (4, "float64", "stretch-rgb"),
        (1, "float32", "stretch-grey"),
    ],
)
def test_guess_preset(count, dtype, expected):
    assert guess_preset(count, dtype).name == expected


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(RasterError, match="naip-rgb"):
        get_preset("nope")


def test_multiband_cog_has_descriptions_nodata_overviews(tmp_path: Path):
    data = np.random.default_rng(0).random((2, 600, 700)).astype(np.float32)
    path = write_raster(
        tmp_path / "layers.tif",
        data,
        TRANSFORM,
        "EPSG:32632",
        band_descriptions=["similarity: birds", "similarity: traffic"],
        nodata=-9999.0,
    )
    assert is_valid_cog(path)
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() == 32632
        assert src.descriptions == ("similarity: birds", "similarity: traffic")
        assert src.nodata == -9999.0
        assert src.overviews(1)
        assert np.allclose(src.read(2), data[1])
    assert [p.name for p in tmp_path.iterdir()] == ["layers.tif"]  # no temp file left


def test_categorical_cog_keeps_its_colour_table(tmp_path: Path):
    data = np.arange(64, dtype=np.uint8).reshape(8, 8) % 3
    path = write_raster(
        tmp_path / "concepts.tif",
        data,
        TRANSFORM,
        "EPSG:32632",
        band_descriptions=["concept"],
        nodata=255,
        colormap={0: (255, 0, 0), 1: (0, 255, 0), 2: (0, 0, 255)},
        overview_resampling="nearest",
    )
    with rasterio.open(path) as src:
        assert src.colormap(1)[2] == (0, 0, 255, 255)


def test_masked_data_is_written_as_nodata_and_plain_geotiff(tmp_path: Path):
    data = np.ma.masked_array(np.ones((1, 4, 4), dtype=np.float32), mask=np.eye(4)[None] > 0)
    path = write_raster(
        tmp_path / "plain.tif", data, TRANSFORM, "EPSG:4326", nodata=-1.0, cog=False
    )
    with rasterio.open(path) as src:
        assert src.read(1, masked=True).mask.sum() == 4


def test_failed_write_leaves_nothing_behind(tmp_path: Path):
    target = tmp_path / "out.tif"
    with pytest.raises(ValueError, match="band descriptions"):
        write_raster(target, np.zeros((2, 4, 4)), TRANSFORM, "EPSG:4326", band_descriptions=["a"])
    assert list(tmp_path.iterdir()) == []
