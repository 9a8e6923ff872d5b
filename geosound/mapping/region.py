"""The region cache: every tile of a region embedded once, stored chunk by chunk, resumable.

``geosound map`` embeds a raster's tiles into Sat2Sound's shared space and keeps the result as
a zarr store on the tile grid — per tile: the embedding, its strongest codebook concepts, and
for each image token (sub-tile cell) its strongest concepts. Every map product (query
similarity, concept layers, retrieval) is then computed from the cache, so asking new
questions of a region never re-encodes its pixels.

The grid is cut into *chunks* of whole grid rows. A chunk is the unit of work: it is embedded
by one process (in-process, or a Dask worker), written to its own zarr chunks — so writers
never touch the same file — and then marked done with a marker file. A run that is
interrupted, a worker that is killed, resumes by skipping the chunks marked done; a chunk
half-written when its worker died is simply redone. Memory per worker is one chunk of tiles
plus the model, whatever the raster's size.

The cache records the raster, the tiling, the band preset and the space id of the model; it
refuses to be reused with another model (the vectors would not be comparable).

A cache folder is marked as geosound's by :data:`STORE_MARKER`, written before anything else.
geosound writes only into a new folder, an empty one, or one that carries the marker: a folder
of somebody else's files given as ``--cache`` is refused and left untouched.

Spaces without a concept codebook (the training-free stand-in) give caches with embeddings
only; concept products then say they need a Sat2Sound model.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeGuard

import dask.array as da
import geopandas as gpd
import numpy as np
import torch
import xarray as xr
from affine import Affine

from geosound.atomic import atomic_folder, write_json
from geosound.errors import InputError
from geosound.geo import (
    BandPreset,
    RasterSource,
    check_tileable,
    get_preset,
    resolve_preset,
    tile_grid,
)
from geosound.geo.identity import raster_identity
from geosound.locking import exclusive
from geosound.mapping.embed import embed_tiles
from geosound.mapping.layers import cell_centres, layer_transform
from geosound.models import ModalityOutput
from geosound.progress import Progress
from geosound.space import ConceptSpace, EmbeddingSpace
from geosound.space.shared import SharedSpace, load_shared_space

FORMAT_PREFIX = "geosound-region-cache-"
CACHE_FORMAT = f"{FORMAT_PREFIX}2"
"""Format 2: the tile grid whose cells end at the raster's edges (format 1 caches, whose grid
stuck out of rasters the stride does not fit, are made again on reuse)."""
STORE_MARKER = "geosound-region-cache.json"
TOP_CONCEPTS = 8
TOKEN_TOP_CONCEPTS = 4
DONE_FOLDER = "_geosound_done"
CONCEPT_VARIABLES = ("concept_ids", "concept_weights", "token_concept_ids", "token_concept_scores")
METADATA_VARIABLES = ("image_queries", "lon", "lat")
"""What a metadata model's cache adds: the time-free projected tokens and each tile's centre
(geosound/mapping/timeplace.py fuses a month and an hour into them when a product asks)."""


@dataclass(frozen=True)
class RegionSpec:
    """Everything that decides a region cache's contents (recorded in it, checked on reuse)."""

    raster: str
    tile_size: int
    stride: int
    preset: str
    space_id: str
    checkpoint: str | None
    bounds: tuple[float, float, float, float] | None = None
    bounds_crs: str | None = None
    chunk_rows: int = 8
    raster_identity: str = ""
    """:func:`~geosound.geo.identity.raster_identity` of the raster when the cache was made."""

    def grid(self, source: RasterSource, rows: tuple[int, int] | None = None) -> gpd.GeoDataFrame:
        """The tile grid this spec describes, or its grid rows ``[start, stop)``.

        Deterministic, so every worker rebuilds exactly its chunk's part of it.
        """
        return tile_grid(
            source, self.tile_size, self.stride, bounds=self.bounds, bounds_crs=self.bounds_crs,
            rows=rows,
        )  # fmt: skip

    def to_json(self) -> str:
        """Canonical JSON, stored in the cache."""
        return json.dumps(asdict(self), sort_keys=True)


@dataclass(frozen=True)
class ChunkPlan:
    """One unit of work: the grid rows ``[row_start, row_stop)`` of the region."""

    index: int
    row_start: int
    row_stop: int


