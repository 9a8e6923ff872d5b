"""Read and tile: opening rasters, tile grids, chips at points, band presets, raster writers."""

from geosound.geo.bands import (
    PRESETS,
    BandPreset,
    get_preset,
    guess_preset,
    read_rgb,
    resolve_preset,
    to_rgb,
)
from geosound.geo.chips import chip_windows, read_chips
from geosound.geo.points import PointsLike, points_inside, points_to_raster_xy
from geosound.geo.raster import (
    ImageData,
    RasterInfo,
    RasterSource,
    check_readable,
    opened,
    raster_info,
)
from geosound.geo.tiles import (
    MIN_VALID_FRACTION,
    TileBatch,
    check_tileable,
    read_tiles,
    read_tms_tiles,
    tile_grid,
    tms_tile_grid,
)
from geosound.geo.write import is_valid_cog, write_geopackage, write_raster

__all__ = [
    "MIN_VALID_FRACTION",
    "PRESETS",
    "BandPreset",
    "ImageData",
    "PointsLike",
    "RasterInfo",
    "RasterSource",
    "TileBatch",
    "check_readable",
    "check_tileable",
    "chip_windows",
    "get_preset",
    "guess_preset",
    "is_valid_cog",
    "opened",
    "points_inside",
    "points_to_raster_xy",
    "raster_info",
    "read_chips",
    "read_rgb",
    "read_tiles",
    "read_tms_tiles",
    "resolve_preset",
    "tile_grid",
    "tms_tile_grid",
    "to_rgb",
    "write_geopackage",
    "write_raster",
]
