"""Points on a raster: recording locations, photo positions, map clicks, in any CRS.

Points are reprojected to the raster's CRS with pyproj (always x/y = lon/lat order, whatever
the CRS's official axis order). :func:`points_inside` is the one check that points lie on a
raster; it names every point that does not, so a user can find it in their layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import geopandas as gpd
import numpy as np
from pyproj import CRS as ProjCRS
from pyproj import Transformer

from geosound.errors import OutsideRasterError
from geosound.geo.raster import RasterSource

PointsLike: TypeAlias = (
    gpd.GeoSeries | gpd.GeoDataFrame | Sequence[tuple[float, float]] | np.ndarray
)
"""Points as a GeoSeries/GeoDataFrame (with its own CRS) or plain (x, y) pairs."""

SHOWN_POINTS = 5
"""How many bad points an error names before it says how many more there are."""


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
        tx, ty = xs.astype(np.float64), ys.astype(np.float64)
    else:
        transformer = Transformer.from_crs(source_crs, target_crs, always_xy=True)
        tx, ty = transformer.transform(xs, ys)
        tx, ty = np.asarray(tx, dtype=np.float64), np.asarray(ty, dtype=np.float64)
    return _wrap_longitudes(source, target_crs, tx), ty


def _wrap_longitudes(source: RasterSource, crs: ProjCRS, xs: np.ndarray) -> np.ndarray:
    """Longitudes moved by whole turns into a geographic raster that crosses ±180°.

    A raster in degrees may span the antimeridian (179.5° to 180.5° E, or 0° to 360°);
    a point there is usually given as −179.7°, which is the same place. For such rasters
    every longitude is wrapped into [west edge, west edge + 360°); other rasters are left
    alone.
    """
    if not crs.is_geographic or not _x_is_degrees(crs):
        return xs
    west, _, east, _ = source.bounds
    if west >= -180.0 and east <= 180.0:
        return xs
    return west + np.mod(xs - west, 360.0)


def _x_is_degrees(crs: ProjCRS) -> bool:
    """Whether the CRS's first (x, as GDAL orders it: longitude) axis is in degrees."""
    units = {axis.unit_name.lower() for axis in crs.axis_info}
    return units <= {"degree", "degrees"}


def points_inside(
    source: RasterSource,
    points: PointsLike,
    crs: str | ProjCRS | None = None,
    names: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (col, row) of points that must all lie on the raster.

    Args:
        source: An open raster.
        points: The points (see :func:`points_to_raster_xy`).
        crs: CRS of plain (x, y) pairs (default: EPSG:4326).
        names: How the error calls each point ("point site-7", "row 3 of pairs.csv");
            default: its position and input coordinates.

    Returns:
        Float arrays ``cols`` and ``rows`` (fractional pixel positions).

    Raises:
        OutsideRasterError: Points fall off the raster; the message names them (up to
            :data:`SHOWN_POINTS`, then how many more), the raster and its bounds.
    """
    xs, ys = points_to_raster_xy(source, points, crs)
    inverse = ~source.transform
    cols = inverse.a * xs + inverse.b * ys + inverse.c
    rows = inverse.d * xs + inverse.e * ys + inverse.f
    inside = (
        np.isfinite(cols + rows)
        & (cols >= 0)
        & (cols < source.width)
        & (rows >= 0)
        & (rows < source.height)
    )
    if not inside.all():
        bad = np.flatnonzero(~inside)
        shown = [
            names[i] if names is not None else f"point {i} at ({_original_xy(points, i)})"
            for i in bad[:SHOWN_POINTS]
        ]
        more = f" and {len(bad) - SHOWN_POINTS} more" if len(bad) > SHOWN_POINTS else ""
        verb = "lies" if len(bad) == 1 else "lie"
        raise OutsideRasterError(
            f"{', '.join(shown)}{more} {verb} outside the raster "
            f"(bounds {tuple(round(v, 3) for v in source.bounds)} in {source.crs})",
            source.path,
        )
    return cols, rows


def _original_xy(points: PointsLike, i: int) -> str:
    if isinstance(points, gpd.GeoDataFrame | gpd.GeoSeries):
        geom = points.geometry.iloc[i] if isinstance(points, gpd.GeoDataFrame) else points.iloc[i]
        return f"{geom.x:.6g}, {geom.y:.6g}"
    x, y = np.asarray(points, dtype=np.float64).reshape(-1, 2)[i]
    return f"{x:.6g}, {y:.6g}"