class RegionCache:
    """A region cache on disk (zarr), with the spec it was made from.

    Use :func:`open_or_create_cache` to get one; :meth:`dataset` to read it.
    """

    def __init__(self, path: Path, spec: RegionSpec) -> None:
        self.path = Path(path)
        self.spec = spec

    @property
    def done_dir(self) -> Path:
        """Where chunk completion markers live."""
        return self.path / DONE_FOLDER

    def is_done(self, chunk: ChunkPlan) -> bool:
        """Whether a chunk was completely written (its marker exists; see :meth:`is_intact`)."""
        return self._marker(chunk).exists()

    def mark_done(self, chunk: ChunkPlan) -> None:
        """Record a chunk as complete with the checksum of each of its files, atomically.

        Written only after the chunk's data, so a marker never vouches for a half-written
        chunk; the checksums let a later run tell a chunk that was since deleted or damaged.
        """
        write_json(self._marker(chunk), {"files": self._chunk_digests(chunk)})

    def is_intact(self, chunk: ChunkPlan) -> bool:
        """Whether a done chunk's files are exactly those its marker recorded.

        zarr writes no file for a chunk that holds only fill values (an all-nodata stretch),
        so a marker records such a file as absent and an absent file is then no damage.
        """
        try:
            recorded = json.loads(self._marker(chunk).read_text())["files"]
        except (OSError, ValueError, KeyError, TypeError):
            return False  # no marker, or one from before checksums: nothing vouches for it
        return bool(recorded == self._chunk_digests(chunk))

    def unmark_damaged(self) -> list[ChunkPlan]:
        """Forget the done chunks whose files were deleted or changed, so they are redone."""
        damaged = [c for c in self.chunks() if self.is_done(c) and not self.is_intact(c)]
        for chunk in damaged:
            self._marker(chunk).unlink(missing_ok=True)
        return damaged

    def _marker(self, chunk: ChunkPlan) -> Path:
        return self.done_dir / f"{chunk.index}.ok"

    def _chunk_digests(self, chunk: ChunkPlan) -> dict[str, str | None]:
        """SHA-256 of each variable's file for this chunk, None where zarr wrote none."""
        digests: dict[str, str | None] = {}
        for name in sorted(self.variables):
            ndim = self.variables[name]
            file = self.path / name / ".".join([str(chunk.index)] + ["0"] * (ndim - 1))
            exists = file.is_file()
            digests[name] = hashlib.sha256(file.read_bytes()).hexdigest() if exists else None
        return digests

    @functools.cached_property
    def variables(self) -> dict[str, int]:
        """The cache's variables and their number of dimensions (from the store's metadata)."""
        return {str(name): variable.ndim for name, variable in self.dataset().data_vars.items()}

    def dataset(self) -> xr.Dataset:
        """The cache as an xarray Dataset (lazy, dask-backed)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return xr.open_zarr(self.path, consolidated=False)

    def concept_dataset(self) -> xr.Dataset:
        """:meth:`dataset`, for products that need the codebook concepts of every tile.

        Raises:
            InputError: The cache was made in a space without a concept codebook.
        """
        ds = self.dataset()
        if CONCEPT_VARIABLES[0] not in ds:
            raise InputError(
                f"this region cache was made in {self.spec.space_id}, which has no concept "
                "codebook; concept layers need a Sat2Sound model",
                self.path,
            )
        return ds

    def chunks(self) -> list[ChunkPlan]:
        """All chunks of the region, in order."""
        rows = int(self.dataset().sizes["row"])
        step = self.spec.chunk_rows
        return [
            ChunkPlan(i, start, min(start + step, rows))
            for i, start in enumerate(range(0, rows, step))
        ]

    def pending(self) -> list[ChunkPlan]:
        """Chunks still to do."""
        return [chunk for chunk in self.chunks() if not self.is_done(chunk)]

    def embeddings(self) -> tuple[xr.DataArray, np.ndarray]:
        """(row, col, dim) embeddings and the (row, col) validity mask, in memory.

        Raises:
            InputError: Chunks are missing (the map was interrupted and not resumed).
        """
        missing = self.pending()
        if missing:
            raise InputError(
                f"{len(missing)} chunk(s) of this region are not embedded yet; "
                "rerun `geosound map` to resume",
                self.path,
            )
        ds = self.dataset()
        embedding = ds["embedding"].load()
        return embedding, ds["valid"].values.astype(bool)


def plan_spec(
    raster: str | os.PathLike[str],
    space_id: str,
    checkpoint: str | None,
    tile_size: int = 64,
    stride: int | None = None,
    preset: str | None = None,
    bounds: tuple[float, float, float, float] | None = None,
    bounds_crs: str | None = None,
    chunk_rows: int = 8,
) -> RegionSpec:
    """A complete spec for a raster: the preset is resolved here so that it is recorded."""
    with RasterSource(raster) as source:
        resolved = resolve_preset(source, preset)
        check_tileable(source, tile_size, stride, resolved.bands, bounds, bounds_crs)
    return RegionSpec(
        raster_identity=raster_identity(raster),
        raster=str(Path(raster).resolve()),
        tile_size=tile_size,
        stride=stride or tile_size,
        preset=resolved.name,
        space_id=space_id,
        checkpoint=None if checkpoint is None else str(Path(checkpoint).resolve()),
        bounds=None if bounds is None else tuple(float(v) for v in bounds),  # type: ignore[arg-type]
        bounds_crs=bounds_crs,
        chunk_rows=chunk_rows,
    )


def open_or_create_cache(
    path: str | os.PathLike[str],
    spec: RegionSpec,
    dims: dict[str, int],
    progress: Progress | None = None,
) -> RegionCache:
    """Reuse the cache at ``path`` if it was made from the same spec, else create it.

    A cache of the same raster path whose file has since changed (another size, time or
    content) is made again: its layers would describe pixels that no longer exist.

    Args:
        path: The ``.zarr`` folder: new, empty, or a geosound region cache.
        spec: What the cache must hold.
        dims: ``{"dim": D}`` of the space, plus ``"tokens": T`` where the space has concepts
            and ``"queries": T`` where it takes location and time (:data:`METADATA_VARIABLES`).
        progress: Told when a cache is made again because its raster changed.

    Raises:
        InputError: ``path`` is a file or a folder of other files (never written into), or a
            cache made with another model or other settings.
    """
    path = Path(path)
    if _is_ours(path):
        try:
            existing: RegionSpec | None = read_spec(path)
        except InputError:
            existing = None  # a cache from before atomic creation, killed while created
        if existing is not None and _only_the_raster_changed(existing, spec):
            if progress:
                progress(0.0, "the raster changed since this cache was made: embedding it again")
            existing = None
        if existing is not None:
            _check_reusable(path, existing, spec)
            return RegionCache(path, existing)
    _create_store(path, spec, dims)  # over an owned folder, replaced only once the new one is built
    return RegionCache(path, spec)


def _only_the_raster_changed(existing: RegionSpec, spec: RegionSpec) -> bool:
    return (
        existing.raster_identity != spec.raster_identity
        and dataclasses.replace(existing, raster_identity=spec.raster_identity) == spec
    )


def _is_ours(path: Path) -> bool:
    """Whether ``path`` is a region cache geosound made; refuse anything that is not ours.

    Returns:
        True for a marked cache (or one from before markers, which gets its marker now),
        False for a path that does not exist yet or an empty folder.

    Raises:
        InputError: ``path`` is a file, or a non-empty folder that geosound did not make.
    """
    if not path.exists():
        return False
    if not path.is_dir():
        raise InputError("exists and is not a folder; not using it as a region cache", path)
    if (path / STORE_MARKER).is_file():
        return True
    if (path / ".zattrs").is_file() or (path / "zarr.json").is_file():
        # A cache from before markers: adopt it only if it really is one (of any format).
        if not _stored_format(path).startswith(FORMAT_PREFIX):
            read_spec(path)  # raises, naming what is wrong
        _write_marker(path)
        return True
    if any(path.iterdir()):
        raise InputError(
            "is a folder of other files, not a geosound region cache; geosound never writes "
            "into it (give a new or empty --cache folder)",
            path,
        )
    return False


def _write_marker(path: Path) -> None:
    write_json(path / STORE_MARKER, {"format": CACHE_FORMAT})


def _check_reusable(path: Path, existing: RegionSpec, spec: RegionSpec) -> None:
    if existing.space_id != spec.space_id:
        raise InputError(
            f"this region cache was built with model {existing.space_id}, not "
            f"{spec.space_id}; use another --cache folder or delete this one",
            path,
        )
    if existing != spec:
        raise InputError(
            "this region cache was built with other settings (raster, tiles, preset or "
            "bounds); use another --cache folder or delete this one",
            path,
        )


def _store_attrs(path: str | os.PathLike[str]) -> dict:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dict(xr.open_zarr(path, consolidated=False).attrs)
    except (OSError, ValueError, KeyError) as error:
        raise InputError(f"not a geosound region cache ({error})", path) from None


def _stored_format(path: Path) -> str:
    """The format a zarr store records ('' where it is not readable or records none)."""
    try:
        return str(_store_attrs(path).get("format", ""))
    except InputError:
        return ""


def read_spec(path: str | os.PathLike[str]) -> RegionSpec:
    """The spec recorded in a cache, with a clear error when ``path`` is not a region cache."""
    attrs = _store_attrs(path)
    if attrs.get("format") != CACHE_FORMAT:
        found = str(attrs.get("format", ""))
        if found.startswith(FORMAT_PREFIX):
            raise InputError(
                f"a region cache of another geosound version ({found}, this one reads "
                f"{CACHE_FORMAT}); rerun `geosound map` with it to make it again",
                path,
            )
        raise InputError("not a geosound region cache", path)
    data = json.loads(attrs["spec"])
    if data.get("bounds") is not None:
        data["bounds"] = tuple(data["bounds"])
    return RegionSpec(**data)


def _create_store(path: Path, spec: RegionSpec, dims: dict[str, int]) -> None:
    """Write the marker, then the empty arrays and attributes of a new cache."""
    with RasterSource(spec.raster) as source:
        grid = spec.grid(source)
        crs_wkt = source.crs.to_wkt()
    rows = int(grid["row"].max() - grid["row"].min() + 1)
    cols = int(grid["col"].max() - grid["col"].min() + 1)
    transform = layer_transform(grid)
    step = spec.chunk_rows

    def empty(dims_: tuple[str, ...], shape: tuple[int, ...], dtype: str) -> tuple:
        return dims_, da.zeros(shape, chunks=(step, *shape[1:]), dtype=dtype)

    variables = {
        "embedding": empty(("row", "col", "dim"), (rows, cols, dims["dim"]), "float32"),
        "valid": empty(("row", "col"), (rows, cols), "bool"),
    }
    if "tokens" in dims:
        ranked = (rows, cols, TOP_CONCEPTS)
        tokens = (rows, cols, dims["tokens"], TOKEN_TOP_CONCEPTS)
        token_dims = ("row", "col", "token", "token_rank")
        variables |= {
            "concept_ids": empty(("row", "col", "rank"), ranked, "int32"),
            "concept_weights": empty(("row", "col", "rank"), ranked, "float32"),
            "token_concept_ids": empty(token_dims, tokens, "int32"),
            "token_concept_scores": empty(token_dims, tokens, "float32"),
        }
    if "queries" in dims:
        variables |= {
            "image_queries": empty(
                ("row", "col", "token", "dim"), (rows, cols, dims["queries"], dims["dim"]),
                "float32",
            ),
            "lon": empty(("row", "col"), (rows, cols), "float64"),
            "lat": empty(("row", "col"), (rows, cols), "float64"),
        }  # fmt: skip
    xs, ys = cell_centres(transform, cols, rows)
    template = xr.Dataset(
        variables,
        coords={"x": ("col", xs), "y": ("row", ys)},
        attrs={
            "format": CACHE_FORMAT,
            "spec": spec.to_json(),
            "space_id": spec.space_id,
            "crs_wkt": crs_wkt,
            "transform": list(transform)[:6],
            "row_offset": int(grid["row"].min()),
            "col_offset": int(grid["col"].min()),
        },
    )
    _build_then_rename(path, template)


def _build_then_rename(path: Path, template: xr.Dataset) -> None:
    """Write a new cache's marker and metadata beside ``path``, then swap it into place.

    A kill at any moment leaves either the folder as it was (and a staging folder the next
    write removes, :func:`geosound.atomic.remove_stale_temporaries`) or a complete, valid
    cache; never a folder that every rerun would refuse.
    """
    with atomic_folder(path) as staging:
        _write_marker(staging)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            template.to_zarr(staging, compute=False, mode="a", consolidated=False, zarr_format=2)


def cache_transform(ds: xr.Dataset) -> Affine:
    """The affine transform of the cache's one-pixel-per-tile grid."""
    return Affine(*ds.attrs["transform"])


