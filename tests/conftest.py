"""Shared fixtures: the committed fake rasters (tests/data/), tiny real rasters and recordings
written to tmp_path, the geosound CLI in a subprocess, and the dev data.

Test modules never import each other (nor this file): what they share lives here as fixtures.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import soundfile as sf
from pyproj import Transformer
from rasterio.transform import from_origin

from geosound.config import dev_data_dir

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"  # written by tests/data/make_rasters.py

# The encoder ids a test checkpoint is built on (the real default encoders).
TEST_ENCODERS = {"image": "efficientnet-lite0@1", "audio": "aisfx@1", "text": "minilm-l6@1"}


@pytest.fixture
def dev_data() -> Path:
    """The shared dev data folder; skips the test (with the path) when it is absent."""
    root = dev_data_dir()
    if not root.is_dir():
        pytest.skip(f"dev data not found at {root} (set GEOSOUND_DEV_DATA)")
    return root


# -- rasters -----------------------------------------------------------------------------------

DataRaster = Callable[..., Path]


@pytest.fixture
def data_raster(tmp_path: Path) -> DataRaster:
    """Copy a committed raster of tests/data/ into tmp_path (as ``as_name``) and return it.

    The files and their pixels are listed in tests/data/make_rasters.py; ``utm_uint16.tif`` is
    exactly what ``make_raster()`` writes with its defaults (position-coded pixels). A copy, so a
    test may open it ``r+`` or write beside it without touching the committed file.
    """

    def copy(name: str, as_name: str | None = None) -> Path:
        source = DATA / name
        if not source.is_file():
            raise FileNotFoundError(f"{source} (run tests/data/make_rasters.py)")
        target = tmp_path / (as_name or name)
        shutil.copyfile(source, target)
        return target

    return copy


RasterFactory = Callable[..., Path]


@pytest.fixture
def make_raster(tmp_path: Path) -> RasterFactory:
    """Write a small GeoTIFF with a real CRS; returns a factory so tests choose the shape.

    The pixel values encode their own position (band, row, col) so tests can check that a
    window read returns exactly the pixels it should. For the common shapes use the committed
    files instead (``data_raster``).
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


# -- recordings with imagery -------------------------------------------------------------------


def write_tone(path: Path, frequency: float = 440.0) -> Path:
    """Half a second of a sine at 16 kHz, as a WAV (parent folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(8000) / 16000
    sf.write(path, 0.3 * np.sin(2 * np.pi * frequency * t), 16000)
    return path


@pytest.fixture
def raster_pairs(tmp_path: Path, data_raster: DataRaster) -> tuple[Path, Path]:
    """A real-format pairs table: a UTM GeoTIFF, WAV recordings, and a CSV with relative paths.

    The raster is ``utm_uint16.tif`` (x 500000..501000, y 5199200..5200000, EPSG:32632) as
    ``scene.tif``; the three points lie inside it.
    """
    raster = data_raster("utm_uint16.tif", "scene.tif")
    to_lonlat = Transformer.from_crs("EPSG:32632", "EPSG:4326", always_xy=True)
    folder = tmp_path / "dataset"
    utm = [(500155.0, 5199905.0), (500500.0, 5199600.0), (500995.0, 5199205.0)]
    rows = []
    for i, (x, y) in enumerate(utm):
        write_tone(folder / "audio" / f"rec{i}.wav", 300.0 + 100 * i)
        lon, lat = to_lonlat.transform(x, y)
        rows.append(
            {
                "id": f"rec{i}",
                "audio": f"audio/rec{i}.wav",
                "lon": lon,
                "lat": lat,
                "caption": f"recording {i}: birds and wind",
                "label": "Forest",
                "datetime": f"2021-0{i + 4}-12T0{i + 6}:30:00",
            }
        )
    table = folder / "pairs.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    return table, raster


# -- models ------------------------------------------------------------------------------------


def _random_checkpoint(path: Path, seed: int) -> Path:
    """An untrained tiny Sat2Sound on the real encoders: enough to test the plumbing."""
    import torch

    from geosound.models import build_sat2sound
    from geosound.models.checkpoint import save_checkpoint

    torch.manual_seed(seed)
    model = build_sat2sound("tiny")
    save_checkpoint(path, model, TEST_ENCODERS, {"note": "random heads, tests only"})
    return path


@pytest.fixture(scope="session")
def random_checkpoint() -> Callable[[Path, int], Path]:
    """``random_checkpoint(path, seed)`` saves a tiny Sat2Sound with random heads at ``path``."""
    return _random_checkpoint


# -- the command line --------------------------------------------------------------------------


def _run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``geosound`` in a subprocess, as a user would, and capture what it prints."""
    return subprocess.run(
        [sys.executable, "-m", "geosound", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


@pytest.fixture
def run_benchmark(tmp_path: Path) -> Callable[..., tuple[list[str], dict]]:
    """``run_benchmark(name, *args, timeout=...)``: ``benchmarks/NAME.py --quick ARGS`` run as
    a script in tmp_path; returns its report lines and its JSON result (exit 0 asserted)."""

    def run(name: str, *args: str, timeout: int = 300) -> tuple[list[str], dict]:
        result_path = tmp_path / "result.json"
        script = REPO / "benchmarks" / f"{name}.py"
        command = [sys.executable, str(script), "--quick", *args,
                   "--workdir", str(tmp_path), "--json", str(result_path)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout.splitlines(), json.loads(result_path.read_text())

    return run


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_cli(*args, cwd=None, env=None)``: ``geosound ARGS`` in a subprocess, captured."""
    return _run_cli
