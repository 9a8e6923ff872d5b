"""Image chips centred on points — recording locations, photo positions, map clicks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pyproj import CRS as ProjCRS
from rasterio.windows import Window

from geosound.geo.points import PointsLike, points_inside
from geosound.geo.raster import RasterSource


def chip_windows(
    source: RasterSource,
    points: PointsLike,
    size: int,
    crs: str | ProjCRS | None = None,
    names: Sequence[str] | None = None,
) -> list[Window]:
    """Pixel windows of ``size`` × ``size`` centred on each point.

    Args:
        source: An open raster.
        points: The points (see :func:`~geosound.geo.points.points_to_raster_xy`).
        size: Chip edge in pixels.
        crs: CRS of plain (x, y) pairs (default: EPSG:4326).
        names: How an error names each point (see :func:`~geosound.geo.points.points_inside`).

    Raises:
        OutsideRasterError: A point falls outside the raster (each such point named).
    """
    cols, rows = points_inside(source, points, crs, names)
    return [
        Window(int(np.floor(col - size / 2)), int(np.floor(row - size / 2)), size, size)
        for col, row in zip(cols, rows, strict=True)
    ]


def read_chips(
    source: RasterSource,
    points: PointsLike,
    size: int,
    crs: str | ProjCRS | None = None,
    indexes: tuple[int, ...] | None = None,
) -> np.ma.MaskedArray:
    """Read one chip per point; pixels past the raster edge come back masked.

    Returns:
        (N, bands, size, size) masked array.
    """
    windows = chip_windows(source, points, size, crs)
    return np.ma.stack([source.read_window(window, indexes) for window in windows])