# ------------------------------------------------------------------------------ computing


_SPACES: dict[str, EmbeddingSpace] = {}


def has_metadata(space: EmbeddingSpace) -> TypeGuard[SharedSpace]:
    """Whether tiles embedded in ``space`` take location and time (their cache keeps both)."""
    return isinstance(space, SharedSpace) and space.has_metadata


def embedding_outputs(output: ModalityOutput) -> dict[str, np.ndarray]:
    """The cached form of a batch of image outputs: embeddings and their strongest concepts."""
    values = {"embedding": output.embedding.numpy()}
    if output.weights is not None and output.token_scores is not None:
        top_w, top_i = output.weights.topk(TOP_CONCEPTS, dim=-1)
        tok_s, tok_i = output.token_scores.topk(TOKEN_TOP_CONCEPTS, dim=-1)
        for name, value in zip(CONCEPT_VARIABLES, (top_i, top_w, tok_i, tok_s), strict=True):
            values[name] = value.numpy()
    return values


def has_concepts(space: EmbeddingSpace) -> TypeGuard[ConceptSpace]:
    """Whether tiles embedded in ``space`` also get their codebook concepts cached."""
    return isinstance(space, ConceptSpace) and space.has_concepts


def use_space(space: EmbeddingSpace) -> None:
    """Make ``space`` the one this process computes chunks of caches in its space with.

    Needed for spaces that cannot be rebuilt from a checkpoint path (the stand-in, a space a
    notebook built); Dask workers rebuild Sat2Sound spaces from the recorded checkpoint.
    """
    _SPACES[space.space_id] = space


