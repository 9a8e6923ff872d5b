"""``geosound map``: a raster in, soundscape layers out (COG, GeoPackage, PNG, JSON).

:func:`map_region` makes or resumes the region cache (the only step that reads pixels and runs
the encoders), then writes the products asked for. The Python API returns the layers as
xarray Datasets too, for notebooks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from geosound.atomic import write_json
from geosound.errors import InputError
from geosound.geo import RasterSource, get_preset, to_rgb, write_geopackage, write_raster
from geosound.geo.ground import GroundTile, ground_tile
from geosound.locking import exclusive
from geosound.mapping.layers import write_float_layers
from geosound.mapping.preview import write_layers_preview
from geosound.mapping.products import (
    CONCEPT_NODATA,
    concept_colormap,
    concept_layers,
    concept_names,
    query_layers,
    retrieval_table,
    strongest_concepts,
    subtile_concept_layers,
)
from geosound.mapping.region import RegionCache, RegionSpec, embed_region
from geosound.mapping.timeplace import Moment, at_moment, check_time_metadata, moments
from geosound.models.checkpoint import trained_tile_m
from geosound.progress import Progress
from geosound.retrieval.shards import open_bank
from geosound.sidecar import OUTPUT_MARKER, write_sidecar
from geosound.space.shared import SharedSpace, load_shared_space


@dataclass
class MapResult:
    """The layers of a mapped region and the files written for them."""

    queries: xr.Dataset | None = None
    concepts: xr.Dataset | None = None
    outputs: list[Path] = field(default_factory=list)
    note: str = ""


def map_region(
    raster: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    texts: Sequence[str] = (),
    recordings: Sequence[str] = (),
    concepts: bool = False,
    retrieve: int = 0,
    bank: str | os.PathLike[str] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    tile_size: int | None = None,
    stride: int | None = None,
    preset: str | None = None,
    bbox: Sequence[float] | None = None,
    bbox_crs: str | None = None,
    cache: str | os.PathLike[str] | None = None,
    chunk_rows: int = 8,
    workers: int = 0,
    scheduler: str | None = None,
    progress: Progress | None = None,
    *,
    tile_m: float | None = None,
    month: int | None = None,
    hours: Sequence[float] = (),
    sounds: Mapping[str, np.ndarray] | None = None,
) -> MapResult:
    """Map a raster: embed its tiles once (cached, resumable), then write the layers asked for.

    Args:
        raster: A georeferenced raster.
        out_dir: Folder for the products.
        texts: Text queries ("birds chirping in trees").
        recordings: Audio files as queries.
        concepts: Also write concept layers (strongest concept per tile, sub-tile scores).
        retrieve: Also write the top ``retrieve`` recordings of ``bank`` per tile.
        bank: An audio bank folder (``geosound index build``) in the same space.
        checkpoint: Sat2Sound checkpoint (default: the shipped model).
        tile_size: Tile edge in pixels; wins over ``tile_m``.
        stride: Step between tiles in pixels (default: the tile size).
        preset: Band preset (default: guessed).
        bbox: Area of interest (minx, miny, maxx, maxy) in ``bbox_crs``.
        bbox_crs: CRS of ``bbox`` (default: the raster's).
        cache: Region cache folder (default: ``out_dir/region_cache.zarr``).
        chunk_rows: Grid rows per unit of work.
        workers: Dask worker processes (0: in-process).
        scheduler: Existing Dask scheduler address.
        progress: ``callback(fraction, message)``.
        tile_m: Tile edge in metres on the ground (default: what the checkpoint was trained
            on, ``info["tile_m"]``, 640 m where it does not say); see
            :func:`geosound.geo.ground.ground_tile`.
        month: Month (1-12) to embed the tiles at (metadata models only).
        hours: Hours of day; each gives its own layers (metadata models only).
        sounds: Queries already in the space, by band name: the sources of a separated
            recording (``geosound map --separate``), one layer each.

    Returns:
        The query and concept layers (xarray; with several hours, the query bands of every
        hour and the concepts of the last) and every file written, ``map.json`` last.

    Raises:
        InputError: Nothing to map, ``--retrieve`` without a bank, a time for a model without
            metadata, a tile size this raster cannot take, or any input problem of the cache.
    """
    sounds = dict(sounds or {})
    if not (texts or recordings or sounds or concepts or retrieve):
        raise InputError("nothing to map: give --text/--audio queries, --concepts or --retrieve")
    if retrieve and bank is None:
        raise InputError("--retrieve needs --bank (an audio bank from `geosound index build`)")
    checkpoint_path = None if checkpoint is None else str(Path(checkpoint).resolve())
    space = load_shared_space(checkpoint_path)
    check_time_metadata(space, month, hours)
    with RasterSource(raster) as source:
        tile = ground_tile(
            source, pixels=tile_size, tile_m=tile_m, trained_m=trained_tile_m(space.loaded.info)
        )
    out = Path(out_dir)
    cache_path = Path(cache) if cache else out / "region_cache.zarr"
    with exclusive(out, "output folder"):
        claim_output_folder(out)  # before the cache's lock file can appear inside it
        with exclusive(cache_path, "region cache"):
            region = embed_region(
                cache_path, raster, checkpoint_path, tile.pixels, stride, preset, bbox,
                bbox_crs, chunk_rows, workers, scheduler, progress, space=space,
            )  # fmt: skip
            asked = _Asked(
                texts, recordings, sounds, concepts, retrieve, bank, moments(month, hours)
            )
            return _write_products(region, space, tile, out, asked)


def claim_output_folder(out: Path) -> None:
    """Make sure ``out`` is a folder geosound may write map products into, and mark it so.

    geosound writes only into a new folder, an empty one, or one it wrote before (marked by
    :data:`OUTPUT_MARKER`, or ``map.json`` from before markers): products overwrite files
    of the same name, which must never be somebody else's.

    Raises:
        InputError: ``out`` is a file, or a folder of other files.
    """
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a folder; give a folder for the map products", out)
    ours = (out / OUTPUT_MARKER).is_file() or (out / "map.json").is_file()
    if out.is_dir() and not ours and any(out.iterdir()):
        raise InputError(
            "is a folder of other files, not one geosound wrote; map products go into a "
            "new or empty folder, or one an earlier `geosound map` wrote (give another -o)",
            out,
        )
    out.mkdir(parents=True, exist_ok=True)
    if not (out / OUTPUT_MARKER).is_file():
        write_json(out / OUTPUT_MARKER, {"written_by": "geosound map"})


@dataclass(frozen=True)
class _Asked:
    """The products asked of one ``geosound map`` run."""

    texts: Sequence[str]
    recordings: Sequence[str]
    sounds: Mapping[str, np.ndarray]
    concepts: bool
    retrieve: int
    bank: str | os.PathLike[str] | None
    moments: list[Moment]


def _write_products(
    region: RegionCache, space: SharedSpace, tile: GroundTile, out: Path, asked: _Asked
) -> MapResult:
    """Every product asked for, from the region cache, and ``map.json`` describing them.

    With several hours, query layers get one band per query and hour (``… @ 05:00``) in one
    file; concept and retrieval products get one file per hour (``concepts_h05.tif``).
    """
    result = MapResult(note=space.note)
    times = asked.moments
    sidecar: dict[str, object] = {
        "raster": region.spec.raster,
        "model": space.space_id,
        "encoders": space.loaded.encoders,
        "note": space.note,
        "tiling": {**tile.record(), "stride": region.spec.stride,
                   "preset": region.spec.preset, "bbox": region.spec.bounds,
                   "bbox_crs": region.spec.bounds_crs},
        "cache": str(region.path),
    }  # fmt: skip
    if space.has_metadata:
        sidecar["time_and_place"] = {
            "times": [m.record() for m in times],
            "location": "each tile centre's lon/lat (EPSG:4326, pyproj)",
        }
    views = [at_moment(region, space, moment) for moment in times]
    products: dict[str, object] = {}
    if asked.texts or asked.recordings or asked.sounds:
        result.queries, written, products["queries"] = _query_products(
            views, times, space, out, asked.texts, asked.recordings, asked.sounds
        )
        result.outputs += written
    for view, moment in zip(views, times, strict=True):
        suffix = moment.suffix() if len(times) > 1 else ""
        if asked.concepts:
            result.concepts, written, products[f"concepts{suffix}"] = _concept_products(
                view, space, out, suffix
            )
            result.outputs += written
        if asked.retrieve and asked.bank is not None:  # map_region: --retrieve has --bank
            gpkg, products[f"retrieval{suffix}"] = _retrieval_product(
                view, space, out, asked.bank, asked.retrieve, suffix
            )
            result.outputs.append(gpkg)
    result.outputs.append(
        write_sidecar(out / "map.json", "soundscape map", **sidecar, products=products)
    )
    return result


def _query_products(
    views: Sequence[RegionCache],
    times: Sequence[Moment],
    space: SharedSpace,
    out: Path,
    texts: Sequence[str],
    recordings: Sequence[str],
    sounds: Mapping[str, np.ndarray],
) -> tuple[xr.Dataset, list[Path], dict[str, object]]:
    """Similarity and probability COGs and the preview; their sidecar entry.

    Probabilities are a softmax over the queries of one moment, never across hours.
    """
    per_time = []
    for view, moment in zip(views, times, strict=True):
        layers = query_layers(view, space, texts, recordings, sounds)
        if moment.given:
            labels = [f"{band} @ {moment.label()}" for band in layers["band"].values]
            layers = layers.assign_coords(band=labels)
        per_time.append(layers)
    layers = (
        xr.concat(per_time, dim="band", combine_attrs="override")
        if len(per_time) > 1
        else per_time[0]
    )
    region = views[0]
    names = [str(b) for b in layers["band"].values]
    similarity = _write_float(out / "similarity.tif", layers["similarity"], names, "similarity")
    probability = _write_float(out / "probability.tif", layers["probability"], names, "probability")
    preview = _query_preview(out / "similarity.png", layers, region.spec, space.note)
    product: dict[str, object] = {
        "similarity": similarity.name, "probability": probability.name,
        "preview": preview.name, "bands": names,
        "probability_note": "softmax over the queries at the model's logit scale "
                            f"({layers.attrs['logit_scale']:.1f})"
                            + (", per hour" if len(times) > 1 else ""),
    }  # fmt: skip
    return layers, [similarity, probability, preview], product


def _concept_products(
    region: RegionCache, space: SharedSpace, out: Path, suffix: str = ""
) -> tuple[xr.Dataset, list[Path], dict[str, object]]:
    """The concept COG (with colour table), its weight and sub-tile scores; the sidecar entry."""
    names = concept_names(space)
    layers, legend = concept_layers(region, names)
    ids = layers["concept"].values.astype(np.uint16)
    concept_path = write_raster(
        out / f"concepts{suffix}.tif", ids, layers.rio.transform(), layers.rio.crs,
        band_descriptions=["strongest concept"], nodata=CONCEPT_NODATA,
        colormap=_full_colormap(legend, space.model.config.num_concepts),
        overview_resampling="nearest",
    )  # fmt: skip
    weight_path = _write_float(
        out / f"concept_weight{suffix}.tif", layers["weight"],
        ["weight of the strongest concept"], "concept weight",
    )  # fmt: skip
    written = [concept_path, weight_path]
    product: dict[str, object] = {
        "concepts": concept_path.name, "weight": weight_path.name,
        "legend": {str(k): {"name": v["name"], "tiles": v["tiles"], "colour": v["colour"]}
                   for k, v in legend.items()},
        "subtile": "skipped: needs stride == tile size",
    }  # fmt: skip
    if region.spec.stride == region.spec.tile_size:
        strongest = strongest_concepts(region)
        fine = subtile_concept_layers(region, strongest)
        fine_path = _write_float(
            out / f"concepts_subtile{suffix}.tif", fine["score"],
            [names[c] for c in strongest], "sub-tile score of concept",
        )  # fmt: skip
        written.append(fine_path)
        product["subtile"] = fine_path.name
    return layers, written, product


def _retrieval_product(
    region: RegionCache,
    space: SharedSpace,
    out: Path,
    bank: str | os.PathLike[str],
    k: int,
    suffix: str = "",
) -> tuple[Path, dict[str, object]]:
    """The GeoPackage of each tile's top-k recordings; its sidecar entry."""
    audio_bank = open_bank(bank, expected_space_id=space.space_id)
    table = retrieval_table(region, audio_bank, k)
    gpkg = out / f"retrieval{suffix}.gpkg"
    write_geopackage(gpkg, table, "retrieval")
    return gpkg, {"file": gpkg.name, "k": k, "bank": str(bank)}


def _write_float(path: Path, layer: xr.DataArray, names: Sequence[str], what: str) -> Path:
    return write_float_layers(path, layer, [f"{what}: {n}" for n in names])


def _full_colormap(legend: dict, num_concepts: int) -> dict[int, tuple[int, int, int, int]]:
    """Every concept id gets an entry (grey), the legend's concepts their colours."""
    colours = dict.fromkeys(range(num_concepts), (190, 190, 190, 255))
    colours.update(concept_colormap(legend))
    return colours


def _query_preview(path: Path, layers: xr.Dataset, spec: RegionSpec, note: str) -> Path:
    preset = get_preset(spec.preset)
    with RasterSource(spec.raster) as source:
        pixels = source.read_decimated(preset.bands, max_size=640)
        percentiles = source.band_percentiles(preset.bands) if preset.needs_stretch else None
        bounds = source.bounds
    return write_layers_preview(
        path,
        layers["similarity"],
        scene_rgb=to_rgb(pixels, preset, percentiles),
        scene_bounds=bounds,
        title=f"geosound map: {Path(spec.raster).name}",
        note=f"Per-tile cosine similarity; {note}.",
    )
