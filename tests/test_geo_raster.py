"""RasterSource and raster_info on tiny real GeoTIFFs, and on the dev scenes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rasterio.windows import Window

from geosound.errors import RasterError
from geosound.geo import RasterSource, raster_info


def test_info_reports_crs_bounds_size_bands(data_raster):
    path = data_raster("utm_uint16_nodata0.tif")  # 100 x 80 px, 3 bands
    info = raster_info(path)
    assert info.crs == "EPSG:32632"
    assert info.bounds == (500000.0, 5199200.0, 501000.0, 5200000.0)
    assert info.shape == (3, 80, 100)
    assert info.dtypes == ("uint16",) * 3
    assert info.nodata == 0
    assert info.as_dict()["resolution"] == [10.0, 10.0]


def test_read_window_inside_returns_exact_pixels(data_raster):
    with RasterSource(data_raster("utm_uint16.tif")) as src:
        block = src.read_window(Window(10, 20, 5, 4), indexes=(2,))
    assert block.shape == (1, 4, 5)
    assert not block.mask.any()
    assert block[0, 0, 0] == 10000 + 20 * 100 + 10


def test_read_window_past_edge_is_masked_and_zero(make_raster):
    with RasterSource(make_raster(width=50, height=40)) as src:
        block = src.read_window(Window(40, -5, 20, 10))
    assert block.shape == (3, 10, 20)
    assert block.mask[:, :5, :].all()  # rows above the raster
    assert block.mask[:, :, 10:].all()  # columns right of the raster
    assert not block.mask[:, 5:, :10].any()
    assert (block.data[block.mask] == 0).all()
    assert block[0, 5, 0] == 0 * 100 + 40


def test_nodata_pixels_are_masked(make_raster):
    path = make_raster(nodata=105)  # band 1 value at row 1, col 5
    with RasterSource(path) as src:
        block = src.read_window(Window(0, 0, 10, 3), indexes=(1,))
    assert block.mask[0, 1, 5]
    assert block.mask.sum() == 1


def test_window_wholly_outside_is_all_masked(data_raster):
    with RasterSource(data_raster("utm_uint16.tif")) as src:
        block = src.read_window(Window(500, 500, 8, 8))
    assert block.mask.all()


def test_missing_file_names_the_file(tmp_path: Path):
    with pytest.raises(RasterError, match=r"missing\.tif: file not found"):
        raster_info(tmp_path / "missing.tif")


def test_text_file_is_not_a_raster(tmp_path: Path):
    path = tmp_path / "notes.tif"
    path.write_text("not a raster\n")
    with pytest.raises(RasterError, match=r"notes\.tif: not a raster GDAL can read"):
        raster_info(path)


def test_raster_without_crs_is_refused_unless_allowed(data_raster):
    path = data_raster("nocrs_uint16.tif")
    with pytest.raises(RasterError, match="has no CRS"):
        raster_info(path)
    assert raster_info(path, require_crs=False).crs is None


def test_unknown_band_is_refused(make_raster):
    with RasterSource(make_raster(count=2)) as src, pytest.raises(RasterError, match=r"\[3\]"):
        src.read_window(Window(0, 0, 2, 2), indexes=(3,))


def test_decimated_read_and_percentiles_stay_small(make_raster):
    with RasterSource(make_raster(width=400, height=200)) as src:
        small = src.read_decimated((1,), max_size=100)
        percentiles = src.band_percentiles((1, 2), max_size=100)
    assert small.shape == (1, 50, 100)
    assert percentiles.shape == (2, 2)
    assert np.all(percentiles[:, 0] < percentiles[:, 1])


@pytest.mark.devdata
def test_info_on_every_dev_scene_and_eurosat_tile(dev_data: Path):
    scenes = sorted((dev_data / "georaster_scenes").glob("*.tif"))
    tiles = sorted((dev_data / "eurosat_ms_geotiff").glob("*/*.tif"))
    assert len(scenes) == 8 and len(tiles) == 181
    for path in scenes + tiles:
        info = raster_info(path)
        assert info.crs and info.width > 0 and info.count >= 1
    eurosat = raster_info(tiles[0])
    assert eurosat.count == 13 and eurosat.dtypes[0] == "uint16"
    assert eurosat.crs.startswith("EPSG:326")
