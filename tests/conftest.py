"""Shared fixtures: tiny real rasters and recordings written to tmp_path, and the dev data."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from geosound.config import dev_data_dir

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def dev_data() -> Path:
    """The shared dev data folder; skips the test (with the path) when it is absent."""
    root = dev_data_dir()
    if not root.is_dir():
        pytest.skip(f"dev data not found at {root} (set GEOSOUND_DEV_DATA)")
    return root


RasterFactory = Callable[..., Path]


@pytest.fixture
def make_raster(tmp_path: Path) -> RasterFactory:
    """Write a small GeoTIFF with a real CRS; returns a factory so tests choose the shape.

    The pixel values encode their own position (band, row, col) so tests can check that a
    window read returns exactly the pixels it should.
    """

    def factory(
        name: str = "scene.tif",
        width: int = 100,
        height: int = 80,
        count: int = 3,
        dtype: str = "uint16",
        crs: str | None = "EPSG:32632",
        nodata: float | None = None,
        origin: tuple[float, float] = (500000.0, 5200000.0),
        resolution: float = 10.0,
        tiled: bool = False,
    ) -> Path:
        path = tmp_path / name
        rows, cols = np.mgrid[0:height, 0:width]
        data = np.stack([(b * 10000 + rows * 100 + cols) % 60000 for b in range(count)])
        profile = {
            "driver": "GTiff",
            "width": width,
            "height": height,
            "count": count,
            "dtype": dtype,
            "transform": from_origin(*origin, resolution, resolution),
            "nodata": nodata,
        }
        if crs:
            profile["crs"] = crs
        if tiled:
            profile.update(tiled=True, blockxsize=32, blockysize=32)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data.astype(dtype))
        return path

    return factory


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None):
    """Run ``geosound`` in a subprocess, as a user would, and capture what it prints."""
    return subprocess.run(
        [sys.executable, "-m", "geosound", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=600,
    )
