"""Map products computed from a region cache: query, concept and retrieval layers.

Everything here reads the cache made by :mod:`geosound.mapping.region` and never touches the
raster's pixels, which is why a region can be re-queried in seconds.

* **Query layers** — cosine similarity of every tile to every query (texts, recordings), and
  a probability set: softmax over the queries at the model's own logit scale, i.e. "which of
  these sounds is this place most like".
* **Concept layers** — the strongest codebook concept of each tile (a categorical raster with
  a colour table) and its weight, plus sub-tile layers: for the region's strongest concepts,
  each image token's score, so maps are finer than the tile grid. Every concept gets a
  readable name: the audio caption (ESC-50 class phrase) nearest to it in the shared space.
* **Retrieval** — for every tile, the top-k recordings of an audio bank, as a GeoPackage of
  tile footprints.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import torch
import xarray as xr
from affine import Affine

from geosound.errors import InputError
from geosound.mapping.layers import grid_dataset
from geosound.mapping.region import RegionCache, cache_transform
from geosound.retrieval.shards import Bank
from geosound.space.prompts import query_vectors
from geosound.space.shared import SharedSpace

CONCEPT_NODATA = 65535
TAB10 = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]  # fmt: skip


def _layers(
    cache: RegionCache,
    values: np.ndarray,
    bands: Sequence[str],
    name: str,
    nodata: float = np.nan,
) -> xr.Dataset:
    """(band, row, col) values as a georeferenced Dataset on the cache's grid."""
    ds = cache.dataset()
    return grid_dataset(
        values, bands, name, cache_transform(ds), ds.attrs["crs_wkt"],
        attrs={"space_id": cache.spec.space_id}, nodata=nodata,
    )  # fmt: skip


def similarity_layers(cache: RegionCache, queries: np.ndarray, names: Sequence[str]) -> xr.Dataset:
    """Cosine similarity of every tile to each of the (Q, D) unit ``queries``; NaN off tiles."""
    embedding, valid = cache.embeddings()
    similarity = np.full((len(names), *valid.shape), np.nan, dtype=np.float32)
    if valid.any():
        similarity[:, valid] = (embedding.values[valid] @ queries.T).T
    return _layers(cache, similarity, names, "similarity")


def query_layers(
    cache: RegionCache,
    space: SharedSpace,
    texts: Sequence[str] = (),
    recordings: Sequence[str] = (),
    sounds: Mapping[str, np.ndarray] | None = None,
) -> xr.Dataset:
    """Similarity and probability layers for text and recording queries.

    Args:
        cache: The region.
        space: Its space.
        texts: Text queries.
        recordings: Recordings as queries, embedded here.
        sounds: Queries already in the space, by band name (the sources of a separated
            recording, ``geosound map --separate``).

    Raises:
        InputError: No query, or a recording that is silent (it has no sound to compare).
    """
    from geosound.audio import load_audio

    sounds = dict(sounds or {})
    names = [f"text: {t}" for t in texts] + [f"audio: {r}" for r in recordings] + list(sounds)
    if not names:
        raise InputError("give at least one query (--text or --audio)")
    vectors = []
    if texts:
        vectors.append(query_vectors(space.embed_texts, list(texts)))
    if recordings:
        for path in recordings:
            load_audio(path, sample_rate=None)  # a silent or broken query fails here, by name
        vectors.append(space.embed_recordings(list(recordings)))
    if sounds:
        vectors.append(np.stack([np.asarray(v, dtype=np.float32) for v in sounds.values()]))
    result = similarity_layers(cache, np.concatenate(vectors), names)
    similarity = result["similarity"].values
    scale = space.logit_scale
    logits = torch.from_numpy(np.nan_to_num(similarity) * scale)
    probability = torch.softmax(logits, dim=0).numpy()
    probability[:, np.isnan(similarity[0])] = np.nan
    result["probability"] = (("band", "y", "x"), probability.astype(np.float32))
    result.attrs["logit_scale"] = scale
    return result


def concept_names(space: SharedSpace) -> list[str]:
    """A readable name for every codebook concept: its nearest ESC-50 caption in the space."""
    from geosound.data.concepts import CLIP_CAPTIONS

    captions = sorted(set(CLIP_CAPTIONS.values()))
    caption_vectors = torch.from_numpy(space.embed_texts(captions))
    concepts = torch.nn.functional.normalize(space.model.concepts.detach(), dim=-1)
    nearest = (concepts @ caption_vectors.T).argmax(dim=1).tolist()
    return [f"{k}: {captions[i]}" for k, i in enumerate(nearest)]


