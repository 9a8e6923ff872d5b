"""Embedding every tile of a raster with an image encoder, streamed in batches."""

from __future__ import annotations

from collections.abc import Callable

import geopandas as gpd
import numpy as np

from geosound.geo import MIN_VALID_FRACTION, BandPreset, RasterSource, read_tiles, to_rgb
from geosound.progress import Progress

EmbedRGB = Callable[[np.ndarray], np.ndarray]


def embed_tiles(
    source: RasterSource,
    grid: gpd.GeoDataFrame,
    embed: EmbedRGB,
    dim: int,
    preset: BandPreset,
    batch_size: int = 64,
    min_valid_fraction: float = MIN_VALID_FRACTION,
    progress: Progress | None = None,
) -> np.ndarray:
    """An embedding of every tile of a pixel grid.

    Tiles with less than ``min_valid_fraction`` valid pixels (nodata, NaN/Inf, or past the
    raster edge) get a row of NaN instead of an embedding of mostly padding, so they become
    nodata in maps. Invalid pixels of the tiles that are embedded are filled like nodata, so
    a NaN pixel never reaches the encoder nor changes the embeddings of the rest of its batch.

    Args:
        source: The open raster the grid was made on.
        grid: A pixel grid from :func:`geosound.geo.tile_grid`.
        embed: Turns an RGB batch (N, 3, H, W) in [0, 1] into (N, dim) vectors — a frozen
            encoder's pooled output, or a trained model's shared space.
        dim: Width of those vectors.
        preset: Band selection and scaling to RGB.
        batch_size: Tiles per read and per forward pass.
        min_valid_fraction: Minimum share of valid pixels for a tile to be embedded.
        progress: Called with (fraction done, message) after each batch.

    Returns:
        (N, dim) float32 array in grid order.
    """
    percentiles = source.band_percentiles(preset.bands) if preset.needs_stretch else None
    embeddings = np.full((len(grid), dim), np.nan, dtype=np.float32)
    position = {tile_id: i for i, tile_id in enumerate(grid["tile_id"].to_numpy())}
    done = 0
    for batch in read_tiles(source, grid, preset.bands, batch_size=batch_size):
        valid = 1.0 - np.ma.getmaskarray(batch.pixels).mean(axis=(1, 2, 3))
        keep = valid >= min_valid_fraction
        if keep.any():
            rgb = to_rgb(batch.pixels[keep], preset, percentiles)
            rows = [position[t] for t in batch.tile_ids[keep]]
            embeddings[rows] = embed(rgb)
        done += len(batch.tile_ids)
        if progress:
            progress(done / len(grid), f"embedded {done}/{len(grid)} tiles")
    return embeddings
