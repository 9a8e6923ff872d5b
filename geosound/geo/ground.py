"""Ground sizes: how many metres a raster's pixel covers, and tiles chosen in metres.

A model trained on 640 m tiles (EuroSAT: 64 px at 10 m) sees a 64-px tile of a 0.6 m aerial
photo as a 38 m patch of roof: to map what it learnt, tiles must cover the same ground whatever
the raster's pixel size. :func:`ground_tile` turns a ground size into whole pixels.

The pixel's ground size is measured at the raster's centre:

* projected CRS: the grid step in the CRS's linear unit, converted to metres and divided by
  the projection's local scale factor there (pyproj ``get_factors``), so Web Mercator at
  60° N gives the true ~half of its grid metres, UTM its 0.9996 correction;
* geographic CRS (degrees): geodesic distances across one pixel on the CRS's ellipsoid
  (pyproj ``Geod``) at the centre's latitude, so a degree of longitude shrinks with
  ``cos(latitude)``.

Tiles stay square in *pixels* (the tile grid's contract). Where a pixel is not square on the
ground (degrees away from the equator), the tile's pixel count is the ground size over the
geometric mean of the pixel's width and height: the tile covers the asked area, a little
narrower than tall at high latitudes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from affine import Affine
from pyproj import CRS, Proj, Transformer
from rasterio.crs import CRS as RasterioCRS

from geosound.errors import RasterError
from geosound.geo.raster import RasterSource

TileChoice = Literal["--tile", "--tile-m", "checkpoint"]


@dataclass(frozen=True)
class GroundTile:
    """A tile size in pixels and the ground it covers on one raster.

    Attributes:
        pixels: Tile edge in pixels (what the tile grid uses).
        tile_m: Ground edge it covers, ``pixels × pixel_m`` (metres).
        pixel_m: Ground size of one pixel at the raster's centre (metres, geometric mean).
        chosen_by: What fixed the size: ``--tile`` (pixels), ``--tile-m`` or the checkpoint.
        asked_m: The ground size asked for (None when chosen in pixels).
    """

    pixels: int
    tile_m: float
    pixel_m: float
    chosen_by: TileChoice
    asked_m: float | None = None

    def record(self) -> dict[str, object]:
        """The sidecar's account of the tile size."""
        return {
            "tile_size": self.pixels,
            "tile_m": round(self.tile_m, 3),
            "pixel_m": round(self.pixel_m, 4),
            "tile_chosen_by": self.chosen_by,
            "tile_m_asked": self.asked_m,
        }


def pixel_size_m(
    source: RasterSource, at: tuple[float, float] | None = None
) -> tuple[float, float]:
    """Ground width and height of one pixel, in metres.

    Args:
        source: An open raster with a CRS.
        at: Where to measure, as pixel ``(col, row)`` (default: the raster's centre). In
            degrees or Web Mercator the ground size of a pixel changes with latitude.
    """
    col, row = at if at is not None else (source.width / 2, source.height / 2)
    return pixel_size_at(source.transform, source.crs, col, row)


def pixel_size_at(
    transform: Affine, raster_crs: RasterioCRS, col: float, row: float
) -> tuple[float, float]:
    """:func:`pixel_size_m` from a raster's georeference alone, so it needs no open file."""
    t = transform
    step_x, step_y = math.hypot(t.a, t.d), math.hypot(t.b, t.e)
    cx, cy = t @ (col, row)
    crs = CRS.from_user_input(raster_crs.to_wkt())
    if crs.is_geographic:
        lon, lat = Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True).transform(cx, cy)
        geod = crs.get_geod()
        assert geod is not None  # a geographic CRS always has an ellipsoid
        lat = max(-89.9, min(89.9, lat))
        width = geod.inv(lon - step_x / 2, lat, lon + step_x / 2, lat)[2]
        height = geod.inv(lon, lat - step_y / 2, lon, lat + step_y / 2)[2]
        return float(width), float(height)
    unit = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(cx, cy)
    try:
        factors = Proj(crs).get_factors(lon, lat)
        scale_x, scale_y = float(factors.parallel_scale), float(factors.meridional_scale)
    except Exception:  # a CRS PROJ cannot give factors for: take its grid metres at face value
        scale_x = scale_y = 1.0
    if not (math.isfinite(scale_x) and math.isfinite(scale_y) and scale_x > 0 and scale_y > 0):
        scale_x = scale_y = 1.0
    return step_x * unit / scale_x, step_y * unit / scale_y


def ground_tile(
    source: RasterSource,
    *,
    pixels: int | None = None,
    tile_m: float | None = None,
    trained_m: float,
) -> GroundTile:
    """The tile for this raster: ``pixels`` (``--tile``), else ``tile_m``, else ``trained_m``.

    Args:
        source: The open raster.
        pixels: A tile edge in pixels (``--tile``); wins over the ground sizes.
        tile_m: A tile edge in metres asked for by the user (``--tile-m``), checked strictly.
        trained_m: The ground size the model was trained on (the default). It is not checked
            here: whether the raster holds a tile of it is :func:`~geosound.geo.check_tileable`'s
            question, as for ``--tile``.

    Raises:
        RasterError: ``tile_m`` is smaller than two pixels of the raster or larger than the
            raster; the message names the raster and the value.
    """
    width_m, height_m = pixel_size_m(source)
    pixel_m = math.sqrt(width_m * height_m)
    if pixels is not None:
        return GroundTile(int(pixels), pixels * pixel_m, pixel_m, "--tile")
    chosen_by: TileChoice = "checkpoint" if tile_m is None else "--tile-m"
    metres = float(trained_m if tile_m is None else tile_m)
    # The model's own size never goes under two pixels (a coarse raster): the sidecar then
    # records the larger ground size the tiles really cover.
    count = max(2, round(metres / pixel_m))
    if tile_m is not None:
        if tile_m < 2 * pixel_m:
            raise RasterError(
                f"--tile-m {tile_m:g} is smaller than two pixels of this raster "
                f"({pixel_m:.3g} m each); give at least {2 * pixel_m:.3g}",
                source.path,
            )
        if count > source.width or count > source.height:
            raise RasterError(
                f"--tile-m {tile_m:g} is {count} px, larger than the raster "
                f"({source.width}×{source.height} px, {source.width * width_m / 1000:.3g}×"
                f"{source.height * height_m / 1000:.3g} km)",
                source.path,
            )
    return GroundTile(count, count * pixel_m, pixel_m, chosen_by, metres)


def lonlat(
    xs: Sequence[float] | np.ndarray, ys: Sequence[float] | np.ndarray, crs: object
) -> tuple[np.ndarray, np.ndarray]:
    """Longitudes and latitudes (EPSG:4326, degrees) of points given in ``crs``."""
    source = CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
    transformer = Transformer.from_crs(source, "EPSG:4326", always_xy=True)
    lon, lat = transformer.transform(np.asarray(xs, float), np.asarray(ys, float))
    return np.asarray(lon, float), np.asarray(lat, float)
