"""Layers on a folium web map: overlays where the layers are, sounds that play from popups, and
no matplotlib backend taken from the user's notebook."""

from __future__ import annotations

import base64
import io
import json
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
from rasterio.warp import transform_bounds

from geosound.mapping.web_map import WEB_MERCATOR, _rgba, web_map

folium = pytest.importorskip("folium")
branca_colormap = pytest.importorskip("branca.colormap")


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


def _overlay_bounds(page: str) -> list[list[list[float]]]:
    """The bounds of every image overlay in a rendered page (not fit_bounds, not the popups)."""
    found = re.findall(r'L\.imageOverlay\(\s*"data:image/png;base64,[^"]+",\s*(\[\[.*?\]\])', page)
    return [json.loads(bounds) for bounds in found]


def _outlines(page: str) -> list[dict]:
    """The GeoJSON geometries of a rendered page: the sound tiles' outlines."""
    geometries = []
    for found in re.findall(r"_add\((\{.*?\})\);", page):
        data = json.loads(found)
        features = data.get("features", [{"geometry": data}])
        geometries += [feature["geometry"] for feature in features]
    return geometries


def _popup_text(page: str) -> str:
    """A rendered page without its inline clips, whose base64 can hold any word."""
    return re.sub(r"data:audio/wav;base64,[A-Za-z0-9+/=]+", "data:audio/wav", page)


def _tile_layer(fmap: folium.Map) -> folium.TileLayer:
    return next(child for child in fmap._children.values()
                if isinstance(child, folium.TileLayer))


def _legend(fmap: folium.Map) -> branca_colormap.LinearColormap:
    return next(child for child in fmap._children.values()
                if isinstance(child, branca_colormap.LinearColormap))


def _sounds(paths: list[str], **columns: list[object]) -> gpd.GeoDataFrame:
    """One tile of the layers (UTM 32N) per path, retrieving that one sound."""
    return gpd.GeoDataFrame(
        {"sound_1": paths, **columns},
        geometry=[shapely.box(700_100, 5_399_700, 700_200, 5_399_800)] * len(paths),
        crs="EPSG:32632",
    )


def _tone(path: Path, frequency: float = 660) -> str:
    sf.write(path, 0.3 * np.sin(2 * np.pi * frequency * np.arange(8000) / 16000), 16000)
    return str(path)


def test_overlays_cover_the_layers_in_lat_lon():
    layers = _layers()
    page = web_map(layers).get_root().render()
    assert "text: birds" in page and "text: rain" in page
    overlays = _overlay_bounds(page)
    assert len(overlays) == 2 and overlays[0] == overlays[1]
    [[south, west], [north, east]] = overlays[0]
    # The layer's own extent (UTM 32N, 700 km E, 5,400 km N) in degrees, not metres: the Web
    # Mercator overlay's grid matches it to within a cell (100 m: ~0.0009° N, ~0.0014° E).
    lon0, lat0, lon1, lat1 = transform_bounds("EPSG:32632", "EPSG:4326", *layers.rio.bounds())
    assert lat0 == pytest.approx(48.717, abs=0.001) and lon0 == pytest.approx(11.719, abs=0.001)
    assert [south, west, north, east] == pytest.approx([lat0, lon0, lat1, lon1], abs=0.0009)
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
    sounds = _sounds([_tone(tmp_path / "tone.wav")], class_1=["tone <660 Hz> ${x} `);x(`"],
                     score_1=[0.5])
    page = web_map(_layers(), sounds=sounds).get_root().render()
    # The class is escaped, not injected (in HTML, nor in the JS template folium puts it in).
    assert "tone &lt;660 Hz&gt; &#36;{x} &#96;);x(&#96; (0.50)" in page
    assert "`);x(`" not in page  # a backtick would end folium's JS template literal
    # The tile's outline is in lat/lon degrees, where the tile is.
    [outline] = _outlines(page)
    corners = np.array(outline["coordinates"][0])
    expected = np.array(sounds.to_crs("EPSG:4326").geometry[0].exterior.coords)
    np.testing.assert_allclose(corners, expected, atol=1e-9)
    assert corners[:, 1].min() == pytest.approx(48.72, abs=0.01)
    assert corners[:, 0].min() == pytest.approx(11.72, abs=0.01)
    encoded = re.search(r"data:audio/wav;base64,([A-Za-z0-9+/=]+)", page)
    assert encoded is not None
    samples, rate = sf.read(io.BytesIO(base64.b64decode(encoded.group(1))))
    assert rate == 16_000 and len(samples) > 0


def _clip_store(page: str) -> dict[str, str]:
    """The page's one table of clips (key → data URI) that the popups' players draw from."""
    [found] = re.findall(r"var geosound_clips_\w+ = (\{.*?\});", page)
    return json.loads(found)


