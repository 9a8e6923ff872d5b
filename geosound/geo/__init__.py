"""Read and tile: opening rasters, tile grids, chips at points, band presets, raster writers."""

from geosound.geo.bands import PRESETS, BandPreset, get_preset, guess_preset, to_rgb
from geosound.geo.chips import chip_windows, points_to_raster_xy, read_chips
from geosound.geo.raster import RasterInfo, RasterSource, raster_info
from geosound.geo.tiles import (
    TileBatch,
    read_tiles,
    read_tms_tiles,
    tile_grid,
    tms_tile_grid,
)
from geosound.geo.write import is_valid_cog, write_raster

__all__ = [
    "PRESETS",
    "BandPreset",
    "RasterInfo",
    "RasterSource",
    "TileBatch",
    "chip_windows",
    "get_preset",
    "guess_preset",
    "is_valid_cog",
    "points_to_raster_xy",
    "raster_info",
    "read_chips",
    "read_tiles",
    "read_tms_tiles",
    "tile_grid",
    "tms_tile_grid",
    "to_rgb",
    "write_raster",
]
