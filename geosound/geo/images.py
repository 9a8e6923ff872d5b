"""Image references: a raster file, or a pixel window of one, written as one string.

A manifest's ``image`` value is either a path (a tile, a pre-cut chip, a street-level photo)
or ``"path#col_off,row_off,width,height"``, a pixel window of a larger raster. Keeping the
window as text instead of cutting a chip file means that building a manifest over a large
raster writes nothing but the table; the window is cut when the pixels are needed
(:func:`read_image_ref`). This lives in :mod:`geosound.geo` because reading imagery is geo's
job: the data and training code only pass the strings around.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from geosound.geo.bands import read_rgb, resolve_preset
from geosound.geo.ground import pixel_size_at
from geosound.geo.raster import RasterSource

__all__ = ["chip_ground_m", "format_image_ref", "parse_image_ref", "read_image_ref"]

_WINDOW_REF = re.compile(r"^(?P<path>.+)#(?P<col>-?\d+),(?P<row>-?\d+),(?P<w>\d+),(?P<h>\d+)$")


def format_image_ref(path: str | os.PathLike[str], window: Window | None = None) -> str:
    """The ``image`` value for a raster path, optionally with a pixel window.

    Args:
        path: The raster (or chip, or photo) file.
        window: A pixel window of it; None for the whole file.

    Returns:
        ``"path"`` or ``"path#col_off,row_off,width,height"`` (offsets and sizes as integers).
    """
    if window is None:
        return str(path)
    return (
        f"{path}#{int(window.col_off)},{int(window.row_off)},"
        f"{int(window.width)},{int(window.height)}"
    )


def parse_image_ref(value: str) -> tuple[str, Window | None]:
    """Split an ``image`` value into its path and pixel window (None for a whole file).

    Only a trailing ``#int,int,int,int`` counts as a window, so a ``#`` elsewhere in a file
    name is left alone.
    """
    match = _WINDOW_REF.match(str(value))
    if match is None:
        return str(value), None
    window = Window(int(match["col"]), int(match["row"]), int(match["w"]), int(match["h"]))
    return match["path"], window


def read_image_ref(value: str) -> np.ndarray:
    """The RGB pixels (3, H, W) in [0, 1] of an ``image`` value: a file or a window of one.

    Bands and scaling come from :func:`geosound.geo.resolve_preset` (13-band uint16 is
    Sentinel-2, 8-bit is a photograph, anything else is stretched per raster), so tiles, chips
    and street-level photos all reach the image encoder the same way.
    """
    path, window = parse_image_ref(value)
    with RasterSource(path, require_crs=False) as source:
        whole = window or Window(0, 0, source.width, source.height)
        return read_rgb(source, [whole], resolve_preset(source))[0]


def chip_ground_m(values: Iterable[str]) -> float | None:
    """The median ground edge in metres of the chips that ``image`` values name.

    A model learns what places of one size sound like, so a map made with it should tile the
    ground at that size: training records this figure as ``info["tile_m"]``. Each chip's edge
    is its width in pixels times the ground size of a pixel at the chip's centre (the
    geometric mean of the pixel's width and height, :func:`~geosound.geo.ground.pixel_size_at`),
    so chips of one raster at different latitudes measure what they cover.

    Args:
        values: Manifest ``image`` values: raster paths or windows of rasters.

    Returns:
        None when there are none, or when any chip's raster has no CRS (photos, plain chips):
        their ground is unknown.
    """
    georeference: dict[str, tuple[Affine, CRS, int, int] | None] = {}  # read once per file
    pixel_m: dict[tuple[str, float, float], float] = {}  # (path, col, row) → metres
    edges = []
    for value in values:
        path, window = parse_image_ref(value)
        if path not in georeference:
            with RasterSource(path, require_crs=False) as source:
                crs = source.dataset.crs
                georeference[path] = (
                    None if crs is None else (source.transform, crs, source.width, source.height)
                )
        known = georeference[path]
        if known is None:
            return None
        transform, crs, width, height = known
        whole = window or Window(0, 0, width, height)
        centre = (whole.col_off + whole.width / 2, whole.row_off + whole.height / 2)
        key = (path, *centre)
        if key not in pixel_m:
            width_m, height_m = pixel_size_at(transform, crs, *centre)
            pixel_m[key] = math.sqrt(width_m * height_m)
        edges.append(int(whole.width) * pixel_m[key])
    return float(np.median(edges)) if edges else None
