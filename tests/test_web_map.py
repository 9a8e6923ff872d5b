"""Layers on a folium web map: overlays where the layers are, sounds that play from popups, and
no matplotlib backend taken from the user's notebook."""

from __future__ import annotations

import base64
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import shapely
import soundfile as sf
import xarray as xr
from rasterio.transform import from_origin

from geosound.mapping.web_map import WEB_MERCATOR, _rgba, web_map

pytest.importorskip("folium")


def _layers() -> xr.Dataset:
    """Two bands over 4 x 5 cells of 100 m in UTM 32N (Bavaria), one cell without data."""
    values = np.arange(40, dtype=np.float32).reshape(2, 4, 5) / 40
    values[:, 0, 0] = np.nan
    transform = from_origin(700_000, 5_400_000, 100, 100)
    x = 700_000 + 50 + 100 * np.arange(5)
    y = 5_400_000 - 50 - 100 * np.arange(4)
    data = xr.DataArray(values, dims=("band", "y", "x"),
                        coords={"band": ["text: birds", "text: rain"], "y": y, "x": x})
    layers = xr.Dataset({"similarity": data})
    return layers.rio.write_crs("EPSG:32632").rio.write_transform(transform)


def test_overlays_cover_the_layers_in_lat_lon(tmp_path: Path):
    fmap = web_map(_layers())
    page = fmap.get_root().render()
    assert "text: birds" in page and "text: rain" in page
    # The bounds folium gets are the layer's extent in degrees (UTM 32N, 700 km E, 5,400 km N).
    bounds = [float(v) for v in re.findall(r"\[\[(4[89]\.\d+), (1[0-3]\.\d+)\]", page)[0]]
    assert bounds[0] == pytest.approx(48.72, abs=0.05)
    assert bounds[1] == pytest.approx(11.74, abs=0.05)
    assert "similarity (2nd to 98th percentile" in page


def test_cells_without_data_are_transparent():
    import matplotlib

    layer = _layers()["similarity"].sel(band="text: birds")
    mercator = layer.rio.reproject(WEB_MERCATOR, nodata=np.nan)
    image = _rgba(mercator, matplotlib.colormaps["magma"], 0.0, 1.0)
    assert image.shape[-1] == 4
    assert image[..., 3].min() == 0 and image[..., 3].max() == 255
    assert image[0, 0, 3] == 0  # the cell without data, at the layer's top-left corner


def test_an_unknown_band_is_named():
    with pytest.raises(ValueError, match="no band 'text: wind'"):
        web_map(_layers(), bands=["text: wind"])


def test_a_tile_popup_plays_its_retrieved_sounds(tmp_path: Path):
    clip = tmp_path / "tone.wav"
    sf.write(clip, 0.3 * np.sin(2 * np.pi * 660 * np.arange(8000) / 16000), 16000)
    sounds = gpd.GeoDataFrame(
        {"sound_1": [str(clip)], "class_1": ["tone <660 Hz>"], "score_1": [0.5]},
        geometry=[shapely.box(700_100, 5_399_700, 700_200, 5_399_800)],
        crs="EPSG:32632",
    )
    page = web_map(_layers(), sounds=sounds).get_root().render()
    assert "tone &lt;660 Hz&gt; (0.50)" in page  # the class is escaped, not injected
    encoded = re.search(r"data:audio/wav;base64,([A-Za-z0-9+/=]+)", page)
    assert encoded is not None
    samples, rate = sf.read(io.BytesIO(base64.b64decode(encoded.group(1))))
    assert rate == 16_000 and len(samples) > 0


def test_importing_geosound_keeps_the_users_matplotlib_backend(tmp_path: Path):
    script = (
        "import matplotlib, numpy as np, xarray as xr\n"
        "from geosound.mapping.preview import write_layers_preview\n"
        "layers = xr.DataArray(np.zeros((1, 2, 2)), dims=('band', 'y', 'x'),\n"
        "    coords={'band': ['a'], 'y': [1.0, 0.0], 'x': [0.0, 1.0]})\n"
        f"write_layers_preview({str(tmp_path / 'p.png')!r}, layers)\n"
        "print(matplotlib.get_backend())\n"
    )
    env = {**os.environ, "MPLBACKEND": "svg"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip().lower() == "svg"
    assert (tmp_path / "p.png").stat().st_size > 0
