"""Layers on an interactive web map (folium), for notebooks and for sharing as one HTML file.

A GIS analyst opens the COGs in QGIS; a researcher in Jupyter wants the same layers on a
slippy map without leaving the notebook, and without a network: so the basemap is optional
(none by default), every layer is embedded as a PNG overlay in the page itself, and the sounds
a tile retrieved play from the tile's popup (``<audio>`` elements; each clip is stored once in
the page and handed to a popup's players when it opens). folium is an optional dependency
(``pip install geosound[notebooks]``).

Overlays are reprojected to Web Mercator first, so the picture lines up with the map's own
projection exactly rather than being stretched between latitude bounds.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import re
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import geopandas as gpd
import matplotlib
import numpy as np
import pandas as pd
import soundfile as sf
import xarray as xr
from rasterio.warp import transform_bounds

from geosound.audio import load_audio

if TYPE_CHECKING:
    import folium

WEB_MERCATOR = "EPSG:3857"

#: The sample rate of clips embedded in popups: small pages, still clear for listening.
POPUP_SAMPLE_RATE = 16_000

#: What a popup shows for a missing class name.
MISSING = "—"


def web_map(
    layers: xr.Dataset,
    variable: str = "similarity",
    bands: str | Sequence[str] | None = None,
    *,
    cmap: str = "magma",
    opacity: float = 0.75,
    basemap: str | None = None,
    attribution: str | None = None,
    nodata: float | None = None,
    sounds: gpd.GeoDataFrame | None = None,
    max_sounds: int = 3,
) -> folium.Map:
    """An interactive map of a layer's bands, one switchable overlay each, with a legend.

    Args:
        layers: Layers with a CRS (rioxarray), as :func:`geosound.map_region` returns them.
        variable: The data variable to show (``similarity``, ``probability``).
        bands: The bands to show (default: all), by their names in ``layers.band``; a single
            name (a ``str``) shows that one band.
        cmap: A matplotlib colour map; all bands share one colour scale and one legend, so
            their colours compare.
        opacity: Overlay opacity.
        basemap: A tile provider name that folium knows (``"OpenStreetMap"``,
            ``"CartoDB positron"``, any xyzservices name) or a tile URL template
            (``"https://{s}.tile.example/{z}/{x}/{y}.png"``); ``None`` keeps the map offline
            with no basemap.
        attribution: The basemap's attribution (HTML). Named providers bring their own; for a
            URL template the default names the tile server's host (``Tiles © tile.example``):
            give the attribution its terms of use ask for.
        nodata: A fill value to leave transparent besides the variable's declared nodata
            (rioxarray's ``rio.nodata``: its ``_FillValue`` or ``nodata`` attribute) and NaN or
            ±Inf, e.g. ``-9999`` for a layer that fills its holes without declaring it.
            Transparent cells stay out of the colour scale.
        sounds: Rows of a retrieval table (``retrieval.gpkg``: tile footprints with
            ``sound_1``, ``class_1``, ``score_1``, …) with a CRS: each tile becomes a
            clickable outline whose popup plays its top recordings. The clips are embedded in
            the page as base64 WAV (16 kHz, 16-bit mono), about 213 kB per 5-s clip, once
            each however many popups play it: the quickstart notebook's map of the demo scene
            (4 bands, 11 tiles with 3 sounds each, 16 distinct clips) is 3.5 MB, where one
            copy per player made it 7.1 MB. So pass the tiles worth hearing — a few dozen —
            rather than a whole region. A clip whose file is missing is left out with a
            warning.
        max_sounds: At most this many sounds per tile popup.

    Returns:
        A ``folium.Map``; in Jupyter it displays itself, ``.save("map.html")`` writes it.

    Raises:
        ImportError: folium is not installed (the message says how to install it).
        ValueError: The variable or a band is not in ``layers``, ``bands`` is empty, a band
            has no data, the layers or the sounds have no CRS, or ``basemap`` is neither a
            known provider nor a URL.
    """
    folium = _folium()
    import branca.colormap

    values = _chosen_bands(layers, variable, bands, nodata)
    if sounds is not None and sounds.crs is None:
        raise ValueError(
            "the sounds have no CRS, so their tiles cannot be placed on the map: "
            "set one with sounds.set_crs(...)"
        )
    tiles = _basemap(folium, basemap, attribution)
    vmin, vmax = (float(v) for v in np.nanpercentile(values.values, [2, 98]))
    # One reprojection of all bands: it gives the overlays and their common bounds.
    mercator = values.rio.reproject(WEB_MERCATOR, nodata=np.nan)
    south, west, north, east = _latlon_bounds(mercator)
    fmap = folium.Map(
        location=[(south + north) / 2, (west + east) / 2],
        tiles=tiles,
        control_scale=True,
    )
    fmap.fit_bounds([[south, west], [north, east]])
    colours = matplotlib.colormaps[cmap]
    for i, name in enumerate(values["band"].values):
        image = _rgba(mercator.isel(band=i), colours, vmin, vmax)
        folium.raster_layers.ImageOverlay(
            image=image,
            bounds=[[south, west], [north, east]],
            opacity=opacity,
            name=str(name),
            show=i == 0,
        ).add_to(fmap)
    legend = branca.colormap.LinearColormap(
        [matplotlib.colors.to_hex(colours(x)) for x in np.linspace(0, 1, 9)],
        vmin=vmin,
        vmax=vmax,
        caption=f"{variable} (2nd to 98th percentile of the bands shown)",
    )
    legend.add_to(fmap)
    if sounds is not None:
        popups, clips = _sound_popups(folium, sounds, max_sounds)
        popups.add_to(fmap)
        _clip_store(folium, clips).add_to(fmap)
    folium.LayerControl(collapsed=False).add_to(fmap)
    return fmap


def wav_data_uri(path: str, sample_rate: int = POPUP_SAMPLE_RATE) -> str:
    """A recording as a ``data:audio/wav;base64,…`` URI (16-bit mono at ``sample_rate``)."""
    clip = load_audio(path, sample_rate=sample_rate)
    buffer = io.BytesIO()
    sf.write(buffer, clip.samples, clip.sample_rate, format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _folium() -> Any:
    try:
        import folium
    except ImportError as error:
        raise ImportError(
            "geosound's web maps need folium: pip install 'geosound[notebooks]'"
        ) from error
    return folium


def _chosen_bands(
    layers: xr.Dataset, variable: str, bands: str | Sequence[str] | None, nodata: float | None
) -> xr.DataArray:
    """The bands to show, as float64 with NaN wherever there is no data; checked first."""
    if variable not in layers.data_vars:
        raise ValueError(f"no variable {variable!r} in the layers; variables: {list(layers)}")
    data = layers[variable]
    if data.rio.crs is None:
        raise ValueError(
            f"the layers have no CRS, so {variable} cannot be placed on a map: "
            "write one with layers.rio.write_crs(...)"
        )
    names = [str(b) for b in data["band"].values]
    if bands is None:
        chosen = names
    elif isinstance(bands, str):
        chosen = [bands]
    else:
        chosen = list(bands)
    if not chosen:
        raise ValueError(f"bands is empty: give some bands of {variable} ({names}), or None")
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        raise ValueError(f"no band {unknown[0]!r} in {variable}; bands: {names}")
    selected = data.isel(band=[names.index(name) for name in chosen])
    raw = selected.values
    missing = ~np.isfinite(raw) if raw.dtype.kind in "fc" else np.zeros(raw.shape, dtype=bool)
    for fill in {data.rio.nodata, nodata} - {None}:
        if not np.isnan(fill):
            missing |= raw == fill
    for name, empty in zip(chosen, missing.all(axis=(1, 2)), strict=True):
        if empty:
            raise ValueError(f"band {name!r} of {variable} has no data (all NaN or nodata)")
    masked = selected.copy(data=np.where(missing, np.nan, raw.astype(np.float64)))
    return masked.rio.write_nodata(np.nan, encoded=False)


def _basemap(folium: Any, basemap: str | None, attribution: str | None) -> Any:
    """A folium ``TileLayer`` for the basemap, with its attribution; ``None`` for none."""
    if basemap is None:
        return None
    if "{z}" in basemap or "://" in basemap:
        return folium.TileLayer(basemap, attr=attribution or _default_attribution(basemap))
    try:
        folium.TileLayer(basemap)  # folium takes a name it does not know for a custom URL
    except ValueError:
        raise ValueError(
            f"unknown basemap {basemap!r}: give a tile provider name ('OpenStreetMap', "
            "'CartoDB positron', any xyzservices name) or a URL template with {z}/{x}/{y}"
        ) from None
    return folium.TileLayer(basemap, attr=attribution)


def _default_attribution(url: str) -> str:
    """``Tiles © host`` for a tile URL template; placeholders such as ``{s}.`` dropped."""
    host = re.sub(r"\{[^}]*\}\.?", "", urlparse(url).netloc).strip(".")
    return f"Tiles © {html.escape(host)}" if host else "Custom tiles"


def _latlon_bounds(mercator: xr.DataArray) -> tuple[float, float, float, float]:
    """(south, west, north, east) in degrees of a layer in Web Mercator."""
    left, bottom, right, top = mercator.rio.bounds()
    west, south, east, north = transform_bounds(WEB_MERCATOR, "EPSG:4326", left, bottom, right, top)
    return south, west, north, east


def _rgba(band: xr.DataArray, colours: Any, vmin: float, vmax: float) -> np.ndarray:
    """A band already in Web Mercator as an RGBA image; no-data and outside pixels clear."""
    mercator = band.values.astype(np.float64)
    scaled = np.clip((mercator - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0)
    rgba = colours(np.nan_to_num(scaled))
    rgba[..., 3] = np.where(np.isfinite(mercator), 1.0, 0.0)
    return (rgba * 255).astype(np.uint8)


def _sound_popups(
    folium: Any, sounds: gpd.GeoDataFrame, max_sounds: int
) -> tuple[Any, dict[str, str]]:
    """The tiles' outlines with popups of players, and the clips they play by key.

    A player names its clip (``data-geosound-clip``) instead of holding it, so a clip that
    several tiles retrieved is in the page once (:func:`_clip_store`).
    """
    group = folium.FeatureGroup(name="retrieved sounds (click a tile)")
    keys: dict[str, str | None] = {}
    clips: dict[str, str] = {}
    for _, tile in sounds.to_crs("EPSG:4326").iterrows():
        items = []
        for rank in range(1, max_sounds + 1):
            path = tile.get(f"sound_{rank}")
            if not isinstance(path, str) or not path:
                continue
            same_file = os.path.normcase(os.path.realpath(path))  # ./a.wav and /x/a.wav
            if same_file not in keys:
                keys[same_file] = _stored_clip(path, clips)
            key = keys[same_file]
            if key is not None:
                label = _popup_text(tile.get(f"class_{rank}"))
                score = _popup_score(tile.get(f"score_{rank}"))
                player = f'<audio controls preload="none" data-geosound-clip="{key}"></audio>'
                items.append(f"<p>{rank}. {label}{score}<br>{player}</p>")
        if not items:
            continue
        folium.GeoJson(
            tile.geometry.__geo_interface__,
            style_function=lambda _: {"color": "#ffffff", "weight": 1, "fillOpacity": 0.0},
            popup=folium.Popup("".join(items), max_width=320),
        ).add_to(group)
    return group, clips


def _stored_clip(path: str, clips: dict[str, str]) -> str | None:
    """Add the clip at ``path`` to ``clips`` as a WAV data URI; its key, or None if missing."""
    if not os.path.isfile(path):
        warnings.warn(f"sound clip {path} is missing: left out of the map's popups", stacklevel=4)
        return None
    key = f"clip{len(clips)}"
    clips[key] = wav_data_uri(path)
    return key


#: Leaflet builds a popup's content when it opens: its players get their ``src`` then, from the
#: one table of clips in the page.
_CLIP_STORE_SCRIPT = """
{% macro script(this, kwargs) %}
var {{ this.get_name() }} = {{ this.clips_json }};
{{ this._parent.get_name() }}.on("popupopen", function (event) {
    event.popup.getElement().querySelectorAll("audio[data-geosound-clip]")
        .forEach(function (player) {
            if (!player.getAttribute("src")) {
                player.src = {{ this.get_name() }}[player.dataset.geosoundClip];
            }
        });
});
{% endmacro %}
"""


def _clip_store(folium: Any, clips: dict[str, str]) -> Any:
    """The popups' clips, once each, with the script that hands a popup's players theirs."""
    from jinja2 import Template  # folium's own template engine

    store = folium.MacroElement()
    store._name = "GeosoundClips"
    store._template = Template(_CLIP_STORE_SCRIPT)
    store.clips_json = json.dumps(clips)
    return store


def _popup_text(value: object) -> str:
    """A class name for a popup: HTML-escaped, and inert in the JS template folium puts it in."""
    if value is None or (np.isscalar(value) and pd.isna(value)) or value == "":
        return MISSING
    escaped = html.escape(str(value))
    return escaped.replace("\\", "&#92;").replace("$", "&#36;").replace("`", "&#96;")


def _popup_score(value: object) -> str:
    """`` (0.52)`` for a score, nothing where there is none."""
    try:
        score = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    return f" ({score:.2f})" if math.isfinite(score) else ""
