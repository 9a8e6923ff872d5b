"""Zero-shot text-query maps: how strongly each tile of a raster evokes each sound query.

Every tile is embedded once; each query is then one matrix product away from a similarity
layer (cosine, in [-1, 1]). Images and text meet in an *aligned space*: the trained Sat2Sound
model shipped with geosound (:class:`~geosound.space.shared.SharedSpace`), or, where no
checkpoint is available, the training-free ImageNet-label bridge — a documented stand-in whose
products say so.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import xarray as xr

from geosound.errors import InputError
from geosound.mapping.layers import write_float_layers
from geosound.mapping.products import similarity_layers
from geosound.mapping.region import embed_region
from geosound.progress import Progress
from geosound.sidecar import write_sidecar
from geosound.space import EmbeddingSpace, default_space
from geosound.space.prompts import query_vectors


def text_similarity_map(
    raster: str | os.PathLike[str],
    queries: Sequence[str],
    tile_size: int = 64,
    stride: int | None = None,
    preset: str | None = None,
    bounds: tuple[float, float, float, float] | None = None,
    bounds_crs: str | None = None,
    batch_size: int = 64,
    space: EmbeddingSpace | None = None,
    progress: Progress | None = None,
) -> xr.Dataset:
    """Map the cosine similarity between every tile and every text query.

    The tiles go through a region cache in a temporary folder, the same path ``geosound map``
    takes, so the layers are those of the map command (use :func:`~geosound.map_region` to
    keep the cache and re-query it).

    Args:
        raster: A georeferenced raster.
        queries: Sound descriptions ("birds chirping in trees", "traffic").
        tile_size: Tile edge in pixels.
        stride: Step between tiles (default: ``tile_size``); smaller gives a finer map.
        preset: Band preset name (default: guessed from band count and dtype).
        bounds: Optional area of interest (minx, miny, maxx, maxy) in ``bounds_crs``.
        bounds_crs: CRS of ``bounds`` (default: the raster's).
        batch_size: Tiles per batch.
        space: Where images and text meet (default: :func:`~geosound.space.default_space`).
        progress: Called with (fraction done, message).

    Returns:
        Dataset with ``similarity`` (query, y, x) and the CRS; attrs record the model.
    """
    queries = [q.strip() for q in queries]
    if not queries or any(not q for q in queries):
        raise InputError("give at least one non-empty text query")
    space = space or default_space()
    with tempfile.TemporaryDirectory(prefix="geosound-region-") as folder:
        cache = embed_region(
            Path(folder) / "region.zarr", raster, tile_size=tile_size, stride=stride,
            preset=preset, bounds=bounds, bounds_crs=bounds_crs, space=space,
            batch_size=batch_size, progress=progress,
        )  # fmt: skip
        layers = similarity_layers(cache, query_vectors(space.embed_texts, queries), queries)
    layers.attrs = {
        "raster": str(raster),
        "band_preset": cache.spec.preset,
        "tile_size": cache.spec.tile_size,
        "stride": cache.spec.stride,
        "model": space.space_id,
        "note": space.note,
    }
    return layers


def write_similarity_layers(dataset: xr.Dataset, path: str | os.PathLike[str]) -> Path:
    """Write the similarity layers as a multi-band COG (one band per query) plus a sidecar."""
    queries = [str(q) for q in dataset["band"].values]
    path = write_float_layers(
        path,
        dataset["similarity"],
        [f"similarity: {q}" for q in queries],
        tags={
            "geosound_model": str(dataset.attrs["model"]),
            "geosound_note": str(dataset.attrs["note"]),
        },
    )
    write_sidecar(
        path.with_suffix(".json"),
        "text-query similarity (cosine, per tile)",
        queries=queries,
        bands={i + 1: q for i, q in enumerate(queries)},
        **dict(dataset.attrs.items()),
    )
    return path
