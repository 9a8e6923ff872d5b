"""Sounding concepts: what a land cover sounds like, and what a clip contains, in words.

Seeing Sound (METHODS §3) pairs images and sounds from unrelated datasets through *sounding
concepts*, short phrases of what is audible and visible in an image. The reference asks a
VLM for "one to up to three sound(s) associated with prominent objects visible ... in the
image". Offline we use a concept table per land-cover class, :data:`CONCEPT_PHRASES`, built
from the dev data's land cover → ESC-50 co-occurrence table
(:data:`~geosound.data.LANDCOVER_SOUNDS`): every listed sound becomes one phrase written as a
VLM would say it ("birds chirping in trees", :data:`SOUND_CONCEPTS`), remembered with the
ESC-50 class it came from. "Likely" sounds weigh :data:`LIKELY_WEIGHT` against
:data:`POSSIBLE_WEIGHT` for "possible" ones when a tile draws its concepts
(:func:`geosound.data.sonify.sonify_tiles`). A tile table that carries its own ``concepts``
column (captions in the data) uses those instead (:func:`tile_concepts`).

The other side of the retrieval is the clip: :data:`CLIP_CAPTIONS` says what a recording of
each ESC-50 class contains ("rain falling"), worded differently from the concept phrases so
that retrieval compares two descriptions rather than two labels.

Ambience recordings (``ambient_debian_16k``) carry weak ``key=value`` tags instead of a class;
:data:`AMBIENT_TAG_SOUNDS` turns each tag into the ESC-50 class it is a recording of and a
caption that says what the file holds ("birdsong in a forest by day"), so they join the sound
pool through the same concept tables (:func:`ambient_clips`).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from geosound.data.devsets import LANDCOVER_SOUNDS
from geosound.errors import DataError

__all__ = [
    "AMBIENT_TAG_SOUNDS",
    "CLIP_CAPTIONS",
    "CONCEPT_PHRASES",
    "LIKELY_WEIGHT",
    "MAX_CONCEPTS",
    "POSSIBLE_WEIGHT",
    "SOUND_CONCEPTS",
    "Concept",
    "ambient_clips",
    "clip_captions",
    "concept_set_chances",
    "landcover_bound",
    "tile_concepts",
]

LIKELY_WEIGHT = 3.0
POSSIBLE_WEIGHT = 1.0
MAX_CONCEPTS = 3
"""At most this many concepts (and so clips) per tile, by default."""

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
It is the clip's ``audio_caption`` and, in :func:`~geosound.data.sonify.caption_space`, the
text that stands in for the clip's sound."""


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


def concept_set_chances(
    options: Sequence[Concept], max_concepts: int = MAX_CONCEPTS
) -> dict[frozenset[str], float]:
    """The chance of each set of sound classes a tile with these concepts draws.

    Exact, by enumerating the ordered draws of
    :func:`~geosound.data.sonify.sonify_tiles`: a number of concepts uniform in
    ``1 … min(max_concepts, len(options))``, then concepts one after another, each by its
    weight among those not yet drawn.
    """
    total = sum(concept.weight for concept in options)
    weights = [concept.weight / total for concept in options]
    most = min(max_concepts, len(options))
    chances: dict[frozenset[str], float] = defaultdict(float)
    for size in range(1, most + 1):
        for order in itertools.permutations(range(len(options)), size):
            chance, left = 1.0 / most, 1.0
            for index in order:
                chance *= weights[index] / left
                left -= weights[index]
            chances[frozenset(options[index].sound for index in order)] += chance
    return dict(chances)


def landcover_bound(
    classes: Sequence[str],
    table: Mapping[str, Sequence[Concept]] = CONCEPT_PHRASES,
    max_concepts: int = MAX_CONCEPTS,
) -> float:
    """The best share of tiles whose land cover anything can tell from the sounds of a pair.

    A sonified pair's sound depends on its tile's land cover only through the concepts (and so
    the sound classes) the tile drew: its clips are picked for those. So no encoder, probe or
    generator can name the land cover more often than an oracle told those classes (the Bayes
    rate over ``classes``, equally likely). It separates what the pairs cannot teach from what
    our hearing of them loses.
    """
    chances = {label: concept_set_chances(table[label], max_concepts) for label in classes}
    drawn = set().union(*(set(c) for c in chances.values()))
    best = sum(max(chances[label].get(sounds, 0.0) for label in classes) for sounds in drawn)
    return best / len(classes)


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


