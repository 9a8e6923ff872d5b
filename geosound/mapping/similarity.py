"""Zero-shot text-query maps: how strongly each tile of a raster evokes each sound query.

Every tile is embedded once; each query is then one matrix product away from a similarity
layer (cosine, in [-1, 1]). Images and text meet in an *aligned space*: the trained Sat2Sound
model shipped with geosound (:class:`~geosound.retrieval.space.SharedSpace`), or, where no
checkpoint is available, the training-free ImageNet-label bridge — a documented stand-in whose
products say so.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import numpy as np
import xarray as xr

import geosound
from geosound.atomic import write_json
from geosound.encoders import DEFAULT_ENCODERS, get_encoder
from geosound.errors import InputError
from geosound.geo import RasterSource, get_preset, guess_preset, tile_grid, write_raster
from geosound.mapping.embed import ProgressCallback, embed_tiles
from geosound.mapping.imagenet_bridge import ImageNetTextBridge
from geosound.mapping.layers import layers_dataset

NODATA = -9999.0


class AlignedSpace(Protocol):
    """Anything that embeds RGB images and text queries into one space."""

    @property
    def id(self) -> str: ...

    @property
    def note(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed_rgb(self, images: np.ndarray) -> np.ndarray: ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...


def default_space(checkpoint: str | os.PathLike[str] | None = None) -> AlignedSpace:
    """The trained Sat2Sound space (a given checkpoint, else the shipped one), or the stand-in.

    The stand-in is used only when no checkpoint is given and none ships with the package.
    """
    from geosound.config import assets_dir
    from geosound.models.default import DEFAULT_CHECKPOINT
    from geosound.retrieval.space import SharedSpace

    if checkpoint is not None or (assets_dir() / DEFAULT_CHECKPOINT).is_file():
        return SharedSpace.from_checkpoint(checkpoint)
    return ImageNetTextBridge(
        get_encoder(DEFAULT_ENCODERS["image"]), get_encoder(DEFAULT_ENCODERS["text"])
    )


def text_similarity_map(
    raster: str | os.PathLike[str],
    queries: Sequence[str],
    tile_size: int = 64,
    stride: int | None = None,
    preset: str | None = None,
    bounds: tuple[float, float, float, float] | None = None,
    bounds_crs: str | None = None,
    batch_size: int = 64,
    space: AlignedSpace | None = None,
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
        space: Where images and text meet (default: :func:`default_space`).
        progress: Called with (fraction done, message).

    Returns:
        Dataset with ``similarity`` (query, y, x) and the CRS; attrs record the model.
    """
    queries = [q.strip() for q in queries]
    if not queries or any(not q for q in queries):
        raise InputError("give at least one non-empty text query")
    space = space or default_space()
    with RasterSource(raster) as source:
        info = source.info()
        band_preset = get_preset(preset) if preset else guess_preset(info.count, info.dtypes[0])
        grid = tile_grid(source, tile_size, stride, bounds=bounds, bounds_crs=bounds_crs)
        tiles = embed_tiles(
            source, grid, space.embed_rgb, space.dim, band_preset, batch_size, progress=progress
        )
    valid = ~np.isnan(tiles).any(axis=1)
    similarity = np.full((len(grid), len(queries)), np.nan, dtype=np.float32)
    if valid.any():
        similarity[valid] = tiles[valid] @ space.embed_texts(queries).T
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
            "model": space.id,
            "note": space.note,
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
        tags={
            "geosound_model": str(dataset.attrs["model"]),
            "geosound_note": str(dataset.attrs["note"]),
        },
    )
    write_json(
        path.with_suffix(".json"),
        {
            "product": "text-query similarity (cosine, per tile)",
            "geosound_version": geosound.__version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "queries": queries,
            "bands": {i + 1: q for i, q in enumerate(queries)},
            **dict(dataset.attrs.items()),
        },
    )
    return path