def space_for(spec: RegionSpec) -> EmbeddingSpace:
    """The space a cache was made in: registered in this process, or loaded from its checkpoint.

    Raises:
        InputError: The space is neither registered here nor a Sat2Sound checkpoint, or the
            checkpoint now holds another model.
    """
    if spec.space_id in _SPACES:
        return _SPACES[spec.space_id]
    if not spec.space_id.startswith("sat2sound:"):
        raise InputError(
            f"this region cache was made in space {spec.space_id}, which only the process that "
            "made it can compute (map it in-process, without Dask workers)",
            spec.raster,
        )
    space = load_shared_space(spec.checkpoint)
    if space.space_id != spec.space_id:
        raise InputError(
            f"the checkpoint now holds model {space.space_id}, not {spec.space_id}",
            spec.checkpoint or "the shipped model",
        )
    use_space(space)
    return space


def compute_chunk(cache_path: str, chunk: ChunkPlan, batch_size: int = 64) -> int:
    """Embed one chunk of the region and write it; returns the chunk index.

    A plain function of picklable arguments, so that Dask can run it on any worker.
    """
    cache = RegionCache(Path(cache_path), read_spec(cache_path))
    if cache.is_done(chunk):
        return chunk.index
    spec = cache.spec
    space = space_for(spec)
    ds = cache.dataset()
    row_offset, col_offset = int(ds.attrs["row_offset"]), int(ds.attrs["col_offset"])
    with RasterSource(spec.raster) as source:
        part = spec.grid(source, rows=(row_offset + chunk.row_start, row_offset + chunk.row_stop))
        outputs = _embed_with_concepts(source, part, space, get_preset(spec.preset), batch_size)
    block = _empty_block(ds, chunk.row_stop - chunk.row_start)
    r = part["row"].to_numpy() - row_offset - chunk.row_start
    c = part["col"].to_numpy() - col_offset
    for name, values in outputs.items():
        block[name][r, c] = values
    chunk_ds = xr.Dataset({name: (ds[name].dims, values) for name, values in block.items()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chunk_ds.to_zarr(
            cache.path,
            region={"row": slice(chunk.row_start, chunk.row_stop)},
            consolidated=False,
        )
    cache.mark_done(chunk)
    return chunk.index


_FILL = {"concept_ids": -1, "token_concept_ids": -1, "concept_weights": 0.0, "valid": False}


def _empty_block(ds: xr.Dataset, height: int) -> dict[str, np.ndarray]:
    """Arrays for ``height`` grid rows of every cache variable, filled with "no tile"."""
    block = {}
    for name, variable in ds.data_vars.items():
        shape = (height, *variable.shape[1:])
        block[str(name)] = np.full(shape, _FILL.get(str(name), np.nan), variable.dtype)
    return block


def _embed_with_concepts(
    source: RasterSource,
    grid: gpd.GeoDataFrame,
    space: EmbeddingSpace,
    preset: BandPreset,
    batch_size: int,
) -> dict[str, np.ndarray]:
    """Per tile: embedding and validity; with concepts, the top concepts of tiles and tokens.

    A model that takes location and time is run in two steps: the image encoder and head for
    every tile (kept as ``image_queries``), then the fusion with each tile centre's lon/lat and
    no time, the embedding a map without ``--month``/``--hour`` shows.
    """
    collected: dict[str, list[np.ndarray]] = {}

    def embed(rgb: np.ndarray) -> np.ndarray:
        if has_metadata(space):
            queries, _ = space.project_images(rgb)
            collected.setdefault("image_queries", []).append(queries.numpy())
            return np.zeros((len(rgb), space.dim), np.float32)  # fused below, with the places
        if not has_concepts(space):
            return space.embed_rgb(rgb)
        values = embedding_outputs(space.embed_images(rgb))
        for name in CONCEPT_VARIABLES:
            collected.setdefault(name, []).append(values[name])
        return values["embedding"]

    embeddings = embed_tiles(source, grid, embed, space.dim, preset, batch_size)
    valid = ~np.isnan(embeddings).any(axis=1)
    if has_metadata(space) and valid.any():
        collected |= _fuse_places(space, grid, valid, np.concatenate(collected["image_queries"]))
        embeddings[valid] = np.concatenate(collected.pop("embedding"))
    outputs: dict[str, np.ndarray] = {"embedding": embeddings, "valid": valid}
    for name, parts in collected.items():
        values = np.concatenate(parts)
        full = np.zeros((len(grid), *values.shape[1:]), values.dtype)
        full[valid] = values
        outputs[name] = full
    return outputs


def _fuse_places(
    space: SharedSpace, grid: gpd.GeoDataFrame, valid: np.ndarray, queries: np.ndarray
) -> dict[str, list[np.ndarray]]:
    """Embeddings (and concepts) of the valid tiles at their own place, time unknown."""
    from geosound.geo.ground import lonlat
    from geosound.models import metadata_features

    centres = grid.geometry.centroid[valid]
    lon, lat = lonlat(centres.x.to_numpy(), centres.y.to_numpy(), grid.crs)
    tokens = torch.from_numpy(queries)
    mask = torch.ones(tokens.shape[:2], dtype=torch.bool)
    values = embedding_outputs(space.fuse_images(tokens, mask, metadata_features(lat, lon)))
    fused = {name: [value] for name, value in values.items()}
    return fused | {"image_queries": [queries], "lon": [lon], "lat": [lat]}


def run_chunks(
    cache: RegionCache,
    workers: int = 0,
    scheduler: str | None = None,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> None:
    """Compute every pending chunk: in this process, on a local cluster, or on a scheduler.

    Args:
        cache: The region cache.
        workers: Start a Dask LocalCluster with this many worker processes (0: in-process).
        scheduler: Address of an existing Dask scheduler (``tcp://host:8786``); wins over
            ``workers``.
        batch_size: Tiles per forward pass.
        progress: Called with (fraction of chunks done, message).
    """
    chunks = cache.chunks()
    damaged = cache.unmark_damaged()
    pending = [chunk for chunk in chunks if not cache.is_done(chunk)]
    done = len(chunks) - len(pending)

    def report(message: str) -> None:
        if progress:
            progress(done / max(1, len(chunks)), message)

    if damaged:
        names = ", ".join(str(chunk.index) for chunk in damaged[:10])
        report(f"{len(damaged)} chunk(s) deleted or damaged since written ({names}): redoing")
    report(f"{done}/{len(chunks)} chunks already embedded")
    if not pending:
        return
    if scheduler is None and workers <= 0:
        for chunk in pending:
            compute_chunk(str(cache.path), chunk, batch_size)
            done += 1
            report(f"embedded chunk {done}/{len(chunks)}")
        return
    import dask
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        # Dask's nannies set MALLOC_TRIM_THRESHOLD_=65536 in every worker, which makes the
        # encoder's many small allocations ~4x slower (benchmarks/results/map_2026-11-23.txt).
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            )
    client = Client(scheduler or cluster)
    try:
        futures = [
            client.submit(compute_chunk, str(cache.path), chunk, batch_size, pure=False, retries=2)
            for chunk in pending
        ]
        for _ in as_completed(futures):
            done += 1
            report(f"embedded chunk {done}/{len(chunks)}")
        client.gather(futures)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def embedding_at(
    cache_path: str | os.PathLike[str], x: float, y: float, crs: str = "EPSG:4326"
) -> np.ndarray:
    """The cached embedding of the tile whose cell contains a point (for synthesis at a place).

    Raises:
        InputError: As :func:`values_at`.
    """
    return values_at(cache_path, x, y, crs)["embedding"]


def values_at(
    cache_path: str | os.PathLike[str],
    x: float,
    y: float,
    crs: str = "EPSG:4326",
    names: Sequence[str] = ("embedding",),
) -> dict[str, np.ndarray]:
    """Cached variables (``names``) of the tile whose cell contains a point.

    Raises:
        InputError: The point is outside the cached region or on a nodata tile, or the chunk
            holding it is not embedded (or was damaged since): rerun ``geosound map``.
    """
    from pyproj import CRS as ProjCRS
    from pyproj import Transformer

    cache = RegionCache(Path(cache_path), read_spec(cache_path))
    ds = cache.dataset()
    target = ProjCRS.from_wkt(ds.attrs["crs_wkt"])
    if ProjCRS.from_user_input(crs) != target:
        x, y = Transformer.from_crs(crs, target, always_xy=True).transform(x, y)
    col, row = ~cache_transform(ds) @ (x, y)
    row_i, col_i = int(np.floor(row)), int(np.floor(col))
    if not (0 <= row_i < ds.sizes["row"] and 0 <= col_i < ds.sizes["col"]):
        raise InputError(f"point ({x:.6g}, {y:.6g}) is outside the cached region", cache_path)
    chunk = cache.chunks()[row_i // cache.spec.chunk_rows]
    if not cache.is_intact(chunk):
        raise InputError(
            f"the part of this region cache holding ({x:.6g}, {y:.6g}) is not embedded or was "
            "damaged since; rerun `geosound map` on it",
            cache_path,
        )
    if not bool(ds["valid"][row_i, col_i]):
        raise InputError(f"point ({x:.6g}, {y:.6g}) falls on a nodata tile", cache_path)
    return {name: ds[name][row_i, col_i].values for name in names}


def embed_region(
    cache_path: str | os.PathLike[str],
    raster: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str] | None = None,
    tile_size: int = 64,
    stride: int | None = None,
    preset: str | None = None,
    bounds: Sequence[float] | None = None,
    bounds_crs: str | None = None,
    chunk_rows: int = 8,
    workers: int = 0,
    scheduler: str | None = None,
    progress: Progress | None = None,
    space: EmbeddingSpace | None = None,
    batch_size: int = 64,
) -> RegionCache:
    """Make (or resume) the region cache of a raster: the one expensive step of mapping.

    Args:
        cache_path: The cache folder (new, empty, or an earlier cache of the same region).
        raster: A georeferenced raster.
        checkpoint: Sat2Sound checkpoint (default: the shipped model); ignored with ``space``.
        tile_size: Tile edge in pixels.
        stride: Step between tiles (default: ``tile_size``).
        preset: Band preset (default: guessed from the raster).
        bounds: Area of interest (minx, miny, maxx, maxy) in ``bounds_crs``.
        bounds_crs: CRS of ``bounds`` (default: the raster's).
        chunk_rows: Grid rows per unit of work.
        workers: Dask worker processes (0: in-process).
        scheduler: Existing Dask scheduler address.
        progress: Called with (fraction of chunks done, message).
        space: A space to embed in, instead of loading ``checkpoint`` (in-process only, unless
            it is a Sat2Sound space its workers can load).
        batch_size: Tiles per forward pass.
    """
    checkpoint_path = None if checkpoint is None else str(Path(checkpoint).resolve())
    if space is None:
        space = load_shared_space(checkpoint_path)
    use_space(space)
    spec = plan_spec(
        raster, space.space_id, checkpoint_path, tile_size, stride, preset,
        None if bounds is None else (bounds[0], bounds[1], bounds[2], bounds[3]),
        bounds_crs, chunk_rows,
    )  # fmt: skip
    dims = {"dim": space.dim}
    if has_concepts(space):
        dims["tokens"] = space.tokens_per_image(spec.tile_size)
    if has_metadata(space):
        dims["queries"] = space.tokens_per_image(spec.tile_size)
    with exclusive(cache_path, "region cache"):
        cache = open_or_create_cache(cache_path, spec, dims, progress)
        run_chunks(cache, workers, scheduler, batch_size, progress)
    return cache
