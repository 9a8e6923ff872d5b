"""Seeing Sound: pair satellite tiles with real recordings through text (METHODS §3).

No real dataset pairs EuroSAT tiles with ESC-50 clips; Seeing Sound pairs images and sounds
from unrelated datasets through *sounding concepts*, short phrases of what is audible and
visible in an image. The steps, as METHODS §3 specifies them:

1. **Sounding concepts per tile.** The reference asks a VLM for "one to up to three sound(s)
   associated with prominent objects visible ... in the image". Offline we use a concept
   table per land-cover class, :data:`CONCEPT_PHRASES`, built from the dev data's
   land cover → ESC-50 co-occurrence table (:data:`~geosound.data.LANDCOVER_SOUNDS`): every
   listed sound becomes one phrase written as a VLM would say it ("birds chirping in trees"),
   remembered with the ESC-50 class it came from. A tile draws 1–3 phrases (the number and
   the phrases drawn per tile from a seeded generator), "likely" sounds with weight
   :data:`LIKELY_WEIGHT` against :data:`POSSIBLE_WEIGHT` for "possible" ones. A tile table
   that carries its own ``concepts`` column (captions in the data) uses those instead.
2. **Retrieval per concept** (Algorithm 1 of the paper): ``q = E_text(s)``,
   ``t = cos(q, E_audio(pool))``, ``t = sign(t)·sqrt(|t|)`` (signed square root: damps the
   few outlying best matches so that one clip is not picked for every image),
   ``lb = mean(top-k(t))``, candidates ``{i : t_i > lb}``, pick one at random.
3. **Mix.** Each picked clip is loudness-normalised to a target drawn uniformly from a small
   LUFS range, the clips are summed in the time domain and the sum is scaled down as a whole
   if it would clip (:func:`geosound.audio.mix`).

The offline substitute for a joint text–audio encoder
    The reference compares CLAP's text embedding of the concept with CLAP's *audio*
    embedding of every clip. Our offline encoders do not share a space: MiniLM (text, 384-d)
    and aiSFX (audio, 512-d) were trained separately, so a cosine between them means
    nothing. By default (:func:`caption_space`) the audio side is therefore the MiniLM
    *text* embedding of each clip's caption — its class phrase ("rain falling", from
    :data:`CLIP_CAPTIONS`, or a ``caption`` column of the clip table). So
    ``t = cos(E_text(concept), E_text(caption(clip)))``. This is text-to-text retrieval over
    labels: every clip of a class scores the same, so the random pick among candidates is
    what spreads the choice over clips, and nothing in a clip's *sound* beyond its label
    influences the pairing. The comparison is pluggable (:class:`RetrievalSpace`): with a
    local CLAP checkpoint, :func:`joint_space` (``clap-text`` + ``clap-audio``) restores
    the paper's text-to-audio retrieval unchanged.

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
    * Splits (:func:`split_by_tile_and_clip`): tiles and clips are each split train/eval,
      stratified by class, and train tiles only ever get train clips, eval tiles eval clips,
      so an evaluation never hears a clip (or sees a tile) that training used. Takes cut from
      one Freesound recording (``freesound_id``) stay on one side.

A mix is stored as a *recipe* (JSON in the manifest's ``audio`` column: the sources with
path, class, licence, loudness target and offset, the sample rate and the length), not as a
rendered file: manifests stay small, the licence of every source travels with the pair, and
:func:`render_recipe` rebuilds the exact same samples whenever they are needed.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import soundfile as sf

from geosound.data.devsets import LANDCOVER_SOUNDS
from geosound.data.pairs import (
    MANIFEST_CRS,
    is_recipe,
    parse_recipe,
    recipe_to_json,
    validate_manifest,
)
from geosound.errors import AudioError, DataError, InputError

if TYPE_CHECKING:
    from geosound.audio import Clip

# geosound.audio (pyloudnorm → scipy.signal) is imported inside the functions that mix or
# load, so that ``import geosound.data`` stays quick for callers that only read tables.

__all__ = [
    "CLIP_CAPTIONS",
    "CONCEPT_PHRASES",
    "DEFAULT_K",
    "DEFAULT_LUFS_RANGE",
    "LIKELY_WEIGHT",
    "POSSIBLE_WEIGHT",
    "SOUND_CONCEPTS",
    "Concept",
    "RetrievalSpace",
    "caption_space",
    "clip_captions",
    "joint_space",
    "render_manifest",
    "render_recipe",
    "retrieval_candidates",
    "signed_sqrt",
    "sonify_tiles",
    "split_by_tile_and_clip",
]

DEFAULT_K = 10
DEFAULT_LUFS_RANGE: tuple[float, float] = (-26.0, -20.0)
LIKELY_WEIGHT = 3.0
POSSIBLE_WEIGHT = 1.0
RECIPE_KIND = "mix"
RECIPE_VERSION = 1

#: Relative tolerance for "strictly above the threshold": the mean of k equal float32-derived
#: scores can differ from them in the last bit, which must not decide membership.
_TIE_TOLERANCE = 1e-9

SOUND_CONCEPTS: dict[str, str] = {
    "airplane": "an airplane passing overhead",
    "car_horn": "cars honking in traffic",
    "cat": "a cat meowing in the garden",
    "chainsaw": "a chainsaw felling trees",
    "chirping_birds": "birds chirping in trees",
    "church_bells": "church bells ringing in town",
    "cow": "cows mooing in the pasture",
    "crackling_fire": "a campfire crackling",
    "crickets": "crickets chirping in the grass",
    "crow": "crows cawing over the fields",
    "dog": "a dog barking in a yard",
    "engine": "car engines running on the road",
    "footsteps": "footsteps on the pavement",
    "frog": "frogs croaking in a pond",
    "hand_saw": "a saw cutting wood in a workshop",
    "helicopter": "a helicopter flying overhead",
    "hen": "hens clucking in a farmyard",
    "insects": "insects buzzing over plants",
    "laughing": "people laughing and talking",
    "pig": "pigs grunting on a farm",
    "pouring_water": "water flowing in a stream",
    "rain": "rain falling on the ground",
    "rooster": "a rooster crowing on a farm",
    "sea_waves": "waves breaking on the shore",
    "sheep": "sheep bleating in a meadow",
    "siren": "an emergency siren wailing",
    "thunderstorm": "thunder rumbling in a storm",
    "train": "a train rolling along the tracks",
    "water_drops": "water dripping from leaves",
    "wind": "wind blowing across open land",
}
"""The sounding-concept phrase for each ESC-50 class a land cover may evoke, worded as a VLM
describing the image would (an audible source *in a scene*), and deliberately not identical
to the clip captions, so that retrieval compares two descriptions rather than two labels."""

CLIP_CAPTIONS: dict[str, str] = {
    "airplane": "an airplane flying",
    "breathing": "someone breathing",
    "brushing_teeth": "someone brushing teeth",
    "can_opening": "a can being opened",
    "car_horn": "a car horn honking",
    "cat": "a cat meowing",
    "chainsaw": "a chainsaw running",
    "chirping_birds": "birds chirping",
    "church_bells": "church bells ringing",
    "clapping": "people clapping",
    "clock_alarm": "an alarm clock ringing",
    "clock_tick": "a clock ticking",
    "coughing": "someone coughing",
    "cow": "a cow mooing",
    "crackling_fire": "a fire crackling",
    "crickets": "crickets chirping",
    "crow": "a crow cawing",
    "crying_baby": "a baby crying",
    "dog": "a dog barking",
    "door_wood_creaks": "a wooden door creaking",
    "door_wood_knock": "knocking on a wooden door",
    "drinking_sipping": "someone sipping a drink",
    "engine": "an engine running",
    "fireworks": "fireworks exploding",
    "footsteps": "footsteps walking",
    "frog": "frogs croaking",
    "glass_breaking": "glass breaking",
    "hand_saw": "a hand saw sawing",
    "helicopter": "a helicopter flying",
    "hen": "hens clucking",
    "insects": "insects buzzing",
    "keyboard_typing": "typing on a keyboard",
    "laughing": "people laughing",
    "mouse_click": "a computer mouse clicking",
    "pig": "a pig oinking",
    "pouring_water": "water pouring",
    "rain": "rain falling",
    "rooster": "a rooster crowing",
    "sea_waves": "sea waves crashing",
    "sheep": "sheep bleating",
    "siren": "a siren wailing",
    "sneezing": "someone sneezing",
    "snoring": "someone snoring",
    "thunderstorm": "thunder and a storm",
    "toilet_flush": "a toilet flushing",
    "train": "a train passing",
    "vacuum_cleaner": "a vacuum cleaner running",
    "washing_machine": "a washing machine running",
    "water_drops": "water dripping",
    "wind": "wind blowing",
}
"""A short caption for a clip of each of the 50 ESC-50 classes: what the recording contains.
It is the clip's ``audio_caption`` and, in :func:`caption_space`, the text that stands in
for the clip's sound."""


