"""Writing products: GeoTIFF and Cloud-Optimised GeoTIFF rasters, GeoPackage layers, atomically.

A raster product is a (bands, height, width) array on a grid (transform + CRS). Bands carry
descriptions (the query or concept each band holds), nodata is declared, overviews are built
for COGs (rio-cogeo), and categorical single-band products can carry a colour table so that
QGIS and GDAL show them styled without any sidecar. A vector product (a retrieval table, a
points layer) is one layer of a GeoPackage.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.io import MemoryFile
from rio_cogeo.cogeo import cog_translate, cog_validate
from rio_cogeo.profiles import cog_profiles

from geosound.atomic import atomic_path

if TYPE_CHECKING:
    import geopandas as gpd

Colormap = Mapping[int, tuple[int, int, int, int] | tuple[int, int, int]]
OverviewResampling = Literal["nearest", "average", "bilinear", "cubic", "mode"]


def write_raster(
    path: str | os.PathLike[str],
    data: np.ndarray,
    transform: rasterio.Affine,
    crs: CRS | str,
    band_descriptions: Sequence[str] | None = None,
    nodata: float | None = None,
    colormap: Colormap | None = None,
    cog: bool = True,
    tags: Mapping[str, str] | None = None,
    overview_resampling: OverviewResampling = "average",
) -> Path:
    """Write a single- or multi-band raster product.

    Args:
        path: Destination ``.tif``; replaced atomically.
        data: (bands, height, width) or (height, width) array. Masked arrays are filled with
            ``nodata``.
        transform: Affine transform of the grid.
        crs: CRS of the grid.
        band_descriptions: One description per band (what the band holds).
        nodata: Nodata value to declare (required when ``data`` is masked).
        colormap: Colour table for a single-band integer (categorical) product.
        cog: Write a Cloud-Optimised GeoTIFF with overviews (default) or a plain tiled GeoTIFF.
        tags: Dataset-level metadata tags.
        overview_resampling: Resampling for overviews; use ``"nearest"`` or ``"mode"`` for
            categorical data.

    Returns:
        The destination path.
    """
    array = np.asarray(np.ma.getdata(data)) if not np.ma.isMaskedArray(data) else data
    if array.ndim == 2:
        array = array[np.newaxis]
    if array.ndim != 3:
        raise ValueError(f"expected (bands, height, width), got shape {array.shape}")
    if isinstance(array, np.ma.MaskedArray):
        if nodata is None:
            raise ValueError("masked data needs a nodata value")
        array = array.filled(nodata)
    count, height, width = array.shape
    if band_descriptions is not None and len(band_descriptions) != count:
        raise ValueError(f"{len(band_descriptions)} band descriptions for {count} bands")
    if colormap is not None and (count != 1 or not np.issubdtype(array.dtype, np.integer)):
        raise ValueError("a colour table needs a single-band integer raster")

    profile = {
        "driver": "GTiff",
        "height": height,
        "width": width,
        "count": count,
        "dtype": array.dtype.name,
        "crs": CRS.from_user_input(crs),
        "transform": transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "photometric": "MINISBLACK",  # a 4th uint8 band is data (NIR, a query), not alpha
    }
    with atomic_path(path) as tmp, MemoryFile() as memfile:
        with memfile.open(**profile) as dst:
            dst.write(array)
            for band, description in enumerate(band_descriptions or [], start=1):
                dst.set_band_description(band, description)
            if colormap is not None:
                dst.write_colormap(1, dict(colormap))
            if tags:
                dst.update_tags(**tags)
        if cog:
            with memfile.open() as src:
                cog_translate(
                    src,
                    str(tmp),
                    {**cog_profiles.get("deflate"), "blockxsize": 256, "blockysize": 256},
                    in_memory=True,
                    overview_level=_overview_levels(width, height, 256),
                    overview_resampling=overview_resampling,
                    colormap=dict(colormap) if colormap is not None else None,
                    forward_band_tags=True,
                    quiet=True,
                )
        else:
            tmp.write_bytes(memfile.read())
    return Path(path)


def write_geopackage(path: str | os.PathLike[str], frame: gpd.GeoDataFrame, layer: str) -> Path:
    """Write ``frame`` as the layer ``layer`` of the GeoPackage ``path``, atomically.

    The temporary file keeps the ``.gpkg`` suffix, which GDAL's driver asks for.

    Returns:
        ``path``.
    """
    with atomic_path(path, keep_suffix=True) as tmp:
        frame.to_file(tmp, driver="GPKG", layer=layer, engine="pyogrio")
    return Path(path)


def _overview_levels(width: int, height: int, block: int) -> int:
    """Halvings until the raster fits in one block: what GDAL readers expect of a COG."""
    return max(0, math.ceil(math.log2(max(width, height) / block)))


def is_valid_cog(path: str | os.PathLike[str]) -> bool:
    """Whether rio-cogeo accepts the file as a Cloud-Optimised GeoTIFF."""
    valid, _errors, _warnings = cog_validate(str(path), quiet=True)
    return bool(valid)
