"""Soundscapes for places, synthesised by retrieval (METHODS.md §1, last point, and §3).

The reference feeds a caption of the place to a text-to-audio model. geosound runs offline
and ships no generator, so it does what the method allows without one: embed the place (an
image chip cut at the point), fetch the ``k`` nearest **real** recordings from an audio bank
of the same embedding space, loudness-normalise each to its own target (ITU-R BS.1770) and mix
them. Every product says so — in its sidecar and in the columns a GIS user gets back — and
lists the recordings it was mixed from with their licences, because a mix of real clips
inherits their licences.

Entry points:

* :func:`synthesize_at` — one place embedding → a :class:`Synthesis` (clip + sources table);
* :func:`place_embedding_from_raster` — a point on a raster → its place embedding;
* :func:`write_synthesis` — the WAV and its JSON sidecar;
* :func:`synthesize_points` — every point of a vector layer → one WAV each, and the layer back
  with ``wav`` and ``sources`` columns (:func:`write_points_layer` saves it as a GeoPackage);
* :func:`embedding_from_region_cache` — the hook for region caches made by ``geosound map``.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from geosound.atomic import atomic_path
from geosound.audio import Clip, load_audio, measure_lufs, mix, random_lufs_targets, write_audio
from geosound.errors import AudioError, InputError
from geosound.geo import (
    BandPreset,
    PointsLike,
    RasterSource,
    chip_windows,
    opened,
    points_inside,
    read_rgb,
    resolve_preset,
    write_geopackage,
)
from geosound.geo.ground import lonlat
from geosound.mapping.region import (
    METADATA_VARIABLES,
    embedding_at,
    has_metadata,
    read_spec,
    values_at,
)
from geosound.mapping.timeplace import Moment, place_metadata
from geosound.progress import Progress
from geosound.sidecar import sidecar as sidecar_record

if TYPE_CHECKING:
    import geopandas as gpd

    from geosound.retrieval.shards import Bank
    from geosound.space import EmbeddingSpace
    from geosound.space.shared import SharedSpace

__all__ = [
    "METHOD_NOTE",
    "SOURCE_COLUMNS",
    "Synthesis",
    "embedding_from_region_cache",
    "loop_to_length",
    "place_embedding_from_raster",
    "synthesize_at",
    "synthesize_points",
    "write_points_layer",
    "write_synthesis",
]

#: What every synthesised product says about itself: the mix is real audio, not generated.
METHOD_NOTE = (
    "synthesised by retrieval: top-k real recordings, loudness-normalised and mixed; "
    "not generated audio"
)

#: Columns of :attr:`Synthesis.sources`, in order.
SOURCE_COLUMNS = ("rank", "score", "path", "label", "licence", "target_lufs")

#: Fade at the ends of each loop of a short clip: long enough to remove the click where the
#: end of a clip meets its start, short enough (10 ms) not to be heard as a fade.
LOOP_FADE_SECONDS = 0.01

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


# --------------------------------------------------------------------------- the product


@dataclass(frozen=True, eq=False)
class Synthesis:
    """A soundscape mixed from real recordings, with everything needed to credit and repeat it.

    Attributes:
        clip: The mix: mono float32 at ``parameters["sample_rate"]``, peak ≤ 0.99.
        sources: One row per mixed recording, best match first: ``rank`` (1 = best),
            ``score`` (cosine similarity to the place), ``path``, ``label`` and ``licence``
            (from the bank's metadata; None where the bank does not record them) and
            ``target_lufs`` (the loudness the clip was normalised to; rank 1 is loudest).
        space_id: The embedding space of the place and the bank (``sat2sound:<model id>``).
        model_note: What the model behind the space was trained on (for the sidecar).
        parameters: ``k``, ``seconds``, ``sample_rate``, ``lufs_range``, ``seed``,
            ``min_score`` as used, so the mix can be remade.
        point: Where the place is (``x``, ``y``, ``crs``, and ``id``/``raster`` where known);
            None when the caller gave only an embedding.
    """

    clip: Clip
    sources: pd.DataFrame
    space_id: str
    model_note: str
    parameters: dict[str, Any]
    point: dict[str, Any] | None = field(default=None)

    @property
    def method(self) -> str:
        """How the audio was made (always retrieval and mixing, never generation)."""
        return METHOD_NOTE

    def sources_records(self) -> list[dict[str, Any]]:
        """The sources as JSON-ready dicts (plain Python numbers, None for missing values)."""
        records = []
        for row in self.sources.itertuples(index=False):
            records.append(
                {
                    "rank": int(row.rank),
                    "score": round(float(row.score), 6),
                    "path": str(row.path),
                    "label": _plain(row.label),
                    "licence": _plain(row.licence),
                    "target_lufs": round(float(row.target_lufs), 3),
                }
            )
        return records

    def sidecar(self, wav_name: str | None = None) -> dict[str, Any]:
        """The sidecar JSON payload: provenance, method, point, parameters, credited sources."""
        unlicensed = [r["path"] for r in self.sources_records() if r["licence"] is None]
        payload = sidecar_record(
            "geosound synthesize",
            method=METHOD_NOTE,
            space_id=self.space_id,
            model=self.model_note,
            point=self.point,
            parameters=self.parameters,
            audio={
                "file": wav_name,
                "seconds": round(self.clip.duration, 6),
                "sample_rate": self.clip.sample_rate,
                "channels": self.clip.channels,
                "peak": round(float(np.max(np.abs(self.clip.samples), initial=0.0)), 6),
            },
            sources=self.sources_records(),
        )
        if unlicensed:
            payload["licence_note"] = (
                f"{len(unlicensed)} source(s) have no licence in the bank's metadata; check "
                "them before sharing this mix"
            )
        return payload


# --------------------------------------------------------------------------- one place


def synthesize_at(
    space: SharedSpace,
    bank: Bank,
    embedding: np.ndarray,
    k: int = 3,
    seconds: float = 10.0,
    sample_rate: int = 16000,
    lufs_range: tuple[float, float] = (-26.0, -20.0),
    seed: int = 0,
    min_score: float | None = None,
    *,
    point: Mapping[str, Any] | None = None,
) -> Synthesis:
    """Mix the ``k`` real recordings nearest to a place into one soundscape.

    Each clip is looped (short ones, with 10 ms fades at the seams so loops do not click) or
    trimmed to ``seconds``, then normalised to a loudness target drawn from ``lufs_range``
    with ``seed``. The targets are sorted so the best match is the loudest — "louder source →
    more prominent" (METHODS §3) then says what the model is most sure of. The sum is scaled
    down as a whole if it would clip, which keeps the sources' relative loudness.

    Args:
        space: The shared space the place embedding comes from; its id must be the bank's.
        bank: An audio bank of real recordings in ``space`` (see ``geosound index build``).
        embedding: The place, a ``(D,)`` or ``(1, D)`` vector in ``space``.
        k: How many recordings to mix (fewer if the bank is smaller).
        seconds: Length of the mix.
        sample_rate: Rate of the mix in Hz; clips are resampled to it.
        lufs_range: ``(quietest, loudest)`` loudness targets in LUFS.
        seed: Seeds the loudness targets: the same seed gives the same mix.
        min_score: Drop recordings whose cosine similarity to the place is below this; an
            error if none is left (better no sound than a sound that does not fit).
        point: Where the place is, recorded in the sidecar (``x``, ``y``, ``crs``, …).

    Returns:
        The mix and its sources table.

    Raises:
        InputError: Bad parameters, a bank from another space, or no recording above
            ``min_score``.
        AudioError: A retrieved recording is missing, corrupt, silent or too quiet to
            normalise (named).
    """
    _check_parameters(k, seconds, sample_rate, lufs_range)
    _check_same_space(space, bank)
    hits = _search(bank, embedding, k, min_score)
    loader = _ClipLoader(sample_rate, round(seconds * sample_rate))
    return _mix_hits(
        hits,
        loader,
        space=space,
        parameters=_parameters(k, seconds, sample_rate, lufs_range, seed, min_score),
        point=point,
    )


def place_embedding_from_raster(
    space: SharedSpace,
    raster: str | os.PathLike[str] | RasterSource,
    x: float,
    y: float,
    crs: str = "EPSG:4326",
    chip_size: int = 64,
    preset: str | BandPreset | None = None,
    moment: Moment | None = None,
) -> np.ndarray:
    """Embed the image chip centred on a point: the "place" that :func:`synthesize_at` needs.

    The point is checked against the raster before the image encoder runs, so a point off the
    map fails at once and clearly. A model trained with metadata also gets the point's lon/lat
    and ``moment``'s month and hour (unknown where not given).

    Args:
        space: The shared space to embed into.
        raster: A georeferenced raster (path or open :class:`RasterSource`).
        x: The point's x (longitude for EPSG:4326).
        y: The point's y (latitude for EPSG:4326).
        crs: CRS of ``x``/``y``; they are reprojected to the raster's CRS.
        chip_size: Chip edge in pixels (pixels past the raster edge are black).
        preset: Band preset (name or :class:`BandPreset`); None guesses from bands and dtype.
        moment: Month and hour of the place (models trained with metadata only).

    Returns:
        A ``(D,)`` float32 unit vector.

    Raises:
        OutsideRasterError: The point lies outside the raster (message names the raster).
        RasterError: The raster cannot be read, lacks a CRS or the preset's bands.
    """
    rgb = _chips_rgb(raster, [(float(x), float(y))], crs, chip_size, preset)
    metadata = None
    if space.has_metadata:
        lon, lat = lonlat([float(x)], [float(y)], crs)
        metadata = place_metadata(lon, lat, moment or Moment())
    return space.embed_images(rgb, metadata).embedding.numpy()[0].astype(np.float32)


def embedding_from_region_cache(
    cache_path: str | os.PathLike[str],
    x: float,
    y: float,
    crs: str,
    space: EmbeddingSpace | None = None,
    moment: Moment | None = None,
) -> np.ndarray:
    """The place embedding at a point, read from a region cache made by ``geosound map``.

    A cache spares the image encoder: the tile under the point was embedded when the region
    was mapped. At a given ``moment`` (a metadata model), the tile's cached time-free tokens
    and its lon/lat are fused with that month and hour.

    Args:
        cache_path: The region cache folder.
        x: The point's x in ``crs``.
        y: The point's y in ``crs``.
        crs: CRS of the point.
        space: When given, the cache must have been made in this space: a vector of another
            model has the right width as often as not, and would retrieve meaningless
            neighbours silently.
        moment: Month and hour (needs ``space``, a model trained with metadata).

    Returns:
        A ``(D,)`` float32 vector.

    Raises:
        InputError: The cache was made in another space, or the point is off its tiles.
    """
    if space is not None:
        cached_space = read_spec(cache_path).space_id
        if cached_space != space.space_id:
            raise InputError(
                f"this region cache holds embeddings of {cached_space!r}, but the bank and "
                f"model are {space.space_id!r}; map the region with the same checkpoint",
                cache_path,
            )
    if moment is not None and moment.given and space is not None and has_metadata(space):
        import torch

        try:
            cell = values_at(cache_path, x, y, crs, METADATA_VARIABLES)
        except KeyError:
            raise InputError(
                "this region cache lacks the time-free part of a metadata model; map the "
                "region again into a new --cache",
                cache_path,
            ) from None
        queries = torch.from_numpy(np.asarray(cell["image_queries"], np.float32)[None])
        metadata = place_metadata(np.atleast_1d(cell["lon"]), np.atleast_1d(cell["lat"]), moment)
        mask = torch.ones(queries.shape[:2], dtype=torch.bool)
        return space.fuse_images(queries, mask, metadata).embedding.numpy()[0].astype(np.float32)
    return np.asarray(embedding_at(cache_path, x, y, crs), dtype=np.float32).reshape(-1)


# --------------------------------------------------------------------------- files


def write_synthesis(synthesis: Synthesis, wav_path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write the mix as a WAV and its sidecar (same stem, ``.json``), each atomically.

    The sidecar is staged first and renamed only after the WAV is in place, so a failed write
    leaves neither file; the sidecar carries the method note and the sources' licences,
    which is what anyone sharing the WAV needs.

    Args:
        synthesis: From :func:`synthesize_at`.
        wav_path: Destination ``.wav`` (or ``.flac``).

    Returns:
        The WAV path and the sidecar path.

    Raises:
        InputError: The suffix is not ``.wav``/``.flac``.
    """
    wav_path = Path(wav_path)
    _check_audio_suffix(wav_path)
    sidecar_path = wav_path.with_suffix(".json")
    payload = synthesis.sidecar(wav_path.name)
    with atomic_path(sidecar_path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        write_audio(wav_path, synthesis.clip)
    return wav_path, sidecar_path


def write_points_layer(
    points: gpd.GeoDataFrame, path: str | os.PathLike[str], layer: str = "points_with_sounds"
) -> Path:
    """Save the layer from :func:`synthesize_points` as a GeoPackage, atomically.

    Args:
        points: The layer with its ``wav`` and ``sources`` columns.
        path: Destination ``.gpkg``.
        layer: Layer name inside the GeoPackage (what QGIS shows).

    Returns:
        The GeoPackage path.
    """
    path = Path(path)
    if path.suffix.lower() != ".gpkg":
        raise InputError("the point layer is written as a GeoPackage (.gpkg)", path)
    return write_geopackage(path, points, layer)


# --------------------------------------------------------------------------- a layer


def synthesize_points(
    space: SharedSpace,
    bank: Bank,
    raster: str | os.PathLike[str] | RasterSource | None,
    points: gpd.GeoDataFrame,
    out_dir: str | os.PathLike[str],
    k: int = 3,
    seconds: float = 10.0,
    sample_rate: int = 16000,
    lufs_range: tuple[float, float] = (-26.0, -20.0),
    seed: int = 0,
    min_score: float | None = None,
    *,
    id_column: str | None = None,
    chip_size: int = 64,
    preset: str | BandPreset | None = None,
    embeddings: np.ndarray | None = None,
    progress: Progress | None = None,
    moment: Moment | None = None,
) -> gpd.GeoDataFrame:
    """One soundscape per point of a vector layer, returned as attributes of the layer.

    Everything that can fail on the user's input is checked before ``out_dir`` is touched:
    the points (geometry, CRS, ids, inside the raster), the bank's space, every retrieved
    recording (loaded and measured once, then shared between points). Only then are the
    WAVs and sidecars written, so bad input never leaves a partial folder.

    Point ``i`` (in layer order) is mixed with seed ``seed + i``, so a layer is repeatable
    and neighbouring points with the same sources still get different loudness balances.

    Args:
        space: The shared space of the model.
        bank: An audio bank in ``space``.
        raster: The imagery to cut the chips from; may be None when ``embeddings`` is given.
        points: A GeoDataFrame of points in any CRS (reprojected to the raster's).
        out_dir: Folder for ``<id>.wav`` + ``<id>.json`` per point (created if missing).
        k: Recordings per mix.
        seconds: Length of each mix.
        sample_rate: Rate of the mixes in Hz.
        lufs_range: Loudness targets in LUFS, ``(quietest, loudest)``.
        seed: Base seed (point ``i`` uses ``seed + i``).
        min_score: See :func:`synthesize_at`; applies to every point.
        id_column: Column naming each point (file names, error messages); default the
            layer's index, giving ``point_<index>.wav``.
        chip_size: Chip edge in pixels.
        preset: Band preset; None guesses.
        embeddings: ``(N, D)`` place embeddings computed elsewhere (e.g. from a region
            cache), used instead of cutting chips from ``raster``.
        progress: Optional ``callback(fraction, message)``.
        moment: Month and hour of every place (models trained with metadata; each point's
            own lon/lat is used), recorded in each sidecar.

    Returns:
        A copy of ``points`` with ``wav`` (path of the WAV) and ``sources`` (JSON list of
        rank, score, path, label, licence, target_lufs) columns; existing columns of those
        names are replaced, so a layer can be re-run.

    Raises:
        OutsideRasterError: Points outside the raster, named by id.
        InputError: Empty layer, non-point or empty geometries, no CRS, duplicate ids, bad
            parameters, no raster and no embeddings, or ``out_dir`` is a file.
        AudioError: A retrieved recording is unusable (named), before anything is written.
    """
    report = progress or (lambda fraction, message: None)
    _check_parameters(k, seconds, sample_rate, lufs_range)
    _check_same_space(space, bank)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a folder", out)
    ids, names = _point_ids(points, id_column)
    moment = moment or Moment()
    vectors = _place_vectors(
        space, raster, points, ids, embeddings, chip_size, preset, report, moment
    )

    report(0.4, "retrieving recordings")
    hits = [_search(bank, vector, k, min_score) for vector in vectors]
    loader = _ClipLoader(sample_rate, round(seconds * sample_rate))
    for table in hits:
        for path in table["path"]:
            loader(str(path))  # every recording checked before anything is written

    def parameters(position: int) -> dict[str, Any]:
        return _parameters(k, seconds, sample_rate, lufs_range, seed + position, min_score)

    wavs, sources = _write_point_mixes(
        space, raster, points, hits, ids, names, loader, parameters, out, report, moment
    )
    report(1.0, f"wrote {len(wavs)} soundscapes")
    result = points.copy()
    result["wav"] = wavs
    result["sources"] = sources
    return result


def _place_vectors(
    space: SharedSpace,
    raster: str | os.PathLike[str] | RasterSource | None,
    points: gpd.GeoDataFrame,
    ids: list[str],
    embeddings: np.ndarray | None,
    chip_size: int,
    preset: str | BandPreset | None,
    report: Progress,
    moment: Moment,
) -> np.ndarray:
    """The ``(N, D)`` place embeddings: the caller's, checked for shape, or embedded chips.

    Chips are cut only after every point is known to lie inside the raster, so a point off
    the map is named by its id before the image encoder spends any time.
    """
    if embeddings is None:
        if raster is None:
            raise InputError("synthesize_points needs a raster or precomputed embeddings")
        _check_inside(raster, points, ids)
        report(0.05, f"embedding {len(points)} places")
        return _embed_points(space, raster, points, chip_size, preset, moment)
    vectors = np.asarray(embeddings, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(points):
        raise InputError(
            f"embeddings must be ({len(points)}, D) for {len(points)} points; "
            f"got shape {vectors.shape}"
        )
    return vectors


def _write_point_mixes(
    space: SharedSpace,
    raster: str | os.PathLike[str] | RasterSource | None,
    points: gpd.GeoDataFrame,
    hits: list[pd.DataFrame],
    ids: list[str],
    names: list[str],
    loader: _ClipLoader,
    parameters: Callable[[int], dict[str, Any]],
    out: Path,
    report: Progress,
    moment: Moment,
) -> tuple[list[str], list[str]]:
    """Mix and write each point's WAV and sidecar; the WAV paths and the sources JSON.

    Mixed and written one point at a time, so memory follows one mix, not the layer. The
    input has all been checked, so a failure here is the disk's: whatever this call wrote is
    removed again (and ``out`` itself, if this call created it).
    """
    crs_text = points.crs.to_string() if points.crs is not None else None
    raster_text = _raster_name(raster)
    created = not out.exists()
    written: list[Path] = []
    wavs: list[str] = []
    sources: list[str] = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        for position, (table, point_id, name) in enumerate(zip(hits, ids, names, strict=True)):
            geometry = points.geometry.iloc[position]
            where = _point_record(point_id, geometry, crs_text, raster_text)
            if moment.given:
                where["time"] = moment.record()
            synthesis = _mix_hits(
                table, loader, space=space, parameters=parameters(position), point=where
            )
            wav, sidecar = write_synthesis(synthesis, out / f"{name}.wav")
            written += [wav, sidecar]
            wavs.append(str(wav.resolve()))
            sources.append(json.dumps(synthesis.sources_records()))
            report(0.4 + 0.6 * (position + 1) / len(points), f"wrote {position + 1}/{len(points)}")
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    return wavs, sources


def _point_record(
    point_id: str, geometry: Any, crs_text: str | None, raster_text: str | None
) -> dict[str, Any]:
    """Where a point's mix was made, as its sidecar records it (``raster`` only when known)."""
    where: dict[str, Any] = {
        "id": point_id,
        "x": float(geometry.x),
        "y": float(geometry.y),
        "crs": crs_text,
    }
    if raster_text:
        where["raster"] = raster_text
    return where


# --------------------------------------------------------------------------- helpers


def loop_to_length(samples: np.ndarray, length: int, sample_rate: int) -> np.ndarray:
    """Loop a short clip, or trim a long one, to exactly ``length`` samples.

    Looping (not zero-padding) keeps a soundscape continuous: ten seconds of rain should not
    stop after three. Each repetition gets 10 ms fades so the seam does not click; a trimmed
    clip gets a fade-out at the cut for the same reason.

    Args:
        samples: Mono ``(n,)`` audio, ``n > 0``.
        length: Wanted length in samples.
        sample_rate: Rate of ``samples`` (for the fade length).

    Returns:
        float32 ``(length,)``.
    """
    audio = np.asarray(samples, dtype=np.float32).reshape(-1)
    if audio.size == 0:
        raise InputError("cannot loop an empty clip")
    fade = max(1, min(round(LOOP_FADE_SECONDS * sample_rate), audio.size // 4))
    ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, fade))).astype(np.float32)
    if audio.size >= length:
        out = audio[:length].copy()
        if audio.size > length and length >= fade:
            out[-fade:] *= ramp[::-1]
        return out
    piece = audio.copy()
    piece[:fade] *= ramp
    piece[-fade:] *= ramp[::-1]
    reps = math.ceil(length / piece.size)
    return np.tile(piece, reps)[:length]


class _ClipLoader:
    """Loads, loops and checks retrieved recordings once each (a layer reuses many)."""

    def __init__(self, sample_rate: int, length: int) -> None:
        self.sample_rate = sample_rate
        self.length = length
        self._clips: dict[str, np.ndarray] = {}

    def __call__(self, path: str) -> np.ndarray:
        if path not in self._clips:
            clip = load_audio(path, sample_rate=self.sample_rate, mono=True)
            looped = loop_to_length(clip.samples, self.length, self.sample_rate)
            if not math.isfinite(measure_lufs(looped, self.sample_rate)):
                raise AudioError(
                    "is too quiet to loudness-normalise (below the -70 LUFS gate of "
                    "ITU-R BS.1770 throughout)",
                    path,
                )
            self._clips[path] = looped
        return self._clips[path]


def _mix_hits(
    hits: pd.DataFrame,
    loader: _ClipLoader,
    *,
    space: SharedSpace,
    parameters: dict[str, Any],
    point: Mapping[str, Any] | None,
) -> Synthesis:
    """Mix a search result: seeded targets, loudest for rank 1, peak-guarded sum."""
    low, high = parameters["lufs_range"]
    rng = np.random.default_rng(parameters["seed"])
    targets = np.sort(random_lufs_targets(len(hits), low, high, rng))[::-1]
    sources = [loader(str(path)) for path in hits["path"]]
    samples = mix(sources, loader.sample_rate, target_lufs=list(targets), length=loader.length)
    table = pd.DataFrame(
        {
            "rank": hits["rank"].to_numpy(dtype=np.int64),
            "score": hits["score"].to_numpy(dtype=np.float32),
            "path": hits["path"].astype(str).to_numpy(),
            "label": _column(hits, "label"),
            "licence": _column(hits, "licence", "license"),
            "target_lufs": targets.astype(np.float64),
        },
        columns=list(SOURCE_COLUMNS),
    )
    return Synthesis(
        clip=Clip(samples, loader.sample_rate),
        sources=table,
        space_id=space.space_id,
        model_note=space.note,
        parameters=parameters,
        point=None if point is None else dict(point),
    )


def _search(bank: Bank, embedding: np.ndarray, k: int, min_score: float | None) -> pd.DataFrame:
    """The bank's top-k for one place, best first, filtered by ``min_score``."""
    vector = np.asarray(embedding, dtype=np.float32)
    if vector.ndim == 2 and vector.shape[0] == 1:
        vector = vector[0]
    if vector.ndim != 1:
        raise InputError(f"the place embedding must be one (D,) vector; got shape {vector.shape}")
    hits = bank.search(vector, k).to_frame()
    if min_score is not None:
        kept = hits[hits["score"] >= min_score]
        if kept.empty:
            best = float(hits["score"].max()) if len(hits) else float("nan")
            raise InputError(
                f"no recording in the bank scores >= min_score {min_score:g} for this place "
                f"(best {best:.3f}); lower --min-score or use a bigger bank"
            )
        hits = kept
    return hits.reset_index(drop=True)


#: Places embedded per forward pass in a layer: bounds the encoder's token memory.
EMBED_BATCH = 64


def _embed_points(
    space: SharedSpace,
    raster: str | os.PathLike[str] | RasterSource,
    points: gpd.GeoDataFrame,
    chip_size: int,
    preset: str | BandPreset | None,
    moment: Moment,
) -> np.ndarray:
    """(N, D) place embeddings, ``EMBED_BATCH`` chips at a time from one open raster.

    A model trained with metadata gets each point's own lon/lat and ``moment``.
    """
    parts = []
    with opened(raster) as source:
        for start in range(0, len(points), EMBED_BATCH):
            batch = points.iloc[start : start + EMBED_BATCH]
            rgb = _chips_rgb(source, batch, None, chip_size, preset)
            metadata = None
            if space.has_metadata:
                lon, lat = lonlat(batch.geometry.x, batch.geometry.y, batch.crs)
                metadata = place_metadata(lon, lat, moment)
            parts.append(space.embed_images(rgb, metadata).embedding.numpy())
    return np.concatenate(parts).astype(np.float32)


def _chips_rgb(
    raster: str | os.PathLike[str] | RasterSource,
    points: PointsLike,
    crs: str | None,
    chip_size: int,
    preset: str | BandPreset | None,
) -> np.ndarray:
    """(N, 3, H, W) RGB chips at points, scaled the way tiles and training chips are."""
    if int(chip_size) != chip_size or chip_size < 8:
        raise InputError(f"chip_size must be a whole number of pixels >= 8; got {chip_size!r}")
    with opened(raster) as source:
        windows = chip_windows(source, points, int(chip_size), crs)
        return read_rgb(source, windows, resolve_preset(source, preset))


def _check_inside(
    raster: str | os.PathLike[str] | RasterSource, points: gpd.GeoDataFrame, ids: Sequence[str]
) -> None:
    """Name every point outside the raster by its id, before any chip is embedded."""
    with opened(raster) as source:
        points_inside(source, points, names=[f"point {i}" for i in ids])


def _point_ids(points: object, id_column: str | None) -> tuple[list[str], list[str]]:
    """Ids for messages and safe, unique file stems for the WAVs."""
    import geopandas as gpd

    if not isinstance(points, gpd.GeoDataFrame):
        raise InputError(f"points must be a GeoDataFrame; got {type(points).__name__}")
    if len(points) == 0:
        raise InputError("the point layer has no features")
    if points.crs is None:
        raise InputError("the point layer has no CRS; set one (e.g. .set_crs('EPSG:4326'))")
    if id_column is not None and id_column not in points.columns:
        raise InputError(
            f"no column {id_column!r} in the point layer (has: "
            f"{', '.join(str(c) for c in points.columns if c != points.geometry.name)})"
        )
    values = points[id_column] if id_column is not None else pd.Series(points.index)
    ids = [str(v) for v in values]
    geometry = points.geometry
    problems = [
        f"{ids[i]} ({'empty' if g is None or g.is_empty else g.geom_type})"
        for i, g in enumerate(geometry)
        if g is None or g.is_empty or g.geom_type != "Point"
    ]
    if problems:
        raise InputError(
            "synthesis needs one point per feature; not a point: " + ", ".join(problems[:5])
        )
    stems = [
        _SAFE_NAME.sub("_", i).strip("._") or "point"
        for i in (ids if id_column is not None else [f"point_{v}" for v in ids])
    ]
    seen: dict[str, str] = {}
    for point_id, stem in zip(ids, stems, strict=True):
        if stem in seen:
            raise InputError(
                f"points {seen[stem]!r} and {point_id!r} would both be written as {stem}.wav; "
                "give each point a distinct id" + (f" in column {id_column!r}" if id_column else "")
            )
        seen[stem] = point_id
    return ids, stems


def _check_parameters(
    k: int, seconds: float, sample_rate: int, lufs_range: tuple[float, float]
) -> None:
    if int(k) != k or k < 1:
        raise InputError(f"k must be a whole number >= 1; got {k!r}")
    if not (math.isfinite(seconds) and seconds > 0):
        raise InputError(f"seconds must be > 0; got {seconds!r}")
    if seconds * sample_rate < 1:
        raise InputError(f"{seconds} s at {sample_rate} Hz is less than one sample")
    if int(sample_rate) != sample_rate or sample_rate < 1000:
        raise InputError(f"sample_rate must be a whole number of Hz >= 1000; got {sample_rate!r}")
    low, high = lufs_range
    if not (math.isfinite(low) and math.isfinite(high)) or low > high or high > 0:
        raise InputError(
            f"lufs_range must be (quietest, loudest) with quietest <= loudest <= 0; "
            f"got {tuple(lufs_range)!r}"
        )


def _check_same_space(space: SharedSpace, bank: Bank) -> None:
    if bank.space_id != space.space_id:
        raise InputError(
            f"the bank holds vectors of {bank.space_id!r} but places are embedded in "
            f"{space.space_id!r}; neighbours across spaces are meaningless — build the bank "
            "with the same checkpoint"
        )


def _parameters(
    k: int,
    seconds: float,
    sample_rate: int,
    lufs_range: tuple[float, float],
    seed: int,
    min_score: float | None,
) -> dict[str, Any]:
    return {
        "k": int(k),
        "seconds": float(seconds),
        "sample_rate": int(sample_rate),
        "lufs_range": [float(lufs_range[0]), float(lufs_range[1])],
        "seed": int(seed),
        "min_score": None if min_score is None else float(min_score),
    }


def _check_audio_suffix(path: Path) -> None:
    if path.suffix.lower() not in (".wav", ".flac"):
        raise InputError("the soundscape must be written as .wav (or .flac)", path)


def _column(hits: pd.DataFrame, *names: str) -> list[Any]:
    """A metadata column by the first of its names that exists; None values where absent."""
    for name in names:
        if name in hits.columns:
            return [_plain(v) for v in hits[name]]
    return [None] * len(hits)


def _plain(value: object) -> object:
    """Numpy scalars → Python, NaN/NA → None: what JSON and GeoPackage fields can hold."""
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value.item() if isinstance(value, np.generic) else value


def _raster_name(raster: object) -> str | None:
    if raster is None:
        return None
    return raster.path if isinstance(raster, RasterSource) else str(raster)
