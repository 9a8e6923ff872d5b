"""Ground truth from a scene's own bands: water, vegetation, bare/built, per map tile (dev).

A user judges a map by whether its layers pick out what the imagery shows. Where a scene has a
near-infrared band, two textbook spectral indices say, pixel by pixel, what is there — no
labels needed, so any such scene becomes an evaluation:

* **water**: NDWI = (green − NIR) / (green + NIR) > 0 (McFeeters 1996, *Int. J. Remote
  Sensing* 17(7): open water reflects more green than near-infrared; 0 is his threshold);
* **vegetation**: otherwise, NDVI = (NIR − red) / (NIR + red) > 0.3 (the common cut between
  sparse and moderate green vegetation, Tucker 1979 and later practice put it at 0.2–0.4;
  0.3 is its middle, chosen before any figure was computed);
* **bare/built**: neither — soil, rock, roads, roofs.

Each map tile gets the share of its valid pixels in each class (:func:`tile_truth`); a tile
counts as one class when that class covers at least :data:`PURE_SHARE` of it, and *mixed
tiles are left out*, so the AUC asks whether the map separates clear cases, not how it
splits a shoreline. A query's layer is then scored (:func:`scene_auc_table`) by ROC-AUC:
its positive tiles (e.g. water for "sea waves") against the pure tiles of the other classes.
An AUC resting on fewer than :data:`MIN_TILES` tiles on a side is shown but not averaged.

Caveats, stated so that figures are read right
    The indices assume reflectance. 8-bit products (NAIP, Landsat composites) hold digital
    numbers with a per-band additive offset; on the dev Landsat 7 scene that offset alone
    made raw NDWI > 0 over most of the land (57 % of pixels "water", by looking at the truth
    map, before any AUC). So 8-bit scenes get dark-object subtraction first
    (:func:`dark_objects`, Chavez 1988) and reflectance products (float, 16-bit) are used as
    they are (:func:`needs_dark_objects`); the thresholds stay the literature's. Which band
    is near-infrared is read from the band descriptions, from the Sentinel-2 13-band layout,
    or from the common 4-band layout (red, green, blue, NIR: NAIP, PlanetScope, most 4-band
    orthophotos); anything else needs ``bands`` (``--bands``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd
from rasterio.windows import Window

from geosound.errors import InputError, RasterError
from geosound.evaluation.query_auc import roc_auc
from geosound.geo.raster import RasterSource

__all__ = [
    "DEFAULT_SCENE_QUERIES",
    "MIN_TILES",
    "NDVI_VEGETATION",
    "NDWI_WATER",
    "PURE_SHARE",
    "SCENE_CLASSES",
    "SceneBands",
    "band_view",
    "dark_objects",
    "needs_dark_objects",
    "parse_band_spec",
    "pixel_classes",
    "pixel_metres",
    "scene_auc_table",
    "scene_bands",
    "tile_truth",
]

NDWI_WATER = 0.0
"""Water where NDWI exceeds this (McFeeters 1996)."""
NDVI_VEGETATION = 0.3
"""Vegetation where NDVI exceeds this and the pixel is not water (literature range 0.2–0.4)."""
PURE_SHARE = 0.8
"""A tile is one class when that class covers at least this share of its valid pixels."""
MIN_TILES = 5
"""An AUC resting on fewer tiles than this on either side is shown but not averaged."""

SCENE_CLASSES: tuple[str, ...] = ("water", "vegetation", "bare/built")

DEFAULT_SCENE_QUERIES: dict[str, str] = {
    "water waves lapping on a lake shore": "water",
    "sea waves": "water",
    "running water": "water",
    "birds chirping in trees": "vegetation",
    "crickets chirping": "vegetation",
    "cows mooing": "vegetation",
    "traffic": "bare/built",
    "dog barking": "bare/built",
    "church bells": "bare/built",
}
"""Query → the scene class whose tiles it should light up. The vegetation and built queries
are the EuroSAT ones whose positive classes are all vegetated (Forest, Pasture, crops) or all
built (Highway, Industrial, Residential) in
:data:`~geosound.evaluation.query_auc.DEFAULT_QUERY_CLASSES`; the water ones name water.
Fixed before any scene was scored."""


@dataclass(frozen=True)
class SceneBands:
    """Which 1-based bands are green, red and near-infrared, and how that was decided."""

    green: int
    red: int
    nir: int
    source: str


_NAMES = {
    "nir": re.compile(r"^(nir|near[ _-]?infra-?red|b0?8|b8a?|nir ?\(.*\))$", re.IGNORECASE),
    "red": re.compile(r"^(red|r|b0?4)$", re.IGNORECASE),
    "green": re.compile(r"^(green|g|b0?3)$", re.IGNORECASE),
}


def parse_band_spec(spec: str) -> dict[str, int]:
    """``"green=2,red=3,nir=4"`` → ``{"green": 2, "red": 3, "nir": 4}`` (1-based bands).

    Raises:
        InputError: An unknown name, a band that is not a whole number ≥ 1, or a name twice.
    """
    out: dict[str, int] = {}
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        name, _, value = part.partition("=")
        name = name.strip().lower()
        if name not in _NAMES or not value.strip().isdigit() or int(value) < 1 or name in out:
            raise InputError(
                f"bad band spec {part!r}: give name=band pairs for green, red and nir, "
                "e.g. green=2,red=3,nir=4 (1-based)"
            )
        out[name] = int(value)
    return out


def _describe(source: RasterSource) -> str:
    ds = source.dataset
    parts = []
    for i, (interp, description) in enumerate(
        zip(ds.colorinterp, ds.descriptions, strict=True), start=1
    ):
        label = description or interp.name
        parts.append(f"{i} ({label})")
    return f"{ds.count} band(s): " + ", ".join(parts)


def scene_bands(source: RasterSource, given: Mapping[str, int] | None = None) -> SceneBands:
    """Find the green, red and near-infrared bands of a scene (see the module doc's rules).

    Raises:
        RasterError: The scene has no band that can be taken for near-infrared (the message
            names the bands it has), or a given band is past its last band.
    """
    ds = source.dataset
    found: dict[str, int] = dict(given or {})
    how = "--bands" if found else ""
    for index, description in enumerate(ds.descriptions, start=1):
        for name, pattern in _NAMES.items():
            if description and pattern.match(description.strip()) and name not in found:
                found[name] = index
                how = how or "band descriptions"
    if ds.count == 13 and ds.dtypes[0] == "uint16":
        for name, index in (("green", 3), ("red", 4), ("nir", 8)):
            found.setdefault(name, index)
        how = how or "Sentinel-2 13-band layout"
    if ds.count == 4 and not _is_alpha(source, 4):
        for name, index in (("red", 1), ("green", 2), ("nir", 4)):
            found.setdefault(name, index)
        how = how or "4-band layout (red, green, blue, near-infrared)"
    if not {"green", "red", "nir"} <= set(found):
        missing = sorted({"green", "red", "nir"} - set(found))
        raise RasterError(
            f"has no near-infrared band to build truth from ({_describe(source)}; not known: "
            f"{', '.join(missing)}); if one is, name them with --bands green=N,red=N,nir=N",
            source.path,
        )
    for name in ("green", "red", "nir"):
        if not 1 <= found[name] <= ds.count:
            raise RasterError(
                f"--bands {name}={found[name]} is past the last band ({_describe(source)})",
                source.path,
            )
    return SceneBands(found["green"], found["red"], found["nir"], how)


def _is_alpha(source: RasterSource, band: int) -> bool:
    """A band tagged alpha that holds only "transparent" and "opaque" values.

    GDAL tags the 4th band of any 4-band 8-bit GeoTIFF as alpha by default, NIR or not, so
    the tag alone would refuse many red-green-blue-NIR files; a real alpha band is a mask of
    0 and the type's maximum.
    """
    if source.dataset.colorinterp[band - 1].name != "alpha":
        return False
    values = np.unique(np.ma.compressed(source.read_decimated((band,), max_size=256)))
    dtype = np.dtype(source.dataset.dtypes[0])
    opaque = np.iinfo(dtype).max if dtype.kind in "ui" else 1.0
    return bool(np.isin(values, [0, opaque]).all())


def pixel_classes(green: np.ndarray, red: np.ndarray, nir: np.ndarray) -> np.ndarray:
    """Per pixel: 0 water, 1 vegetation, 2 bare/built, −1 where the indices are undefined.

    Masked pixels (nodata, past the edge) and pixels whose band sums are 0 are undefined.
    """
    mask = np.ma.getmaskarray(green) | np.ma.getmaskarray(red) | np.ma.getmaskarray(nir)
    g, r, n = (np.ma.filled(np.ma.asarray(b, dtype=np.float64), 0.0) for b in (green, red, nir))
    with np.errstate(invalid="ignore", divide="ignore"):
        ndwi = (g - n) / (g + n)
        ndvi = (n - r) / (n + r)
    out = np.full(g.shape, 2, dtype=np.int8)
    out[ndvi > NDVI_VEGETATION] = 1
    out[ndwi > NDWI_WATER] = 0
    out[mask | ~np.isfinite(ndwi) | ~np.isfinite(ndvi)] = -1
    return out


def dark_objects(source: RasterSource, bands: SceneBands, percentile: float = 1.0) -> np.ndarray:
    """Each of the (green, red, NIR) bands' dark-object value: its ``percentile`` over the scene.

    Dark-object subtraction (Chavez 1988, *Remote Sens. Environ.* 24: 459–479) removes the
    additive offset (path radiance, sensor bias) that digital numbers carry and that ratio
    indices assume gone. The 1st percentile of a decimated read stands for "the darkest
    pixels with an appreciable count"; it is robust to a few dead pixels.
    """
    indexes = (bands.green, bands.red, bands.nir)
    pixels = source.read_decimated(indexes, max_size=1024)
    return np.asarray(
        [
            np.percentile(np.ma.compressed(band), percentile) if np.ma.count(band) else 0.0
            for band in pixels
        ]
    )


def needs_dark_objects(source: RasterSource) -> bool:
    """Digital numbers (8-bit products) get dark-object subtraction; reflectance does not.

    Float and 16-bit products (Sentinel-2 L1C/L2A, surface-reflectance COGs) are reflectance
    already; subtracting their darkest pixel would turn clear water (the darkest object)
    into zero reflectance in every band.
    """
    return source.dataset.dtypes[0] == "uint8"


def tile_truth(
    source: RasterSource,
    grid: pd.DataFrame,
    bands: SceneBands,
    tile_size: int,
    offsets: Sequence[float] | np.ndarray | None = None,
) -> pd.DataFrame:
    """Each tile's share of water, vegetation and bare/built pixels, and its class if pure.

    Args:
        source: The open scene.
        grid: The map's tile grid (``row``, ``col``, ``row_off``, ``col_off``), e.g. from
            :func:`~geosound.geo.tile_grid` with the map's tile size and stride.
        bands: Which bands to read.
        tile_size: Tile edge in pixels.
        offsets: Subtracted from (green, red, NIR) before the indices (clipped at 0), e.g.
            :func:`dark_objects`; None leaves the values as they are.

    Returns:
        One row per tile: ``row``, ``col``, ``valid`` (share of defined pixels), one share
        column per class of :data:`SCENE_CLASSES`, and ``truth`` (the class covering at least
        :data:`PURE_SHARE` of the defined pixels, or ``"mixed"``; ``"none"`` without any).
    """
    rows = []
    indexes = (bands.green, bands.red, bands.nir)
    shift = np.zeros(3) if offsets is None else np.asarray(offsets, dtype=np.float64)
    for tile in grid.itertuples(index=False):
        window = Window(int(tile.col_off), int(tile.row_off), tile_size, tile_size)
        pixels = source.read_window(window, indexes).astype(np.float64)
        g, r, n = (np.ma.maximum(pixels[i] - shift[i], 0.0) for i in range(3))
        classes = pixel_classes(g, r, n)
        defined = classes >= 0
        count = int(defined.sum())
        shares = [float((classes == k).sum() / count) if count else 0.0 for k in range(3)]
        truth = "none" if not count else "mixed"
        if count and max(shares) >= PURE_SHARE:
            truth = SCENE_CLASSES[int(np.argmax(shares))]
        rows.append(
            {
                "row": int(tile.row),
                "col": int(tile.col),
                "valid": count / classes.size,
                **dict(zip(SCENE_CLASSES, shares, strict=True)),
                "truth": truth,
            }
        )
    return pd.DataFrame(rows)


def pixel_metres(source: RasterSource) -> float:
    """Ground size of one pixel in metres (geometric mean of x and y; degrees at mid-latitude)."""
    dx, dy = (abs(v) for v in source.dataset.res)
    crs = source.dataset.crs
    if crs is not None and crs.is_geographic:
        _, bottom, _, top = source.bounds
        latitude = np.radians((bottom + top) / 2)
        dx, dy = dx * 111_320.0 * np.cos(latitude), dy * 110_540.0
    elif crs is not None and crs.linear_units_factor:
        factor = float(crs.linear_units_factor[1])
        dx, dy = dx * factor, dy * factor
    return float(np.sqrt(dx * dy))


def scene_auc_table(
    similarities: np.ndarray, truth: Sequence[str], queries: Mapping[str, str]
) -> pd.DataFrame:
    """Per-query ROC-AUC of the map's similarity against the scene's pure tiles.

    Args:
        similarities: (N tiles, Q) similarity of each tile to each query, columns in
            ``queries`` order; NaN for tiles the map has no value for.
        truth: Each tile's :func:`tile_truth` class (mixed and empty tiles are left out).
        queries: Query → its positive class (one of :data:`SCENE_CLASSES`).

    Returns:
        One row per query: ``query``, ``positive``, ``n_pos``, ``n_neg``, ``roc_auc`` (NaN
        where the scene has no pure tile on one side).
    """
    similarities = np.asarray(similarities, dtype=float)
    labels = np.asarray([str(t) for t in truth])
    if similarities.shape != (len(labels), len(queries)):
        raise InputError(
            f"similarities {similarities.shape} must be (tiles {len(labels)}, queries "
            f"{len(queries)})"
        )
    rows = []
    for q, (query, positive) in enumerate(queries.items()):
        if positive not in SCENE_CLASSES:
            raise InputError(
                f"query {query!r}: class {positive!r} is not one of {', '.join(SCENE_CLASSES)}"
            )
        scores = similarities[:, q]
        used = np.isin(labels, SCENE_CLASSES) & np.isfinite(scores)
        pos = labels[used] == positive
        n_pos, n_neg = int(pos.sum()), int((~pos).sum())
        auc = roc_auc(scores[used], pos) if n_pos and n_neg else float("nan")
        rows.append(
            {"query": query, "positive": positive, "n_pos": n_pos, "n_neg": n_neg, "roc_auc": auc}
        )
    return pd.DataFrame(rows)


def band_view(raster: str | Path, rgb: Sequence[int], folder: Path) -> Path:
    """A VRT in ``folder`` whose bands 1-3 are the scene's ``rgb`` bands, the rest following.

    Maps read bands 1-3 as red, green, blue (or the preset's bands); a scene stored in
    another order (Landsat 7 ETM+ as bands 1-5, 7: blue first) is shown to the map as it
    should be seen, without copying pixels. The VRT is a plain GDAL file that every reader
    (and the region cache's identity check) opens like the scene.

    Raises:
        InputError: Not three bands, or a band past the scene's last.
    """
    import rasterio

    with rasterio.open(raster) as ds:
        if len(rgb) != 3 or not all(1 <= b <= ds.count for b in rgb):
            raise InputError(
                f"--rgb needs three bands between 1 and {ds.count}; got {list(rgb)}", raster
            )
        order = [*rgb, *(b for b in range(1, ds.count + 1) if b not in rgb)]
        dtype = {"uint8": "Byte"}.get(ds.dtypes[0], ds.dtypes[0].capitalize())
        nodata = "" if ds.nodata is None else f"<NoDataValue>{ds.nodata}</NoDataValue>"
        source = escape(str(Path(raster).resolve()))
        bands = "".join(
            f'<VRTRasterBand dataType="{dtype}" band="{i}">{nodata}<SimpleSource>'
            f'<SourceFilename relativeToVRT="0">{source}</SourceFilename>'
            f"<SourceBand>{b}</SourceBand></SimpleSource></VRTRasterBand>"
            for i, b in enumerate(order, start=1)
        )
        transform = ", ".join(repr(v) for v in ds.transform.to_gdal())
        xml = (
            f'<VRTDataset rasterXSize="{ds.width}" rasterYSize="{ds.height}">'
            f"<SRS>{escape(ds.crs.to_wkt()) if ds.crs else ''}</SRS>"
            f"<GeoTransform>{transform}</GeoTransform>{bands}</VRTDataset>"
        )
    path = Path(folder) / f"{Path(raster).stem}.rgb{''.join(map(str, rgb))}.vrt"
    path.write_text(xml, encoding="utf-8")
    return path