def concept_layers(
    cache: RegionCache, names: Sequence[str], top: int = 5
) -> tuple[xr.Dataset, dict]:
    """The strongest concept per tile (categorical) and its weight.

    Args:
        cache: The region cache.
        names: A name per concept (:func:`concept_names`), computed once by the caller.
        top: How many of the region's concepts get a legend entry.

    Returns:
        (layers, legend): ``concept`` (uint16 concept id, CONCEPT_NODATA where no tile) and
        ``weight`` layers; the legend maps the ``top`` most frequent concepts of the region to
        names and colours (other concepts are drawn grey).
    """
    ds = cache.concept_dataset()
    ids = ds["concept_ids"][..., 0].values
    weights = ds["concept_weights"][..., 0].values
    valid = ds["valid"].values.astype(bool)
    ids = np.where(valid, ids, CONCEPT_NODATA).astype(np.uint16)
    counts = pd.Series(ids[valid]).value_counts()
    legend = {
        int(concept): {"name": names[int(concept)], "tiles": int(n), "colour": TAB10[i % 10]}
        for i, (concept, n) in enumerate(counts.head(top).items())
    }
    layers = _layers(cache, ids[None], ["strongest concept"], "concept", nodata=CONCEPT_NODATA)
    layers["weight"] = (("band", "y", "x"), np.where(valid, weights, np.nan)[None])
    return layers, legend


def concept_colormap(legend: dict) -> dict[int, tuple[int, int, int, int]]:
    """Colour table for the categorical concept raster: legend colours, other concepts grey."""
    colours = {k: (*v["colour"], 255) for k, v in legend.items()}
    return colours


def subtile_concept_layers(cache: RegionCache, concepts: Sequence[int]) -> xr.Dataset:
    """Per-token scores of chosen concepts, at sub-tile resolution.

    Each tile's T tokens are the cells of a √T × √T grid over the tile (EfficientNet's feature
    map), so with non-overlapping tiles the layer is √T times finer than the tile grid. A
    token's score for a concept is its score if that concept is among the token's strongest,
    else nodata.

    Raises:
        InputError: Tiles overlap (stride ≠ tile size): their cells would overlap too.
    """
    spec = cache.spec
    if spec.stride != spec.tile_size:
        raise InputError(
            f"sub-tile concept maps need non-overlapping tiles (stride {spec.stride} ≠ tile "
            f"{spec.tile_size})",
            cache.path,
        )
    ds = cache.concept_dataset()
    token_ids = ds["token_concept_ids"].values
    token_scores = ds["token_concept_scores"].values
    rows, cols, tokens, _ = token_ids.shape
    side = math.isqrt(tokens)
    if side * side != tokens:
        raise InputError(f"{tokens} tokens per tile do not form a square grid", cache.path)
    layers = np.full((len(concepts), rows * side, cols * side), np.nan, np.float32)
    for b, concept in enumerate(concepts):
        hit = token_ids == concept
        score = np.where(hit, token_scores, np.nan)
        best = np.nanmax(np.where(hit.any(-1, keepdims=True), score, -np.inf), axis=-1)
        best[~hit.any(-1)] = np.nan
        grid = best.reshape(rows, cols, side, side).transpose(0, 2, 1, 3)
        layers[b] = grid.reshape(rows * side, cols * side)
    fine = cache_transform(ds) @ Affine.scale(1 / side)
    return grid_dataset(layers, [str(c) for c in concepts], "score", fine, ds.attrs["crs_wkt"])


def strongest_concepts(cache: RegionCache, count: int = 3) -> list[int]:
    """The concepts with the most total weight over the region."""
    ds = cache.concept_dataset()
    ids = ds["concept_ids"].values.reshape(-1)
    weights = ds["concept_weights"].values.reshape(-1)
    valid = np.repeat(ds["valid"].values.reshape(-1).astype(bool), ds.sizes["rank"])
    totals = pd.Series(weights[valid]).groupby(ids[valid]).sum().sort_values(ascending=False)
    return [int(c) for c in totals.index[:count]]


def retrieval_table(cache: RegionCache, bank: Bank, k: int = 5) -> gpd.GeoDataFrame:
    """Top-k recordings of a bank for every tile, one feature per tile footprint."""
    ds = cache.dataset()
    embedding, valid = cache.embeddings()
    rows, cols = np.nonzero(valid)
    vectors = embedding.values[rows, cols]
    hits = bank.search(vectors, k=k)
    metadata = bank.metadata
    transform = cache_transform(ds)
    half = cache.spec.tile_size / cache.spec.stride / 2
    records = []
    for i, (row, col) in enumerate(zip(rows, cols, strict=True)):
        cx, cy = transform @ (col + 0.5, row + 0.5)
        hx, hy = abs(transform.a) * half, abs(transform.e) * half
        record: dict[str, object] = {
            "row": int(row),
            "col": int(col),
            "geometry": shapely.box(cx - hx, cy - hy, cx + hx, cy + hy),
        }
        for rank in range(k):
            index = int(hits.indices[i, rank])
            if index < 0:
                continue
            meta = metadata.iloc[index]
            record[f"sound_{rank + 1}"] = str(meta.get("path", index))
            record[f"class_{rank + 1}"] = str(meta.get("label", ""))
            record[f"score_{rank + 1}"] = float(hits.scores[i, rank])
        records.append(record)
    return gpd.GeoDataFrame(records, geometry="geometry", crs=ds.attrs["crs_wkt"])
