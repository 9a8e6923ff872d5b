"""The committed fake rasters of tests/data/: reproducible by their script, and as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from geosound.geo import RasterSource, guess_preset, raster_info

DATA = Path(__file__).resolve().parent / "data"
SCRIPT = DATA / "make_rasters.py"


def test_the_script_reproduces_the_committed_files_byte_for_byte(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    written = sorted(p.name for p in tmp_path.glob("*.tif"))
    committed = sorted(p.name for p in DATA.glob("*.tif"))
    assert written == committed and len(written) == 6
    for name in written:
        assert (tmp_path / name).read_bytes() == (DATA / name).read_bytes(), name


@pytest.mark.parametrize("path", sorted(DATA.glob("*.tif")), ids=lambda p: p.name)
def test_every_file_is_small(path: Path):
    assert path.stat().st_size < 8_000


def test_position_coded_file_is_what_make_raster_writes(make_raster):
    reference = make_raster("reference.tif")  # the factory's defaults
    for name in ("utm_uint16.tif", "utm_uint16_nodata0.tif", "nocrs_uint16.tif"):
        with rasterio.open(DATA / name) as got, rasterio.open(reference) as want:
            assert np.array_equal(got.read(), want.read()), name
            assert got.transform == want.transform and got.dtypes == want.dtypes, name
            assert got.crs == (None if name.startswith("nocrs") else want.crs), name
            assert got.nodata == (0 if "nodata0" in name else None), name


def test_four_band_uint8_reads_as_rgb_with_nir(data_raster):
    path = data_raster("utm_rgbn8.tif")
    info = raster_info(path)
    assert (info.count, info.crs, info.dtypes[0]) == (4, "EPSG:32633", "uint8")
    preset = guess_preset(info.count, info.dtypes[0])
    assert preset.name == "rgb8" and preset.bands == (1, 2, 3)  # NIR left out
    with RasterSource(path) as src:
        nir = src.read_window(Window(0, 0, 32, 24), indexes=(4,))
    with rasterio.open(path) as raw:
        assert np.array_equal(nir.data, raw.read((4,)))
    assert not nir.mask.any() and nir.std() > 50  # noise, not a constant


def test_float_nodata_block_comes_back_masked(data_raster):
    path = data_raster("utm_float32_nodata.tif")
    info = raster_info(path)
    assert info.nodata == -9999.0 and info.crs == "EPSG:3035" and info.dtypes == ("float32",)
    with RasterSource(path) as src:
        pixels = src.read_window(Window(0, 0, 40, 30))
    expected = np.zeros((1, 30, 40), dtype=bool)
    expected[:, :10, :15] = True
    assert np.array_equal(pixels.mask, expected)
    assert pixels.min() >= 0.0 and pixels.max() < 1.0
