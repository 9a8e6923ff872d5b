"""Image references: a raster file, or a pixel window of one, written as one string.

A manifest's ``image`` value is either a path (a tile, a pre-cut chip, a street-level photo)
or ``"path#col_off,row_off,width,height"``, a pixel window of a larger raster. Keeping the
window as text instead of cutting a chip file means that building a manifest over a large
raster writes nothing but the table; the window is cut when the pixels are needed
(:func:`read_image_ref`). This lives in :mod:`geosound.geo` because reading imagery is geo's
job: the data and training code only pass the strings around.
"""

from __future__ import annotations

import os
import re

import numpy as np
from rasterio.windows import Window

from geosound.geo.bands import read_rgb, resolve_preset
from geosound.geo.raster import RasterSource

__all__ = ["format_image_ref", "parse_image_ref", "read_image_ref"]

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
