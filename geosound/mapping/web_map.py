"""Layers on an interactive web map (folium), for notebooks and for sharing as one HTML file.

A GIS analyst opens the COGs in QGIS; a researcher in Jupyter wants the same layers on a
slippy map without leaving the notebook, and without a network: so the basemap is optional
(none by default), every layer is embedded as a PNG overlay in the page itself, and the sounds
a tile retrieved play from the tile's popup (``<audio>`` elements with the clip inside the
page). folium is an optional dependency (``pip install geosound[notebooks]``).

Overlays are reprojected to Web Mercator first, so the picture lines up with the map's own
projection exactly rather than being stretched between latitude bounds.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import matplotlib
import numpy as np
import soundfile as sf
import xarray as xr
from rasterio.warp import transform_bounds

from geosound.audio import load_audio

if TYPE_CHECKING:
    import folium

WEB_MERCATOR = "EPSG:3857"

#: The sample rate of clips embedded in popups: small pages, still clear for listening.
POPUP_SAMPLE_RATE = 16_000


def web_map(
    layers: xr.Dataset,
    variable: str = "similarity",
    bands: Sequence[str] | None = None,
    *,
    cmap: str = "magma",
    opacity: float = 0.75,
    basemap: str | None = None,
    sounds: gpd.GeoDataFrame | None = None,
    max_sounds: int = 3,
) -> folium.Map:
    """An interactive map of a layer's bands, one switchable overlay each, with a legend.

    Args:
        layers: Layers with a CRS (rioxarray), as :func:`geosound.map_region` returns them.
        variable: The data variable to show (``similarity``, ``probability``).
        bands: The bands to show (default: all), by their names in ``layers.band``.
        cmap: A matplotlib colour map; all bands share one colour scale and one legend, so
            their colours compare.
        opacity: Overlay opacity.
        basemap: A folium tile layer name (``"OpenStreetMap"``) or URL; ``None`` keeps the
            map offline with no basemap.
        sounds: Rows of a retrieval table (``retrieval.gpkg``: tile footprints with
            ``sound_1``, ``class_1``, ``score_1``, …): each tile becomes a clickable outline
            whose popup plays its top recordings. Every popup carries its clips inside the
            page (about 160 kB per 5-s clip), so pass the tiles worth hearing — a few dozen
            — rather than a whole region.
        max_sounds: At most this many sounds per tile popup.

    Returns:
        A ``folium.Map``; in Jupyter it displays itself, ``.save("map.html")`` writes it.

    Raises:
        ImportError: folium is not installed (the message says how to install it).
    """
    folium = _folium()
    import branca.colormap

    data = layers[variable]
    names = [str(b) for b in data["band"].values]
    chosen = list(bands) if bands is not None else names
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        raise ValueError(f"no band {unknown[0]!r} in {variable}; bands: {names}")
    values = data.sel(band=chosen)
    vmin, vmax = np.nanpercentile(values.values, [2, 98])
    # One reprojection of all bands: it gives the overlays and their common bounds.
    mercator = values.rio.reproject(WEB_MERCATOR, nodata=np.nan)
    south, west, north, east = _latlon_bounds(mercator)
    fmap = folium.Map(
        location=[(south + north) / 2, (west + east) / 2],
        tiles=basemap,
        control_scale=True,
    )
    fmap.fit_bounds([[south, west], [north, east]])
    colours = matplotlib.colormaps[cmap]
    for i, name in enumerate(chosen):
        image = _rgba(mercator.sel(band=name), colours, float(vmin), float(vmax))
        folium.raster_layers.ImageOverlay(
            image=image,
            bounds=[[south, west], [north, east]],
            opacity=opacity,
            name=name,
            show=i == 0,
        ).add_to(fmap)
    legend = branca.colormap.LinearColormap(
        [matplotlib.colors.to_hex(colours(x)) for x in np.linspace(0, 1, 9)],
        vmin=float(vmin),
        vmax=float(vmax),
        caption=f"{variable} (2nd to 98th percentile of the bands shown)",
    )
    legend.add_to(fmap)
    if sounds is not None:
        _sound_popups(folium, sounds, max_sounds).add_to(fmap)
    folium.LayerControl(collapsed=False).add_to(fmap)
    return fmap


def audio_html(path: str, sample_rate: int = POPUP_SAMPLE_RATE) -> str:
    """An ``<audio>`` element holding a recording as an inline WAV: plays with no server."""
    clip = load_audio(path, sample_rate=sample_rate)
    buffer = io.BytesIO()
    sf.write(buffer, clip.samples, clip.sample_rate, format="WAV", subtype="PCM_16")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<audio controls preload="none" src="data:audio/wav;base64,{encoded}"></audio>'


def _folium() -> Any:
    try:
        import folium
    except ImportError as error:
        raise ImportError(
            "geosound's web maps need folium: pip install 'geosound[notebooks]'"
        ) from error
    return folium


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


def _sound_popups(folium: Any, sounds: gpd.GeoDataFrame, max_sounds: int) -> Any:
    group = folium.FeatureGroup(name="retrieved sounds (click a tile)")
    players: dict[str, str] = {}
    for _, tile in sounds.to_crs("EPSG:4326").iterrows():
        items = []
        for rank in range(1, max_sounds + 1):
            path = tile.get(f"sound_{rank}")
            if not isinstance(path, str) or not path:
                continue
            label = html.escape(str(tile.get(f"class_{rank}", "")))
            score = float(tile.get(f"score_{rank}", np.nan))
            if path not in players:
                players[path] = audio_html(path)
            items.append(f"<p>{rank}. {label} ({score:.2f})<br>{players[path]}</p>")
        if not items:
            continue
        folium.GeoJson(
            tile.geometry.__geo_interface__,
            style_function=lambda _: {"color": "#ffffff", "weight": 1, "fillOpacity": 0.0},
            popup=folium.Popup("".join(items), max_width=320),
        ).add_to(group)
    return group
