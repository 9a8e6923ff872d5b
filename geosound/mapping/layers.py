"""From per-tile values to georeferenced layers.

A pixel tile grid becomes a raster with one pixel per tile: the tile's *cell*, recorded by
:func:`geosound.geo.tile_grid`. Cells split the raster evenly and end exactly at its edges
(less a margin of half the overlap, where overlapping tiles centre no tile), so a layer
never sticks out of its scene. With a stride that fits the raster, cells are ``stride``
source pixels wide and centred on their tiles — overlapping tiles give a finer map,
non-overlapping tiles give exactly the tile footprints; otherwise they are a little
narrower, and each tile is centred on its cell.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine
from pyproj import CRS

from geosound.geo import write_raster

NODATA = -9999.0
"""What float layers hold where there is no tile, in every file geosound writes."""


def layer_transform(grid: gpd.GeoDataFrame) -> Affine:
    """Affine transform of the one-pixel-per-tile layer of a pixel grid (or part of one).

    The layer's first pixel is the cell of the grid's first row and column, so the layer of an
    area of interest or of a chunk of rows lies exactly on the whole raster's layer.
    """
    source = Affine(*grid.attrs["transform"])
    (x_start, y_start), (x_size, y_size) = grid.attrs["cell_start"], grid.attrs["cell_size"]
    first_col, first_row = int(grid["col"].min()), int(grid["row"].min())
    return (
        source
        @ Affine.translation(x_start + first_col * x_size, y_start + first_row * y_size)
        @ Affine.scale(x_size, y_size)
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


def cell_centres(transform: Affine, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """X coordinates of a layer's column centres and y coordinates of its row centres."""
    xs = transform.c + transform.a * (np.arange(width) + 0.5)
    ys = transform.f + transform.e * (np.arange(height) + 0.5)
    return xs, ys


def grid_dataset(
    values: np.ndarray,
    band_names: Sequence[str],
    variable: str,
    transform: Affine,
    crs: CRS | str,
    attrs: Mapping[str, object] | None = None,
    nodata: float = np.nan,
) -> xr.Dataset:
    """(band, y, x) values as a georeferenced Dataset: the one shape every map layer takes.

    Args:
        values: (bands, rows, cols) array.
        band_names: A name per band (the query, the concept).
        variable: The data variable's name (``similarity``, ``concept``, ...).
        transform: The layer's affine transform (one pixel per tile, or per sub-tile cell).
        crs: The layer's CRS.
        attrs: Dataset attributes (model, tiling), carried into sidecars.
        nodata: What ``values`` hold where there is no tile (NaN for float layers).

    Returns:
        A Dataset with x/y coordinates at pixel centres, CRS and transform (rioxarray) and
        ``nodata`` declared as the variable's nodata.
    """
    _, height, width = values.shape
    xs, ys = cell_centres(transform, width, height)
    dataset = xr.Dataset(
        {variable: (("band", "y", "x"), values)},
        coords={"band": list(band_names), "y": ys, "x": xs},
        attrs=dict(attrs or {}),
    )
    wkt = crs if isinstance(crs, str) else crs.to_wkt()
    dataset = dataset.rio.write_crs(wkt).rio.write_transform(transform)
    dataset[variable].rio.write_nodata(nodata, encoded=False, inplace=True)
    return dataset


def layers_dataset(
    grid: gpd.GeoDataFrame,
    values: np.ndarray,
    band_names: Sequence[str],
    variable: str,
    attrs: Mapping[str, object] | None = None,
) -> xr.Dataset:
    """Per-tile values of a pixel grid as a :func:`grid_dataset`."""
    return grid_dataset(
        tiles_to_layers(grid, values), band_names, variable, layer_transform(grid), grid.crs, attrs
    )


def write_float_layers(
    path: str | os.PathLike[str],
    layer: xr.DataArray,
    band_descriptions: Sequence[str],
    tags: Mapping[str, str] | None = None,
) -> Path:
    """Write a float (band, y, x) layer as a COG, NaN stored as :data:`NODATA`.

    The one writer of every float map product (similarity, probability, concept weights,
    sub-tile scores), so that they all agree on nodata and georeferencing.
    """
    values = np.where(np.isnan(layer.values), NODATA, layer.values).astype(np.float32)
    return write_raster(
        path, values, layer.rio.transform(), layer.rio.crs,
        band_descriptions=list(band_descriptions), nodata=NODATA, tags=dict(tags or {}),
    )  # fmt: skip
