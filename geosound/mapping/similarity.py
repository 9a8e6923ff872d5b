"""Zero-shot text-query maps: how strongly each tile of a raster evokes each sound query.

Every tile is embedded once; each query is then one matrix product away from a similarity
layer (cosine, in [-1, 1]). Until trained Sat2Sound heads exist, image and text meet through
the :class:`~geosound.mapping.imagenet_bridge.ImageNetTextBridge` stand-in, and every product
says so.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
import xarray as xr

import geosound
from geosound.atomic import write_json
from geosound.encoders import DEFAULT_ENCODERS, get_encoder
from geosound.errors import InputError
from geosound.geo import RasterSource, get_preset, guess_preset, tile_grid, write_raster
from geosound.mapping.embed import ProgressCallback, embed_tiles
from geosound.mapping.imagenet_bridge import STAND_IN_NOTE, ImageNetTextBridge
from geosound.mapping.layers import layers_dataset

NODATA = -9999.0


def text_similarity_map(
    raster: str | os.PathLike[str],
    queries: Sequence[str],
    tile_size: int = 64,
    stride: int | None = None,
    preset: str | None = None,
    bounds: tuple[float, float, float, float] | None = None,
    bounds_crs: str | None = None,
    batch_size: int = 64,
    progress: ProgressCallback | None = None,
) -> xr.Dataset:
    """Map the cosine similarity between every tile and every text query.

    Args:
        raster: A georeferenced raster.
        queries: Sound descriptions ("birds chirping in trees", "traffic").
        tile_size: Tile edge in pixels.
        stride: Step between tiles (default: ``tile_size``); smaller gives a finer map.
        preset: Band preset name (default: guessed from band count and dtype).
        bounds: Optional area of interest; ``bounds_crs`` gives its CRS.
        batch_size: Tiles per batch.
        progress: Called with (fraction done, message).

    Returns:
        Dataset with ``similarity`` (query, y, x) and the CRS; attrs record the model.
    """
    queries = [q.strip() for q in queries]
    if not queries or any(not q for q in queries):
        raise InputError("give at least one non-empty text query")
    image_encoder = get_encoder(DEFAULT_ENCODERS["image"], batch_size=batch_size)
    bridge = ImageNetTextBridge(image_encoder, get_encoder(DEFAULT_ENCODERS["text"]))
    with RasterSource(raster) as source:
        info = source.info()
        band_preset = get_preset(preset) if preset else guess_preset(info.count, info.dtypes[0])
        grid = tile_grid(source, tile_size, stride, bounds=bounds, bounds_crs=bounds_crs)
        pooled = embed_tiles(
            source, grid, image_encoder, band_preset, batch_size=batch_size, progress=progress
        )
    valid = ~np.isnan(pooled).any(axis=1)
    similarity = np.full((len(grid), len(queries)), np.nan, dtype=np.float32)
    if valid.any():
        tiles = bridge.embed_images(torch.from_numpy(pooled[valid]))
        similarity[valid] = (tiles @ bridge.embed_texts(queries).T).numpy()
    return layers_dataset(
        grid,
        similarity,
        band_names=queries,
        variable="similarity",
        attrs={
            "raster": str(raster),
            "band_preset": band_preset.name,
            "tile_size": tile_size,
            "stride": stride or tile_size,
            "model": bridge.id,
            "note": STAND_IN_NOTE,
        },
    )


def write_similarity_layers(dataset: xr.Dataset, path: str | os.PathLike[str]) -> Path:
    """Write the similarity layers as a multi-band COG (one band per query) plus a sidecar."""
    layers = dataset["similarity"]
    data = np.where(np.isnan(layers.values), NODATA, layers.values).astype(np.float32)
    queries = [str(q) for q in layers["band"].values]
    path = write_raster(
        path,
        data,
        transform=dataset.rio.transform(),
        crs=dataset.rio.crs,
        band_descriptions=[f"similarity: {q}" for q in queries],
        nodata=NODATA,
        tags={"geosound_model": str(dataset.attrs["model"]), "geosound_note": STAND_IN_NOTE},
    )
    write_json(
        path.with_suffix(".json"),
        {
            "product": "text-query similarity (cosine, per tile)",
            "geosound_version": geosound.__version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "queries": queries,
            "bands": {i + 1: q for i, q in enumerate(queries)},
            **{key: value for key, value in dataset.attrs.items()},
        },
    )
    return path
