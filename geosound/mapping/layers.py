"""From per-tile values to georeferenced layers.

A pixel tile grid with stride ``s`` becomes a raster with one pixel per tile: pixels are
``s`` source pixels wide and centred on their tile's centre, so overlapping tiles give a
finer map and non-overlapping tiles give exactly the tile footprints.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine


def layer_transform(grid: gpd.GeoDataFrame) -> Affine:
    """Affine transform of the one-pixel-per-tile layer of a pixel grid."""
    source = Affine(*grid.attrs["transform"])
    tile, stride = int(grid.attrs["tile_size"]), int(grid.attrs["stride"])
    first_col, first_row = int(grid["col_off"].min()), int(grid["row_off"].min())
    centre_shift = (tile - stride) / 2
    return (
        source
        @ Affine.translation(first_col + centre_shift, first_row + centre_shift)
        @ Affine.scale(stride)
    )


def tiles_to_layers(
    grid: gpd.GeoDataFrame, values: np.ndarray, nodata: float = np.nan
) -> np.ndarray:
    """Scatter per-tile values onto the layer grid.

    Args:
        grid: The pixel tile grid the values were computed on (possibly filtered).
        values: (N, K) values, one row per grid row, in grid order.
        nodata: Fill for layer pixels without a tile.

    Returns:
        (K, rows, cols) float32 array.
    """
    values = np.asarray(values, dtype=np.float32)
    if values.ndim == 1:
        values = values[:, np.newaxis]
    if len(values) != len(grid):
        raise ValueError(f"{len(values)} value rows for {len(grid)} tiles")
    rows = grid["row"].to_numpy() - grid["row"].min()
    cols = grid["col"].to_numpy() - grid["col"].min()
    out = np.full((values.shape[1], rows.max() + 1, cols.max() + 1), nodata, dtype=np.float32)
    out[:, rows, cols] = values.T
    return out


def layers_dataset(
    grid: gpd.GeoDataFrame,
    values: np.ndarray,
    band_names: list[str],
    variable: str,
    attrs: dict[str, object] | None = None,
) -> xr.Dataset:
    """Per-tile values as an xarray Dataset with x/y coordinates and a CRS (rioxarray).

    Returns:
        A Dataset whose ``variable`` has dims (``band``, ``y``, ``x``); ``band`` holds
        ``band_names``.
    """
    data = tiles_to_layers(grid, values)
    transform = layer_transform(grid)
    _, height, width = data.shape
    xs = transform.c + transform.a * (np.arange(width) + 0.5)
    ys = transform.f + transform.e * (np.arange(height) + 0.5)
    dataset = xr.Dataset(
        {variable: (("band", "y", "x"), data)},
        coords={"band": band_names, "y": ys, "x": xs},
        attrs=dict(attrs or {}),
    )
    dataset = dataset.rio.write_crs(grid.crs.to_wkt()).rio.write_transform(transform)
    dataset[variable].rio.write_nodata(np.nan, encoded=False, inplace=True)
    return dataset
