"""Image chips centred on points — recording locations, photo positions, map clicks.

Points may come in any CRS; they are reprojected to the raster's CRS with pyproj (always
x/y = lon/lat order, whatever the CRS's official axis order) before the pixel window is cut.
"""

from __future__ import annotations

from collections.abc import Sequence

import geopandas as gpd
import numpy as np
from pyproj import CRS as ProjCRS
from pyproj import Transformer
from rasterio.windows import Window

from geosound.errors import OutsideRasterError
from geosound.geo.raster import RasterSource

PointsLike = gpd.GeoSeries | gpd.GeoDataFrame | Sequence[tuple[float, float]] | np.ndarray


def points_to_raster_xy(
    source: RasterSource, points: PointsLike, crs: str | ProjCRS | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of the points in the raster's CRS.

    Args:
        source: An open raster.
        points: A GeoSeries/GeoDataFrame of points (its own CRS is used), or (x, y) pairs.
        crs: CRS of plain (x, y) pairs (default: EPSG:4326, i.e. lon/lat).

    Returns:
        Arrays ``x`` and ``y`` in the raster's CRS.
    """
    if isinstance(points, gpd.GeoDataFrame | gpd.GeoSeries):
        geometry = points.geometry if isinstance(points, gpd.GeoDataFrame) else points
        if geometry.crs is None:
            raise ValueError("the points have no CRS; set one with .set_crs(...)")
        xs, ys = geometry.x.to_numpy(), geometry.y.to_numpy()
        source_crs = ProjCRS.from_user_input(geometry.crs)
    else:
        coords = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        xs, ys = coords[:, 0], coords[:, 1]
        source_crs = ProjCRS.from_user_input(crs or "EPSG:4326")
    target_crs = ProjCRS.from_user_input(source.crs.to_wkt())
    if source_crs == target_crs:
        return xs.astype(np.float64), ys.astype(np.float64)
    transformer = Transformer.from_crs(source_crs, target_crs, always_xy=True)
    tx, ty = transformer.transform(xs, ys)
    return np.asarray(tx, dtype=np.float64), np.asarray(ty, dtype=np.float64)


def chip_windows(
    source: RasterSource, points: PointsLike, size: int, crs: str | ProjCRS | None = None
) -> list[Window]:
    """Pixel windows of ``size`` × ``size`` centred on each point.

    Raises:
        OutsideRasterError: A point falls outside the raster (named with its input coordinates).
    """
    xs, ys = points_to_raster_xy(source, points, crs)
    inverse = ~source.transform
    windows = []
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        col, row = inverse @ (x, y)
        if not (0 <= col < source.width and 0 <= row < source.height) or not np.isfinite(col + row):
            raise OutsideRasterError(
                f"point {i} at ({_original_xy(points, i)}) lies outside the raster "
                f"(bounds {tuple(round(v, 3) for v in source.bounds)} in {source.crs})",
                source.path,
            )
        windows.append(
            Window(int(np.floor(col - size / 2)), int(np.floor(row - size / 2)), size, size)
        )
    return windows


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


def _original_xy(points: PointsLike, i: int) -> str:
    if isinstance(points, gpd.GeoDataFrame | gpd.GeoSeries):
        geom = points.geometry.iloc[i] if isinstance(points, gpd.GeoDataFrame) else points.iloc[i]
        return f"{geom.x:.6g}, {geom.y:.6g}"
    x, y = np.asarray(points, dtype=np.float64).reshape(-1, 2)[i]
    return f"{x:.6g}, {y:.6g}"
