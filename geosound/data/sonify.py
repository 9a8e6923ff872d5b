"""Seeing Sound: pair satellite tiles with real recordings through text (METHODS §3).

No real dataset pairs EuroSAT tiles with ESC-50 clips; Seeing Sound pairs images and sounds
from unrelated datasets through *sounding concepts*, short phrases of what is audible and
visible in an image. The steps, as METHODS §3 specifies them:

1. **Sounding concepts per tile** (:mod:`geosound.data.concepts`). A tile draws 1–3 phrases
   of its class's concept table (the number and the phrases drawn per tile from a seeded
   generator, "likely" sounds weighted above "possible" ones), or of its own ``concepts``.
2. **Retrieval per concept** (Algorithm 1 of the paper): ``q = E_text(s)``,
   ``t = cos(q, E_audio(pool))``, ``t = sign(t)·sqrt(|t|)`` (signed square root: damps the
   few outlying best matches so that one clip is not picked for every image),
   ``lb = mean(top-k(t))``, candidates ``{i : t_i > lb}``, pick one at random.
3. **Mix** (:mod:`geosound.data.recipe`). Each picked clip gets a loudness target drawn
   uniformly from a small LUFS range and a start offset; the pair stores the resulting
   :class:`~geosound.data.recipe.MixRecipe`, which renders the same samples every time.

Train tiles only get train clips and eval tiles eval clips (:mod:`geosound.data.splits`).

The offline substitute for a joint text–audio encoder
    The reference compares CLAP's text embedding of the concept with CLAP's *audio*
    embedding of every clip. Our offline encoders do not share a space: MiniLM (text, 384-d)
    and aiSFX (audio, 512-d) were trained separately, so a cosine between them means
    nothing. By default (:func:`caption_space`) the audio side is therefore the MiniLM
    *text* embedding of each clip's caption — its class phrase ("rain falling", from
    :data:`~geosound.data.concepts.CLIP_CAPTIONS`, or a ``caption`` column of the clip
    table). So ``t = cos(E_text(concept), E_text(caption(clip)))``. This is text-to-text
    retrieval over labels: every clip of a class scores the same, so the random pick among
    candidates is what spreads the choice over clips, and nothing in a clip's *sound* beyond
    its label influences the pairing. The comparison is pluggable (:class:`RetrievalSpace`):
    with a local CLAP checkpoint, :func:`joint_space` (``clap-text`` + ``clap-audio``)
    restores the paper's text-to-audio retrieval unchanged.

Choices the paper leaves open, written down here
    * ``k`` (:data:`DEFAULT_K` = 10): the paper's pool is ~500k clips; ours is ~100 with ~3–5
      clips per class, so k = 10 spans the best two or three classes and the threshold keeps
      the clearly better ones.
    * Ties: with caption embeddings the top-k may all be equal (one class filling the top-k),
      and then no score is *strictly* above their mean. We then keep the clips tied at the
      best score — the set the paper's rule would keep if scores differed by rounding.
    * One tile never gets the same clip twice; another candidate is taken when there is one.
    * Randomness comes from ``numpy.random.default_rng([seed, hash(tile id), variant])``:
      a tile's pairs depend on the seed, its id and the variant only, not on which other
      tiles are in the batch or in what order.
    * LUFS targets are drawn from :data:`DEFAULT_LUFS_RANGE` (6 dB: "very small variance"
      in the paper, yet enough that the louder source is audibly more prominent).
    * Clips longer than the mix start at a random offset; shorter ones are zero-padded at
      the end (METHODS §3: 16 kHz mono, 5 s, zero-pad short clips).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import geopandas as gpd
import numpy as np
import pandas as pd
import soundfile as sf

from geosound.data.concepts import (
    CONCEPT_PHRASES,
    MAX_CONCEPTS,
    Concept,
    clip_captions,
    tile_concepts,
)
from geosound.data.manifest import MANIFEST_CRS, validate_manifest
from geosound.data.recipe import MixRecipe, MixSource, is_recipe
from geosound.data.splits import split_by_tile_and_clip
from geosound.errors import AudioError, DataError, InputError
from geosound.progress import Progress

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

    from geosound.data.feature_cache import FeatureCache
    from geosound.encoders import Encoder

# geosound.audio (pyloudnorm → scipy.signal) and the encoders are imported inside the
# functions that mix, load or embed, so that ``import geosound.data`` stays quick for callers
# that only read tables.

__all__ = [
    "DEFAULT_K",
    "DEFAULT_LUFS_RANGE",
    "RetrievalSpace",
    "caption_space",
    "joint_space",
    "render_manifest",
    "retrieval_candidates",
    "signed_sqrt",
    "sonify_dev_sets",
    "sonify_tiles",
]

DEFAULT_K = 10
DEFAULT_LUFS_RANGE: tuple[float, float] = (-26.0, -20.0)

#: Relative tolerance for "strictly above the threshold": the mean of k equal float32-derived
#: scores can differ from them in the last bit, which must not decide membership.
_TIE_TOLERANCE = 1e-9

_Item = TypeVar("_Item")


# --------------------------------------------------------------------------- retrieval spaces


@dataclass(frozen=True)
class RetrievalSpace:
    """How concept phrases and pool clips are embedded so that their cosine means something.

    Attributes:
        name: Says which encoders were used (recorded by callers for provenance).
        embed_concepts: Phrases → ``(N, D)`` query vectors.
        embed_clips: The clip table (``path``, ``label``, optional ``caption``) → ``(M, D)``
            vectors in the same space as the queries.
    """

    name: str
    embed_concepts: Callable[[Sequence[str]], np.ndarray]
    embed_clips: Callable[[pd.DataFrame], np.ndarray]


def _pooled(
    encoder: Encoder,
    items: Sequence[_Item],
    cache: FeatureCache | None,
    prepare: Callable[[_Item], object] | None = None,
) -> np.ndarray:
    """Pooled vectors of ``items``, through the feature cache when there is one."""
    if cache is not None:
        return cache.encode_pooled(list(items), prepare=prepare)
    inputs = [prepare(item) for item in items] if prepare else list(items)
    return encoder.encode(inputs).pooled.detach().cpu().numpy()


def caption_space(
    encoder: Encoder | None = None, cache_root: Path | None = None, use_cache: bool = True
) -> RetrievalSpace:
    """The offline default: concepts and clip *captions* both through one text encoder.

    This stands in for a joint text–audio encoder (see the module docstring): it ranks
    clips by what their caption says, not by how they sound.

    Args:
        encoder: A text encoder (default ``get_encoder("minilm-l6")``).
        cache_root: Feature cache folder (default: the geosound cache).
        use_cache: Cache embeddings on disk, so reruns do not even load the encoder.

    Raises:
        InputError: ``encoder`` is not a text encoder.
    """
    from geosound.data.feature_cache import FeatureCache
    from geosound.encoders import get_encoder

    text = encoder if encoder is not None else get_encoder("minilm-l6")
    if text.modality != "text":
        raise InputError(f"caption_space needs a text encoder; {text.id} is {text.modality}")
    cache = FeatureCache(cache_root, text) if use_cache else None

    def embed_concepts(phrases: Sequence[str]) -> np.ndarray:
        return _pooled(text, phrases, cache)

    def embed_clips(clips: pd.DataFrame) -> np.ndarray:
        return _pooled(text, clip_captions(clips), cache)

    return RetrievalSpace(f"caption:{text.id}", embed_concepts, embed_clips)


def joint_space(
    text_encoder: Encoder,
    audio_encoder: Encoder,
    cache_root: Path | None = None,
    use_cache: bool = True,
) -> RetrievalSpace:
    """The paper's retrieval: concept text vs. clip *audio* in a joint space (e.g. CLAP).

    Example::

        space = joint_space(
            get_encoder("clap-text", checkpoint=ckpt), get_encoder("clap-audio", checkpoint=ckpt)
        )
        manifest = sonify_tiles(tiles, clips, space=space)

    Raises:
        InputError: The encoders are not a text and an audio encoder of equal dimension.
    """
    from geosound.audio import load_audio
    from geosound.data.feature_cache import FeatureCache

    if text_encoder.modality != "text" or audio_encoder.modality != "audio":
        raise InputError(
            f"joint_space needs a text and an audio encoder; got {text_encoder.modality} "
            f"({text_encoder.id}) and {audio_encoder.modality} ({audio_encoder.id})"
        )
    if text_encoder.dim != audio_encoder.dim:
        raise InputError(
            f"{text_encoder.id} ({text_encoder.dim}-d) and {audio_encoder.id} "
            f"({audio_encoder.dim}-d) do not share a space; use a joint pair such as CLAP"
        )
    text_cache = FeatureCache(cache_root, text_encoder) if use_cache else None
    audio_cache = FeatureCache(cache_root, audio_encoder) if use_cache else None

    def embed_concepts(phrases: Sequence[str]) -> np.ndarray:
        return _pooled(text_encoder, phrases, text_cache)

    def embed_clips(clips: pd.DataFrame) -> np.ndarray:
        paths = [Path(p) for p in clips["path"].astype(str)]
        return _pooled(
            audio_encoder,
            paths,
            audio_cache,
            prepare=lambda path: load_audio(path, sample_rate=None),
        )

    return RetrievalSpace(
        f"joint:{text_encoder.id}+{audio_encoder.id}", embed_concepts, embed_clips
    )


# --------------------------------------------------------------------------- the retrieval rule


def signed_sqrt(scores: np.ndarray | Sequence[float]) -> np.ndarray:
    """``sign(t)·sqrt(|t|)``: keeps the order, shrinks the gap between the best few scores.

    With it, a handful of clips that match a common concept unusually well no longer win
    almost every draw, so more of the pool gets used (Seeing Sound's SSR).
    """
    array = np.asarray(scores, dtype=np.float64)
    return np.sign(array) * np.sqrt(np.abs(array))


def retrieval_candidates(
    cosines: np.ndarray, k: int = DEFAULT_K, exclude: Sequence[int] = ()
) -> np.ndarray:
    """Indices of the clips eligible for one concept (Algorithm 1, lines 5–7).

    ``t = signed_sqrt(cosines)``; ``lb = mean(top-k(t))``; candidates are ``t > lb``. When no
    score is strictly above ``lb`` (the top-k are tied), the clips tied at the best score
    are the candidates. Indices in ``exclude`` are dropped unless nothing else is left.

    Args:
        cosines: ``(N,)`` cosine similarities of one concept with every clip in the pool.
        k: How many best scores set the threshold (capped at N).
        exclude: Clips to avoid (already picked for this tile).

    Returns:
        Sorted indices into ``cosines``; never empty for a non-empty pool.

    Raises:
        InputError: An empty or not 1-D score vector, or ``k`` below 1.
    """
    t = signed_sqrt(cosines)
    if t.ndim != 1 or t.size == 0:
        raise InputError(f"need a non-empty 1-D score vector; got shape {t.shape}")
    if int(k) != k or k < 1:
        raise InputError(f"k must be a whole number >= 1; got {k!r}")
    kk = min(int(k), t.size)
    lb = float(np.mean(np.partition(t, t.size - kk)[t.size - kk :]))
    tolerance = _TIE_TOLERANCE * max(1.0, abs(lb))
    candidates = np.flatnonzero(t > lb + tolerance)
    if candidates.size == 0:
        candidates = np.flatnonzero(t >= t.max() - tolerance)
    if len(exclude):
        kept = np.setdiff1d(candidates, np.asarray(exclude, dtype=int))
        if kept.size:
            candidates = kept
    return candidates


def _normalise(vectors: np.ndarray) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.where(norms > 0, norms, 1.0)


# --------------------------------------------------------------------------- sonification


@dataclass(frozen=True)
class _Mixing:
    """The per-pair settings of one :func:`sonify_tiles` call."""

    k: int
    max_concepts: int
    lufs_low: float
    lufs_high: float
    seconds: float
    sample_rate: int
    mix_bank: int | None = None


@dataclass(frozen=True)
class _Pool:
    """The sound pool as the per-tile draws need it, one list entry per clip.

    Attributes:
        paths, labels, captions, licences: Per-clip values written into the recipes.
        scores: ``(phrases, clips)`` cosines of every concept phrase with every clip.
        phrase_index: Phrase → its row in ``scores``.
        members: Split name → the indices of the clips in that split.
        durations: Clip path → length in seconds, filled as clips are first used.
    """

    paths: list[str]
    labels: list[str]
    captions: list[str]
    licences: list[str]
    scores: np.ndarray
    phrase_index: dict[str, int]
    members: dict[str, np.ndarray]
    durations: dict[str, float]


@dataclass(frozen=True)
class _Tile:
    """What every pair of one tile shares."""

    id: str
    label: str
    image: str
    split: str
    licence: str
    geometry: BaseGeometry
    lon: float
    lat: float
    options: tuple[Concept, ...]
    own_concepts: bool = False
    located: bool | None = None


def sonify_tiles(
    tiles_gdf: gpd.GeoDataFrame,
    clips_df: pd.DataFrame,
    variants: int = 1,
    seed: int = 0,
    k: int = DEFAULT_K,
    *,
    eval_fraction: float = 0.3,
    splits: tuple[pd.Series, pd.Series] | None = None,
    space: RetrievalSpace | None = None,
    concepts: Mapping[str, Sequence[Concept]] | None = None,
    max_concepts: int = MAX_CONCEPTS,
    lufs_range: tuple[float, float] = DEFAULT_LUFS_RANGE,
    seconds: float = 5.0,
    sample_rate: int = 16000,
    source: str = "seeing-sound",
    image_licence: str | None = None,
    mix_bank: int | None = None,
    progress: Progress | None = None,
) -> gpd.GeoDataFrame:
    """Pair every tile with 1–3 retrieved real clips, as mix recipes (METHODS §3).

    Args:
        tiles_gdf: Tiles with ``id`` (unique), ``label`` (a key of ``concepts``),
            ``path`` or ``image`` (the image reference), ``geometry`` (footprint, any CRS)
            and optionally ``lon``/``lat``, ``licence`` and ``concepts`` (own phrases, a
            list or a ``;``-separated string).
        clips_df: The sound pool: ``path``, ``label`` (ESC-50 class), optionally
            ``licence``, ``caption`` and ``freesound_id`` (for the split).
        variants: Pairs per tile; variant ``n`` has id ``"<tile id>-v<n>"`` and its own draw.
        seed: Seeds every random choice (splits, concepts, picks, loudness, offsets).
        k: The top-k of the dynamic threshold.
        eval_fraction: Share of tiles and of clips held out for eval (ignored with
            ``splits``); 0 puts everything in train.
        splits: ``(tile_split, clip_split)`` from
            :func:`~geosound.data.splits.split_by_tile_and_clip` (or your own, aligned with
            the tables' indexes) instead of computing them.
        space: How concepts and clips are compared (default :func:`caption_space`).
        concepts: Land cover → concepts (default
            :data:`~geosound.data.concepts.CONCEPT_PHRASES`).
        max_concepts: At most this many concepts (and clips) per tile; at least one.
        lufs_range: ``(low, high)`` LUFS for the per-source loudness targets.
        seconds: Length of every mix.
        sample_rate: Rate of the rendered mix.
        source: The manifest's ``source`` value.
        image_licence: Licence of the tiles when they have no ``licence`` column.
        mix_bank: With a number ``M``, train tiles that draw from their class's concept table
            share a bank of ``M`` mixes per class: a tile's variant ``n`` is mix
            ``(hash(tile id) + n) mod M`` of the bank, drawn exactly as a tile's own mix would
            be. Tiles of one class are exchangeable for the draw, so this changes no
            statistic of the pairs, while the distinct recordings to encode drop from
            tiles × variants to at most classes × M (encoding the audio is the slow
            stage). Eval tiles always draw their own mix, so a gallery holds each held-out
            place's own recording. None (the default): every pair draws its own mix.
        progress: ``callback(fraction, message)``.

    Returns:
        A manifest GeoDataFrame (EPSG:4326), one row per tile per variant, with an extra
        ``tile_id`` column; ``audio`` holds the JSON recipe
        (:class:`~geosound.data.recipe.MixRecipe`).

    Raises:
        DataError: Missing columns, duplicated tile ids, a tile class without concepts, or
            a split whose tiles have no clips to draw from.
        InputError: Bad numeric arguments.
    """
    low, high = _check_numbers(variants, max_concepts, seconds, lufs_range)
    if mix_bank is not None and (int(mix_bank) != mix_bank or mix_bank < 1):
        raise InputError(f"mix_bank must be a whole number >= 1 or None; got {mix_bank!r}")
    _check_tables(tiles_gdf, clips_df)
    if int(seed) != seed or seed < 0:
        raise InputError(f"seed must be a whole number >= 0; got {seed!r}")
    report = progress or (lambda fraction, message: None)
    mixing = _Mixing(
        k,
        int(max_concepts),
        low,
        high,
        seconds,
        sample_rate,
        None if mix_bank is None else int(mix_bank),
    )

    tiles = tiles_gdf.reset_index(drop=True)
    clips = clips_df.reset_index(drop=True)
    tile_split, clip_split = _splits(tiles, clips, splits, eval_fraction, seed)
    table = CONCEPT_PHRASES if concepts is None else concepts
    options = [tile_concepts(row, table) for _, row in tiles.iterrows()]
    _check_pools(tile_split, clip_split)

    report(0.0, "embedding concepts and clips")
    space = space if space is not None else caption_space()
    pool = _pool(space, options, clips, tile_split, clip_split)
    report(0.2, f"embedded {len(pool.phrase_index)} concepts and {len(clips)} clips")

    rows: list[dict[str, object]] = []
    total = len(tiles) * int(variants)
    for tile in _tiles(tiles, tile_split, options, image_licence):
        for variant in range(int(variants)):
            rows.append(_pair(tile, variant, int(seed), pool, mixing, source))
            done = len(rows)
            if done == total or done % 25 == 0:
                report(0.2 + 0.8 * done / total, f"sonified {done}/{total} pairs")

    manifest = gpd.GeoDataFrame(
        pd.DataFrame(rows), geometry="geometry", crs=MANIFEST_CRS
    ).reset_index(drop=True)
    validate_manifest(manifest)
    return manifest


def _check_numbers(
    variants: int, max_concepts: int, seconds: float, lufs_range: tuple[float, float]
) -> tuple[float, float]:
    """Check the numeric settings; return the LUFS range as floats."""
    for name, value in (("variants", variants), ("max_concepts", max_concepts)):
        if int(value) != value or value < 1:
            raise InputError(f"{name} must be a whole number >= 1; got {value!r}")
    if not seconds > 0:
        raise InputError(f"seconds must be > 0; got {seconds!r}")
    low, high = (float(v) for v in lufs_range)
    if low > high:
        raise InputError(f"lufs_range low ({low}) must not exceed high ({high})")
    return low, high


def _check_tables(tiles: gpd.GeoDataFrame, clips: pd.DataFrame) -> None:
    """The tile and clip tables have what sonification reads, and something to pair."""
    for frame, needed, name in (
        (tiles, ("id", "label", "geometry"), "tiles"),
        (clips, ("path", "label"), "clips"),
    ):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise DataError(f"the {name} table lacks column(s): {', '.join(missing)}")
    if "image" not in tiles.columns and "path" not in tiles.columns:
        raise DataError("the tiles table needs an 'image' or 'path' column")
    if tiles.crs is None:
        raise DataError("the tiles table's geometry has no CRS")
    duplicated = tiles["id"].astype(str).duplicated()
    if duplicated.any():
        raise DataError(f"tile ids are not unique: {tiles['id'][duplicated].iloc[0]}")
    if len(clips) == 0:
        raise DataError("the clip pool is empty")
    if len(tiles) == 0:
        raise DataError("there are no tiles to sonify")


def _splits(
    tiles: pd.DataFrame,
    clips: pd.DataFrame,
    splits: tuple[pd.Series, pd.Series] | None,
    eval_fraction: float,
    seed: int,
) -> tuple[pd.Series, pd.Series]:
    """The given splits, realigned to the reset indexes, or a fresh disjoint split."""
    if splits is None:
        return split_by_tile_and_clip(tiles, clips, eval_fraction, seed)
    tile_split = pd.Series(np.asarray(splits[0]), index=tiles.index)
    clip_split = pd.Series(np.asarray(splits[1]), index=clips.index)
    if len(tile_split) != len(tiles) or len(clip_split) != len(clips):
        raise InputError("splits must have one value per tile and one per clip")
    return tile_split, clip_split


def _check_pools(tile_split: pd.Series, clip_split: pd.Series) -> None:
    """Every split that has tiles has clips for them (tiles never borrow another split's)."""
    for name in sorted(set(tile_split)):
        if not (clip_split == name).any():
            raise DataError(
                f"{int((tile_split == name).sum())} tile(s) are in split {name!r} but no clip "
                "is; use more clips or a different eval_fraction"
            )


def _pool(
    space: RetrievalSpace,
    options: Sequence[Sequence[Concept]],
    clips: pd.DataFrame,
    tile_split: pd.Series,
    clip_split: pd.Series,
) -> _Pool:
    """Embed every distinct concept phrase and every clip once, and gather the clip fields."""
    phrases = list(dict.fromkeys(c.phrase for group in options for c in group))
    queries = _normalise(space.embed_concepts(phrases))
    pool_vectors = _normalise(space.embed_clips(clips))
    if queries.shape[1] != pool_vectors.shape[1]:
        raise InputError(
            f"retrieval space {space.name} gives {queries.shape[1]}-d concepts but "
            f"{pool_vectors.shape[1]}-d clips; they must share one space"
        )
    licences = (
        clips["licence"].fillna("unknown").astype(str).tolist()
        if "licence" in clips.columns
        else ["unknown"] * len(clips)
    )
    return _Pool(
        paths=[str(p) for p in clips["path"]],
        labels=[str(label) for label in clips["label"]],
        captions=clip_captions(clips),
        licences=licences,
        scores=queries @ pool_vectors.T,
        phrase_index={phrase: i for i, phrase in enumerate(phrases)},
        members={n: np.flatnonzero(clip_split.to_numpy() == n) for n in set(tile_split)},
        durations={},
    )


def _tiles(
    tiles: gpd.GeoDataFrame,
    tile_split: pd.Series,
    options: Sequence[tuple[Concept, ...]],
    image_licence: str | None,
) -> list[_Tile]:
    """Each tile's shared pair fields: place in lon/lat, image, split, licence, concepts.

    The place is the tiles' ``lon``/``lat`` columns where given, else the footprint's
    centroid computed in a projected CRS (the tiles' own, else Web Mercator) and then turned
    into lon/lat: a centroid computed on degrees is skewed.
    """
    wgs84 = tiles.to_crs(MANIFEST_CRS)
    if "lon" in tiles.columns and "lat" in tiles.columns:
        places = None
    else:
        projected = tiles if not tiles.crs.is_geographic else tiles.to_crs("EPSG:3857")
        places = projected.geometry.centroid.to_crs(MANIFEST_CRS)
    image_column = "image" if "image" in tiles.columns else "path"
    out = []
    for position, tile in tiles.iterrows():
        if places is None:
            lon, lat = float(tile["lon"]), float(tile["lat"])
        else:
            lon, lat = float(places.iloc[position].x), float(places.iloc[position].y)
        out.append(
            _Tile(
                id=str(tile["id"]),
                label=str(tile["label"]),
                image=str(tile[image_column]),
                split=str(tile_split.iloc[position]),
                licence=_tile_licence(tile, image_licence),
                geometry=wgs84.geometry.iloc[position],
                lon=lon,
                lat=lat,
                options=options[position],
                own_concepts=_has_own_concepts(tile),
                located=bool(tile["located"]) if "located" in tile.index else None,
            )
        )
    return out


def _has_own_concepts(tile: pd.Series) -> bool:
    """Whether a tile brings its own ``concepts`` (then it never shares a class's mix bank)."""
    own = tile.get("concepts") if "concepts" in tile.index else None
    if isinstance(own, str):
        return bool(own.strip())
    return isinstance(own, list | tuple | np.ndarray) and len(own) > 0


def _tile_licence(tile: pd.Series, default: str | None) -> str:
    value = tile.get("licence") if "licence" in tile.index else None
    if isinstance(value, str) and value.strip():
        return value
    return default or "unknown"


def _pair(
    tile: _Tile, variant: int, seed: int, pool: _Pool, mixing: _Mixing, source: str
) -> dict[str, object]:
    """One manifest row: draw the tile's concepts, pick a clip for each, mix them.

    The draws share one generator seeded by (seed, tile id, variant) and happen in a fixed
    order — number and choice of concepts, a clip per concept, loudness targets, offsets —
    so a pair is reproducible from those three values alone. With a mix bank the generator
    is seeded by (seed, split and class, bank slot) instead, so tiles of a class share mixes.
    """
    if mixing.mix_bank is not None and tile.split == "train" and not tile.own_concepts:
        slot = (_stable_int(tile.id) + variant) % mixing.mix_bank
        rng = np.random.default_rng([seed, _stable_int(f"bank:{tile.split}:{tile.label}"), slot])
    else:
        rng = np.random.default_rng([seed, _stable_int(tile.id), variant])
    drawn = _draw_concepts(rng, tile.options, mixing.max_concepts)
    picked = _pick_clips(rng, drawn, pool.members[tile.split], pool, mixing.k)
    recipe = _mix_recipe(rng, drawn, picked, pool, mixing)
    audio_licences = "; ".join(dict.fromkeys(str(s["licence"]) for s in recipe.sources))
    located = {} if tile.located is None else {"located": tile.located}
    return {
        "id": f"{tile.id}-v{variant}",
        "geometry": tile.geometry,
        "lon": tile.lon,
        "lat": tile.lat,
        "image": tile.image,
        "audio": recipe.to_json(),
        "image_caption": "; ".join(concept.phrase for concept in drawn),
        "audio_caption": "; ".join(str(s["caption"]) for s in recipe.sources),
        "label": tile.label,
        "split": tile.split,
        "source": source,
        "licence": f"image: {tile.licence}; audio: {audio_licences}",
        "tile_id": tile.id,
        **located,
    }


def _stable_int(text: str) -> int:
    """A process-independent integer for a string (Python's ``hash`` is salted per run)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def _draw_concepts(
    rng: np.random.Generator, options: Sequence[Concept], max_concepts: int
) -> list[Concept]:
    """1 to ``max_concepts`` distinct concepts, drawn by weight (the number drawn first)."""
    weights = np.asarray([c.weight for c in options], dtype=np.float64)
    n = int(rng.integers(1, min(max_concepts, len(options)) + 1))
    drawn = rng.choice(len(options), size=n, replace=False, p=weights / weights.sum())
    return [options[int(choice)] for choice in drawn]


def _pick_clips(
    rng: np.random.Generator,
    drawn: Sequence[Concept],
    members: np.ndarray,
    pool: _Pool,
    k: int,
) -> list[int]:
    """One clip index per concept: a random candidate of its split's pool, none picked twice."""
    picked: list[int] = []
    for concept in drawn:
        row_scores = pool.scores[pool.phrase_index[concept.phrase], members]
        exclude = [int(np.flatnonzero(members == p)[0]) for p in picked]
        candidates = retrieval_candidates(row_scores, k, exclude=exclude)
        picked.append(int(members[candidates[int(rng.integers(len(candidates)))]]))
    return picked


def _mix_recipe(
    rng: np.random.Generator,
    drawn: Sequence[Concept],
    picked: Sequence[int],
    pool: _Pool,
    mixing: _Mixing,
) -> MixRecipe:
    """The recipe of the picked clips: a loudness target each, then a start offset each."""
    from geosound.audio import random_lufs_targets

    targets = random_lufs_targets(len(drawn), mixing.lufs_low, mixing.lufs_high, rng=rng)
    sources: list[MixSource] = []
    for concept, clip, target in zip(drawn, picked, targets, strict=True):
        path = pool.paths[clip]
        spare = _duration(path, pool.durations) - mixing.seconds
        offset = float(rng.uniform(0.0, spare)) if spare > 1e-3 else 0.0
        sources.append(
            {
                "path": path,
                "class": pool.labels[clip],
                "caption": pool.captions[clip],
                "concept": concept.phrase,
                "licence": pool.licences[clip],
                "target_lufs": round(float(target), 2),
                "offset": round(offset, 3),
            }
        )
    return MixRecipe(int(mixing.sample_rate), float(mixing.seconds), tuple(sources))


def _duration(path: str, cache: dict[str, float]) -> float:
    """A clip's length in seconds, read from its header once per path."""
    if path not in cache:
        try:
            cache[path] = float(sf.info(path).duration)
        except (RuntimeError, OSError, ValueError) as error:
            raise AudioError(f"cannot read the clip's length ({error})", path) from error
    return cache[path]


# --------------------------------------------------------------------------- dev sets, renders


def sonify_dev_sets(
    data_dir: Path | None = None,
    variants: int = 1,
    seed: int = 0,
    eval_fraction: float = 0.3,
    classes: Sequence[str] | None = None,
    k: int = DEFAULT_K,
    progress: Progress | None = None,
    *,
    imagery: Sequence[str] = ("eurosat_ms",),
    sounds: Sequence[str] = ("esc50",),
    mix_bank: int | None = None,
) -> tuple[gpd.GeoDataFrame, pd.Series]:
    """Sonify the dev imagery with the dev sounds, every source split disjointly.

    The one recipe behind ``geosound sonify`` and ``geosound train``, so both make the same
    pairs from the same settings. Sources and their splits come from
    :func:`~geosound.data.splits.dev_split_tables`.

    Args:
        data_dir: The dev data folder (default: the dev data).
        variants: Pairs per tile.
        seed: Seeds the split and every draw.
        eval_fraction: Share of tiles and of clips held out for eval.
        classes: Only tiles of these EuroSAT classes.
        k: Top-k of the dynamic threshold.
        progress: ``callback(fraction, message)``.
        imagery: Which dev imagery (``eurosat_ms``: the Sentinel-2 tiles in true colour,
            ``eurosat_rgb``: the RGB JPGs).
        sounds: Which dev sounds (``esc50``, ``ambient``: the tagged ambience recordings).
        mix_bank: Mixes per (split, class) shared by that class's tiles (see
            :func:`sonify_tiles`); None gives every pair its own mix.

    Returns:
        The manifest and the clip split (for summaries).
    """
    from geosound.data.devsets import EUROSAT_LICENCE
    from geosound.data.splits import dev_split_tables

    tiles, clips = dev_split_tables(data_dir, imagery, sounds, eval_fraction, seed, classes)
    located = tiles["located"].to_numpy(bool)
    check_inputs_whole(tiles["path"][located], clips["path"], progress)
    check_inputs_whole(tiles["path"][~located], [], require_crs=False)
    manifest = sonify_tiles(
        tiles,
        clips,
        variants=variants,
        seed=seed,
        k=k,
        splits=(tiles["split"], clips["split"]),
        source="seeing-sound:" + "+".join([*imagery, *sounds]),
        image_licence=EUROSAT_LICENCE,
        mix_bank=mix_bank,
        progress=progress,
    )
    return manifest, clips["split"]


def check_inputs_whole(
    tile_paths: Sequence[str] | pd.Series,
    clip_paths: Sequence[str] | pd.Series,
    progress: Progress | None = None,
    require_crs: bool = True,
) -> None:
    """Decode every tile and clip once, so a truncated file is named before it is paired.

    The dev index lists files by name only; a half-copied tile or clip would otherwise be
    paired now and fail (or train on garbage) much later. ``require_crs=False`` checks
    photographs and JPG tiles, which have no georeference.

    Raises:
        RasterError: A tile cannot be opened or its pixels decoded (the message names it).
        AudioError: A clip is truncated or corrupt (the message names it).
    """
    from geosound.audio import check_audio
    from geosound.geo import check_readable

    if progress is not None:
        progress(0.0, f"checking {len(tile_paths)} tiles and {len(clip_paths)} clips")
    for path in tile_paths:
        check_readable(str(path), require_crs=require_crs)
    for path in clip_paths:
        check_audio(str(path))


def render_manifest(
    manifest: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    progress: Progress | None = None,
) -> list[Path]:
    """Render every recipe row of a manifest to ``out_dir/<id>.wav`` (16-bit, atomic).

    Rows whose ``audio`` is a file path already are skipped. Listening to a few renders is
    the quickest check that the pairing makes sense.

    Returns:
        The written files, in manifest order.
    """
    from geosound.audio import write_audio

    out = Path(out_dir)
    rows = [(str(i), str(a)) for i, a in zip(manifest["id"], manifest["audio"], strict=True)]
    rows = [(i, a) for i, a in rows if is_recipe(a)]
    written = []
    for done, (row_id, audio) in enumerate(rows, start=1):
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in row_id)
        written.append(write_audio(out / f"{safe}.wav", MixRecipe.from_json(audio).render()))
        if progress is not None:
            progress(done / len(rows), f"rendered {done}/{len(rows)} mixes")
    return written