@dataclass(frozen=True)
class Concept:
    """One sounding concept of a land-cover class.

    Attributes:
        phrase: What is audible and visible ("birds chirping in trees").
        sound: The ESC-50 class the phrase was written for ("chirping_birds"); "" for
            concepts that came from captions in the data.
        weight: Relative chance of being drawn for a tile of the class.
    """

    phrase: str
    sound: str
    weight: float


def _concept_table() -> dict[str, tuple[Concept, ...]]:
    table: dict[str, tuple[Concept, ...]] = {}
    for landcover, sounds in LANDCOVER_SOUNDS.items():
        concepts = [
            Concept(SOUND_CONCEPTS[sound], sound, weight)
            for kind, weight in (("likely", LIKELY_WEIGHT), ("possible", POSSIBLE_WEIGHT))
            for sound in sounds.get(kind, ())
        ]
        table[landcover] = tuple(concepts)
    return table


CONCEPT_PHRASES: dict[str, tuple[Concept, ...]] = _concept_table()
"""Land-cover class → its sounding concepts (phrase, source ESC-50 class, weight), "likely"
sounds first. Seeded from :data:`~geosound.data.LANDCOVER_SOUNDS`, a hand-written starting
point rather than ground truth."""


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


def clip_captions(clips: pd.DataFrame) -> list[str]:
    """Each clip's caption: its ``caption`` column where given, else its class phrase.

    Unknown classes fall back to the class name with spaces ("hand_saw" → "hand saw"), so a
    new sound pool works without editing :data:`CLIP_CAPTIONS`.
    """
    given = clips["caption"] if "caption" in clips.columns else pd.Series(None, index=clips.index)
    captions = []
    for label, caption in zip(clips["label"].astype(str), given, strict=True):
        if isinstance(caption, str) and caption.strip():
            captions.append(caption.strip())
        else:
            captions.append(CLIP_CAPTIONS.get(label, label.replace("_", " ")))
    return captions