def tile_concepts(row: pd.Series, table: Mapping[str, Sequence[Concept]]) -> tuple[Concept, ...]:
    """The concepts a tile may draw from: its own ``concepts`` if given, else its class's.

    Own concepts (a list, or one ``;``-separated string) all weigh 1 and have no source
    class: they come from captions in the data, not from the co-occurrence table.

    Args:
        row: One tile (``id``, ``label`` and optionally ``concepts``).
        table: Land cover → concepts (e.g. :data:`CONCEPT_PHRASES`).

    Returns:
        The concepts, in table order.

    Raises:
        DataError: The tile has no own concepts and its class is not in ``table``.
    """
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


AMBIENT_TAG_SOUNDS: dict[str, tuple[str, str]] = {
    "rain": ("rain", "rain falling on leaves"),
    "rooster": ("rooster", "a rooster crowing in a village"),
    "chicken": ("hen", "chickens clucking in a yard"),
    "mudchute_cow": ("cow", "a cow mooing on a farm"),
    "ox": ("cow", "an ox lowing on a farm"),
    "sheep": ("sheep", "sheep bleating on a farm"),
    "day": ("chirping_birds", "birdsong in a forest by day"),
    "sunny_day": ("chirping_birds", "birdsong on a sunny day"),
    "desertday": ("chirping_birds", "birds and insects on a dry day"),
    "morning": ("chirping_birds", "a dawn chorus of birds"),
    "birds": ("chirping_birds", "birds chirping outdoors"),
    "bird": ("chirping_birds", "a bird singing"),
    "night": ("crickets", "crickets and insects at night"),
    "nightime": ("crickets", "crickets and insects at night"),
    "crickets": ("crickets", "crickets chirping"),
    "frog": ("frog", "a frog croaking"),
    "wind": ("wind", "cold wind blowing"),
    "campfire": ("crackling_fire", "a campfire crackling"),
    "fire": ("crackling_fire", "a fire burning"),
    "water": ("pouring_water", "water flowing in a stream"),
    "ship": ("sea_waves", "a ship at sea, waves lapping"),
}
"""Tag keyword → (ESC-50 class, caption) for the ambience recordings.

The keyword is the tag's value without its path, extension and trailing take number
(``sound=night``, ``path=sound/animals/bird1_00.ogg`` → ``bird``, ``file=fire_large.ogg`` →
``fire``, ``env_sounds_water.1`` → ``water``). Game ambiences are weakly labelled: a "day" loop
is birdsong, a "night" loop crickets, which is what these say. Recordings whose tags name no
sound of the land-cover table (wolves, owls, war drums, horses) are left out rather than forced
into a class they do not belong to.
"""


def _tag_keyword(tag: str) -> str:
    """``"path=sound/animals/bird1_00.ogg"`` → ``"bird"``; ``"sound=night"`` → ``"night"``."""
    value = tag.split("=", 1)[-1].rsplit("/", 1)[-1]
    value = value.removesuffix(".ogg").removesuffix(".wav").removesuffix(".flac")
    value = value.rstrip("0123456789._")
    for prefix in ("env_sounds_",):
        value = value.removeprefix(prefix)
    for suffix in ("_large", "_small"):
        value = value.removesuffix(suffix)
    return value


def ambient_clips(ambient: pd.DataFrame) -> pd.DataFrame:
    """The ambience recordings whose tags name a sound of the table, as a clip pool.

    Args:
        ambient: :func:`~geosound.data.devsets.load_ambient`'s table (``path``, ``tags``,
            ``licence``).

    Returns:
        ``path``, ``label`` (ESC-50 class), ``caption``, ``licence`` and ``freesound_id``
        (here the file name: each recording is its own group for the split), one row per
        recording that :data:`AMBIENT_TAG_SOUNDS` maps, in index order.
    """
    rows = []
    for path, tags, licence in zip(
        ambient["path"], ambient["tags"], ambient["licence"], strict=True
    ):
        sound = next(
            (
                AMBIENT_TAG_SOUNDS[word]
                for word in map(_tag_keyword, tags)
                if word in AMBIENT_TAG_SOUNDS
            ),
            None,
        )
        if sound is not None:
            rows.append(
                {
                    "path": str(path),
                    "label": sound[0],
                    "caption": sound[1],
                    "licence": str(licence),
                    "freesound_id": f"ambient:{str(path).rsplit('/', 1)[-1]}",
                }
            )
    return pd.DataFrame(rows, columns=["path", "label", "caption", "licence", "freesound_id"])