def test_a_clip_that_many_tiles_retrieved_is_in_the_page_once(tmp_path: Path):
    tone, low = _tone(tmp_path / "tone.wav"), _tone(tmp_path / "low.wav", 220)
    tone_again = os.path.join(tmp_path, ".", "tone.wav")  # the same file, spelt otherwise
    sounds = _sounds([tone, tone_again, low], sound_2=[low, None, tone], class_1=["a", "b", "c"])
    page = web_map(_layers(), sounds=sounds).get_root().render()
    store = _clip_store(page)
    assert page.count("data:audio/wav;base64,") == len(store) == 2
    players = re.findall(r'<audio controls preload=\\?"none\\?" data-geosound-clip=\\?"(\w+)', page)
    assert len(players) == 5 and set(players) == set(store)
    # Each key holds its own recording: tone and low are told apart by their samples.
    heard = {}
    for key, uri in store.items():
        samples, rate = sf.read(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
        heard[key] = samples
        assert rate == 16_000
    assert not np.allclose(*heard.values())
    # The players get their clip when a popup opens: the handler is bound to this map.
    fmap_name = re.search(r"var (map_\w+) = L\.map\(", page).group(1)
    assert f'{fmap_name}.on("popupopen"' in page


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


def test_a_url_basemap_gets_an_attribution():
    url = "https://{s}.tile.example/{z}/{x}/{y}.png"
    fmap = web_map(_layers(), basemap=url)  # folium refuses a custom URL with no attribution
    assert _tile_layer(fmap).tiles == url
    assert _tile_layer(fmap).options["attribution"] == "Tiles © tile.example"
    assert '"https://{s}.tile.example/{z}/{x}/{y}.png"' in fmap.get_root().render()
    fmap = web_map(_layers(), basemap=url, attribution="© Example Maps")
    assert _tile_layer(fmap).options["attribution"] == "© Example Maps"


def test_a_named_basemap_keeps_its_own_attribution_and_a_typo_is_named():
    fmap = web_map(_layers(), basemap="OpenStreetMap")
    assert "openstreetmap.org/copyright" in _tile_layer(fmap).options["attribution"]
    with pytest.raises(ValueError, match="unknown basemap 'OpenStreetMapp'"):
        web_map(_layers(), basemap="OpenStreetMapp", attribution="someone")


def test_a_single_band_name_is_one_band():
    page = web_map(_layers(), bands="text: rain").get_root().render()
    assert len(_overlay_bounds(page)) == 1
    assert "text: rain" in page and "text: birds" not in page


def _without_crs() -> xr.Dataset:
    layers = _layers()
    return xr.Dataset({"similarity": (("band", "y", "x"), layers["similarity"].values)},
                      coords={"band": layers["band"].values, "y": layers.y.values,
                              "x": layers.x.values})


def _all_nan_rain() -> xr.Dataset:
    layers = _layers()
    layers["similarity"].loc[{"band": "text: rain"}] = np.nan
    return layers


@pytest.mark.parametrize(
    ("make", "kwargs", "message"),
    [
        (_all_nan_rain, {}, "band 'text: rain' of similarity has no data"),
        (_layers, {"bands": []}, "bands is empty: give some bands of similarity"),
        (_without_crs, {}, "the layers have no CRS, so similarity cannot"),
        (_layers, {"variable": "probability"}, "no variable 'probability' in the layers"),
        (_layers, {"sounds": gpd.GeoDataFrame({"sound_1": ["a.wav"]},
                                              geometry=[shapely.box(0, 0, 1, 1)])},
         "the sounds have no CRS"),
    ],
    ids=["all-nan-band", "no-bands", "layers-without-crs", "unknown-variable",
         "sounds-without-crs"],
)
def test_bad_inputs_are_refused_in_one_clear_line(make, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)) as refused:
        web_map(make(), **kwargs)
    assert "\n" not in str(refused.value)


def test_a_missing_clip_is_left_out_with_a_warning(tmp_path: Path):
    gone = str(tmp_path / "gone.wav")
    sounds = _sounds([_tone(tmp_path / "tone.wav"), gone], class_1=["tone", "gone"],
                     score_1=[0.5, 0.4])
    with pytest.warns(UserWarning, match=re.escape(gone)):
        page = web_map(_layers(), sounds=sounds).get_root().render()
    assert page.count("data:audio/wav;base64,") == 1
    assert "1. tone (0.50)" in page and "gone (0.40)" not in page


def test_missing_classes_and_scores_are_not_shown_as_none(tmp_path: Path):
    tone = _tone(tmp_path / "tone.wav")
    sounds = _sounds([tone, tone, tone], class_1=[None, np.nan, "tone"],
                     score_1=[None, 0.25, np.nan])
    page = _popup_text(web_map(_layers(), sounds=sounds).get_root().render())
    assert "1. —<br>" in page  # no class, no score
    assert "1. — (0.25)<br>" in page and "1. tone<br>" in page
    assert "None" not in page and not re.search(r"\bnan\b", page, re.IGNORECASE)


def _with_fill(declare: str) -> xr.Dataset:
    """The layers with two cells of -9999: declared as described, or not declared."""
    layers = _layers()
    layers["similarity"].values[:, 3, 4] = -9999
    if declare == "rio":
        layers["similarity"].rio.write_nodata(-9999, encoded=False, inplace=True)
    elif declare == "attribute":
        layers["similarity"].attrs["nodata"] = -9999
    return layers


@pytest.mark.parametrize(("declare", "kwargs"),
                         [("rio", {}), ("attribute", {}), ("none", {"nodata": -9999})])
def test_nodata_stays_out_of_the_colour_scale(declare, kwargs):
    fmap = web_map(_with_fill(declare), **kwargs)
    legend = _legend(fmap)
    valid = _layers()["similarity"].values.copy()
    valid[:, 3, 4] = np.nan
    assert [legend.vmin, legend.vmax] == pytest.approx(np.nanpercentile(valid, [2, 98]))
    assert legend.vmin > 0  # -9999 in the scale would make every cell the same colour