def _pooled(encoder: Any, items: Sequence[Any], cache: Any, **kwargs: Any) -> np.ndarray:
    """Pooled vectors of ``items``, through the feature cache when there is one."""
    if cache is not None:
        return cache.encode_pooled(list(items), **kwargs)
    prepare = kwargs.get("prepare")
    inputs = [prepare(item) for item in items] if prepare else list(items)
    return encoder.encode(inputs).pooled.detach().cpu().numpy()


def caption_space(
    encoder: Any = None, cache_root: Path | None = None, use_cache: bool = True
) -> RetrievalSpace:
    """The offline default: concepts and clip *captions* both through one text encoder.

    This stands in for a joint text–audio encoder (see the module docstring): it ranks
    clips by what their caption says, not by how they sound.

    Args:
        encoder: A text encoder (default ``get_encoder("minilm-l6")``).
        cache_root: Feature cache folder (default: the geosound cache).
        use_cache: Cache embeddings on disk, so reruns do not even load the encoder.
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
    text_encoder: Any,
    audio_encoder: Any,
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


def signed_sqrt(scores: np.ndarray) -> np.ndarray:
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


# --------------------------------------------------------------------------- splits


def _stratified_split(
    labels: Sequence[str], groups: Sequence[Any], fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """True for eval rows: per label, whole groups go to eval until ~``fraction`` of the rows.

    Every label with at least two groups gets at least one group on each side, so both
    splits see every class where the data allows it; a label with one group stays in train.
    """
    labels_arr = np.asarray([str(label) for label in labels])
    groups_arr = np.asarray([str(group) for group in groups])
    is_eval = np.zeros(len(labels_arr), dtype=bool)
    if fraction <= 0:
        return is_eval
    for label in sorted(set(labels_arr)):
        rows = np.flatnonzero(labels_arr == label)
        unique = list(dict.fromkeys(groups_arr[rows]))
        if len(unique) < 2:
            continue
        order = rng.permutation(len(unique))
        target = min(max(round(fraction * len(rows)), 1), len(rows) - 1)
        taken, groups_taken = 0, 0
        for position in order:
            if groups_taken == len(unique) - 1:  # train keeps at least one group
                break
            members = rows[groups_arr[rows] == unique[position]]
            # Take a group when it brings the eval count closer to the target (always the
            # first), so groups of different sizes still land near the wanted fraction.
            if taken == 0 or abs(taken + len(members) - target) < abs(taken - target):
                is_eval[members] = True
                taken += len(members)
                groups_taken += 1
    return is_eval


def split_by_tile_and_clip(
    tiles: pd.DataFrame, clips: pd.DataFrame, eval_fraction: float = 0.3, seed: int = 0
) -> tuple[pd.Series, pd.Series]:
    """Assign tiles and clips to ``"train"`` / ``"eval"``, each stratified by class.

    Tiles and clips are split independently, and :func:`sonify_tiles` pairs train tiles only
    with train clips and eval tiles only with eval clips, so no tile and no clip is on both
    sides and an eval pair is new in both modalities. Clips that share a ``freesound_id``
    (takes cut from one recording) go to the same side; otherwise a near-copy of an eval
    clip would be trained on.

    Args:
        tiles: Needs ``label``.
        clips: Needs ``label``; ``freesound_id`` is used for grouping when present.
        eval_fraction: Share of each class for eval, in ``[0, 1)``.
        seed: Seeds the shuffles.

    Returns:
        ``(tile_split, clip_split)``: string Series aligned with ``tiles.index`` and
        ``clips.index``.
    """
    if not 0.0 <= float(eval_fraction) < 1.0:
        raise InputError(f"eval_fraction must be in [0, 1); got {eval_fraction!r}")
    if int(seed) != seed or seed < 0:
        raise InputError(f"seed must be a whole number >= 0; got {seed!r}")
    for name, frame in (("tiles", tiles), ("clips", clips)):
        if "label" not in frame.columns:
            raise DataError(f"the {name} table has no 'label' column")
    tile_groups = range(len(tiles))
    clip_groups = (
        clips["freesound_id"].astype(str).to_numpy()
        if "freesound_id" in clips.columns
        else range(len(clips))
    )
    tile_eval = _stratified_split(
        tiles["label"].tolist(), list(tile_groups), eval_fraction, np.random.default_rng([seed, 0])
    )
    clip_eval = _stratified_split(
        clips["label"].tolist(), list(clip_groups), eval_fraction, np.random.default_rng([seed, 1])
    )
    return (
        pd.Series(np.where(tile_eval, "eval", "train"), index=tiles.index, name="split"),
        pd.Series(np.where(clip_eval, "eval", "train"), index=clips.index, name="split"),
    )


# --------------------------------------------------------------------------- sonification


def _stable_int(text: str) -> int:
    """A process-independent integer for a string (Python's ``hash`` is salted per run)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def _tile_concepts(row: pd.Series, table: Mapping[str, Sequence[Concept]]) -> tuple[Concept, ...]:
    """The concepts a tile may draw from: its own ``concepts`` if given, else its class's."""
    own = row.get("concepts") if "concepts" in row.index else None
    if isinstance(own, str) and own.strip():
        own = [part.strip() for part in own.split(";") if part.strip()]
    if isinstance(own, list | tuple | np.ndarray) and len(own):
        return tuple(Concept(str(phrase), "", 1.0) for phrase in own)
    label = str(row["label"])
    if label not in table:
        raise DataError(
            f"tile {row['id']} has class {label!r}, which has no concept table; known: "
            f"{', '.join(sorted(table))} (or give the tiles a 'concepts' column)"
        )
    return tuple(table[label])


def _duration(path: str, cache: dict[str, float]) -> float:
    if path not in cache:
        try:
            cache[path] = float(sf.info(path).duration)
        except (RuntimeError, OSError, ValueError) as error:
            raise AudioError(f"cannot read the clip's length ({error})", path) from error
    return cache[path]


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
    max_concepts: int = 3,
    lufs_range: tuple[float, float] = DEFAULT_LUFS_RANGE,
    seconds: float = 5.0,
    sample_rate: int = 16000,
    source: str = "seeing-sound",
    image_licence: str | None = None,
    progress: Callable[[float, str], None] | None = None,
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
        splits: ``(tile_split, clip_split)`` from :func:`split_by_tile_and_clip` (or your
            own, aligned with the tables' indexes) instead of computing them.
        space: How concepts and clips are compared (default :func:`caption_space`).
        concepts: Land cover → concepts (default :data:`CONCEPT_PHRASES`).
        max_concepts: At most this many concepts (and clips) per tile; at least one.
        lufs_range: ``(low, high)`` LUFS for the per-source loudness targets.
        seconds: Length of every mix.
        sample_rate: Rate of the rendered mix.
        source: The manifest's ``source`` value.
        image_licence: Licence of the tiles when they have no ``licence`` column.
        progress: ``callback(fraction, message)``.

    Returns:
        A manifest GeoDataFrame (EPSG:4326), one row per tile per variant, with an extra
        ``tile_id`` column; ``audio`` holds the JSON recipe (see :func:`render_recipe`).

    Raises:
        DataError: Missing columns, duplicated tile ids, a tile class without concepts, or
            a split whose tiles have no clips to draw from.
        InputError: Bad numeric arguments.
    """
    if int(variants) != variants or variants < 1:
        raise InputError(f"variants must be a whole number >= 1; got {variants!r}")
    if int(max_concepts) != max_concepts or max_concepts < 1:
        raise InputError(f"max_concepts must be a whole number >= 1; got {max_concepts!r}")
    if not seconds > 0:
        raise InputError(f"seconds must be > 0; got {seconds!r}")
    low, high = (float(v) for v in lufs_range)
    if low > high:
        raise InputError(f"lufs_range low ({low}) must not exceed high ({high})")
    _check_columns(tiles_gdf, ("id", "label", "geometry"), "tiles")
    _check_columns(clips_df, ("path", "label"), "clips")
    if "image" not in tiles_gdf.columns and "path" not in tiles_gdf.columns:
        raise DataError("the tiles table needs an 'image' or 'path' column")
    if tiles_gdf.crs is None:
        raise DataError("the tiles table's geometry has no CRS")
    duplicated = tiles_gdf["id"].astype(str).duplicated()
    if duplicated.any():
        raise DataError(f"tile ids are not unique: {tiles_gdf['id'][duplicated].iloc[0]}")
    if len(clips_df) == 0:
        raise DataError("the clip pool is empty")
    if len(tiles_gdf) == 0:
        raise DataError("there are no tiles to sonify")
    if int(seed) != seed or seed < 0:
        raise InputError(f"seed must be a whole number >= 0; got {seed!r}")
    from geosound.audio import random_lufs_targets

    report = progress or (lambda fraction, message: None)
    table = CONCEPT_PHRASES if concepts is None else concepts

    tiles = tiles_gdf.reset_index(drop=True)
    clips = clips_df.reset_index(drop=True)
    if splits is None:
        tile_split, clip_split = split_by_tile_and_clip(tiles, clips, eval_fraction, seed)
    else:
        tile_split = pd.Series(np.asarray(splits[0]), index=tiles.index)
        clip_split = pd.Series(np.asarray(splits[1]), index=clips.index)
        if len(tile_split) != len(tiles) or len(clip_split) != len(clips):
            raise InputError("splits must have one value per tile and one per clip")
    tile_concepts = [_tile_concepts(row, table) for _, row in tiles.iterrows()]
    for name in sorted(set(tile_split)):
        if not (clip_split == name).any():
            raise DataError(
                f"{int((tile_split == name).sum())} tile(s) are in split {name!r} but no clip "
                "is; use more clips or a different eval_fraction"
            )

    report(0.0, "embedding concepts and clips")
    space = space if space is not None else caption_space()
    phrases = list(dict.fromkeys(c.phrase for group in tile_concepts for c in group))
    phrase_index = {phrase: i for i, phrase in enumerate(phrases)}
    queries = _normalise(space.embed_concepts(phrases))
    pool_vectors = _normalise(space.embed_clips(clips))
    if queries.shape[1] != pool_vectors.shape[1]:
        raise InputError(
            f"retrieval space {space.name} gives {queries.shape[1]}-d concepts but "
            f"{pool_vectors.shape[1]}-d clips; they must share one space"
        )
    scores = queries @ pool_vectors.T  # (phrases, clips) cosines
    report(0.2, f"embedded {len(phrases)} concepts and {len(clips)} clips")

    captions = clip_captions(clips)
    clip_licences = (
        clips["licence"].fillna("unknown").astype(str).tolist()
        if "licence" in clips.columns
        else ["unknown"] * len(clips)
    )
    pools = {name: np.flatnonzero(clip_split.to_numpy() == name) for name in set(tile_split)}
    wgs84 = tiles.to_crs(MANIFEST_CRS)
    centroids = None
    if "lon" not in tiles.columns or "lat" not in tiles.columns:
        # Centroids in a projected CRS (the tiles' own, else Web Mercator), then to lon/lat:
        # a centroid computed on degrees is skewed.
        projected = tiles if not tiles.crs.is_geographic else tiles.to_crs("EPSG:3857")
        centroids = projected.geometry.centroid.to_crs(MANIFEST_CRS)
    image_column = "image" if "image" in tiles.columns else "path"
    durations: dict[str, float] = {}
    rows: list[dict[str, Any]] = []
    total = len(tiles) * int(variants)
    for position, tile in tiles.iterrows():
        split = str(tile_split.iloc[position])
        pool = pools[split]
        options = tile_concepts[position]
        weights = np.asarray([c.weight for c in options], dtype=np.float64)
        tile_licence = _tile_licence(tile, image_licence)
        for variant in range(int(variants)):
            rng = np.random.default_rng([int(seed), _stable_int(str(tile["id"])), variant])
            n = int(rng.integers(1, min(int(max_concepts), len(options)) + 1))
            drawn = rng.choice(len(options), size=n, replace=False, p=weights / weights.sum())
            picked: list[int] = []
            for choice in drawn:
                row_scores = scores[phrase_index[options[int(choice)].phrase], pool]
                exclude = [int(np.flatnonzero(pool == p)[0]) for p in picked]
                candidates = retrieval_candidates(row_scores, k, exclude=exclude)
                picked.append(int(pool[candidates[int(rng.integers(len(candidates)))]]))
            targets = random_lufs_targets(n, low, high, rng=rng)
            sources = []
            for choice, clip_index, target in zip(drawn, picked, targets, strict=True):
                path = str(clips["path"].iloc[clip_index])
                spare = _duration(path, durations) - seconds
                offset = float(rng.uniform(0.0, spare)) if spare > 1e-3 else 0.0
                sources.append(
                    {
                        "path": path,
                        "class": str(clips["label"].iloc[clip_index]),
                        "caption": captions[clip_index],
                        "concept": options[int(choice)].phrase,
                        "licence": clip_licences[clip_index],
                        "target_lufs": round(float(target), 2),
                        "offset": round(offset, 3),
                    }
                )
            recipe = {
                "kind": RECIPE_KIND,
                "version": RECIPE_VERSION,
                "sample_rate": int(sample_rate),
                "seconds": float(seconds),
                "sources": sources,
            }
            if centroids is None:
                lon, lat = float(tile["lon"]), float(tile["lat"])
            else:
                lon, lat = float(centroids.iloc[position].x), float(centroids.iloc[position].y)
            audio_licences = "; ".join(dict.fromkeys(s["licence"] for s in sources))
            rows.append(
                {
                    "id": f"{tile['id']}-v{variant}",
                    "geometry": wgs84.geometry.iloc[position],
                    "lon": lon,
                    "lat": lat,
                    "image": str(tile[image_column]),
                    "audio": recipe_to_json(recipe),
                    "image_caption": "; ".join(options[int(c)].phrase for c in drawn),
                    "audio_caption": "; ".join(s["caption"] for s in sources),
                    "label": str(tile["label"]),
                    "split": split,
                    "source": source,
                    "licence": f"image: {tile_licence}; audio: {audio_licences}",
                    "tile_id": str(tile["id"]),
                }
            )
            done = len(rows)
            if done == total or done % 25 == 0:
                report(0.2 + 0.8 * done / total, f"sonified {done}/{total} pairs")

    manifest = gpd.GeoDataFrame(
        pd.DataFrame(rows), geometry="geometry", crs=MANIFEST_CRS
    ).reset_index(drop=True)
    validate_manifest(manifest)
    return manifest


def _check_columns(frame: pd.DataFrame, needed: Sequence[str], name: str) -> None:
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(f"the {name} table lacks column(s): {', '.join(missing)}")


def _tile_licence(tile: pd.Series, default: str | None) -> str:
    value = tile.get("licence") if "licence" in tile.index else None
    if isinstance(value, str) and value.strip():
        return value
    return default or "unknown"


# --------------------------------------------------------------------------- rendering


def sonify_dev_sets(
    data_dir: Path | None = None,
    variants: int = 1,
    seed: int = 0,
    eval_fraction: float = 0.3,
    classes: Sequence[str] | None = None,
    k: int = DEFAULT_K,
    progress: Callable[[float, str], None] | None = None,
) -> tuple[gpd.GeoDataFrame, pd.Series]:
    """Sonify the dev EuroSAT tiles with the dev ESC-50 clips, split disjointly.

    The one recipe behind ``geosound sonify`` and ``geosound train``, so both make the same
    pairs from the same settings.

    Args:
        data_dir: Folder holding ``eurosat_ms_geotiff/`` and ``esc50_outdoor_16k/`` (default:
            the dev data).
        variants: Pairs per tile.
        seed: Seeds the split and every draw.
        eval_fraction: Share of tiles and of clips held out for eval.
        classes: Only tiles of these EuroSAT classes.
        k: Top-k of the dynamic threshold.
        progress: ``callback(fraction, message)``.

    Returns:
        The manifest and the clip split (for summaries).
    """
    from geosound.config import dev_data_dir
    from geosound.data.devsets import (
        ESC50_FOLDER,
        EUROSAT_LICENCE,
        EUROSAT_MS_FOLDER,
        load_esc50,
        load_eurosat_tiles,
    )

    root = Path(data_dir or dev_data_dir()).expanduser()
    tiles = load_eurosat_tiles(root / EUROSAT_MS_FOLDER, classes=classes)
    clips = load_esc50(root / ESC50_FOLDER)
    tile_split, clip_split = split_by_tile_and_clip(tiles, clips, eval_fraction, seed)
    manifest = sonify_tiles(
        tiles,
        clips,
        variants=variants,
        seed=seed,
        k=k,
        splits=(tile_split, clip_split),
        source="seeing-sound:eurosat+esc50",
        image_licence=EUROSAT_LICENCE,
        progress=progress,
    )
    return manifest, clip_split


def render_recipe(recipe: str | Mapping[str, Any]) -> Clip:
    """Render a mix recipe to audio, deterministically.

    Each source is loaded (mono, at the recipe's rate), cut from its ``offset`` and padded or
    trimmed to ``seconds``, normalised to its ``target_lufs`` and summed; a mix that would
    clip is scaled down as a whole (:func:`geosound.audio.mix`), so the sources keep their
    relative loudness. No randomness is involved: the same recipe gives the same samples.

    Args:
        recipe: A recipe dict or its JSON (the manifest's ``audio`` value).

    Returns:
        A mono :class:`~geosound.audio.Clip` of ``round(seconds * sample_rate)`` samples.

    Raises:
        InputError: The recipe is malformed.
        AudioError: A source is missing, unreadable, or silent over its span (named).
    """
    from geosound.audio import Clip, load_audio, mix, pad_or_trim

    parsed = parse_recipe(dict(recipe) if isinstance(recipe, Mapping) else recipe)
    try:
        rate = int(parsed["sample_rate"])
        seconds = float(parsed["seconds"])
        sources = list(parsed["sources"])
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"malformed mix recipe: {error!r}") from error
    if parsed.get("kind", RECIPE_KIND) != RECIPE_KIND or not sources or rate <= 0:
        raise InputError("malformed mix recipe: needs kind 'mix', sources and a sample rate")
    if not (math.isfinite(seconds) and seconds > 0):
        raise InputError(f"malformed mix recipe: seconds must be > 0; got {seconds!r}")
    length = round(seconds * rate)
    arrays, targets = [], []
    for i, item in enumerate(sources):
        try:
            path, target = str(item["path"]), float(item["target_lufs"])
            offset = float(item.get("offset", 0.0))
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(f"malformed mix recipe source {i}: {error!r}") from error
        clip = load_audio(path, sample_rate=rate, mono=True)
        start = max(0, round(offset * rate))
        arrays.append(pad_or_trim(clip.samples[start : start + length], length))
        targets.append(target)
    try:
        mixed = mix(arrays, rate, targets, length=length)
    except AudioError as error:
        index = _source_index(error.message)
        path = str(sources[index]["path"]) if index is not None else None
        raise AudioError(f"cannot mix: {error.message}", path) from error
    return Clip(mixed, rate)


def _source_index(message: str) -> int | None:
    """The source number in :func:`mix`'s "mix source 3: ..." errors, if there is one."""
    prefix = "mix source "
    if message.startswith(prefix):
        number = message[len(prefix) :].split(":", 1)[0]
        if number.isdigit():
            return int(number)
    return None


def render_manifest(
    manifest: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    progress: Callable[[float, str], None] | None = None,
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
        written.append(write_audio(out / f"{safe}.wav", render_recipe(audio)))
        if progress is not None:
            progress(done / len(rows), f"rendered {done}/{len(rows)} mixes")
    return written
