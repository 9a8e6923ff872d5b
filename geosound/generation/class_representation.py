"""Class Representation Score (a proxy): does one picture of a mix show every source?

Sound2Scene and AV-GAS (papers 004, 003) ask of a picture drawn from a mix of sounds whether
it shows *all* of them, with an object detector as the judge. geosound draws landscapes, so
the judge is our land-cover classifier (the one behind ``evaluate-generator``'s PSS figures),
and a source counts as shown when a land cover it is plausible for
(:data:`~geosound.data.devsets.LANDCOVER_SOUNDS`) is among the picture's ``k`` most probable
classes, ``k`` the number of sources. A picture counts when every source is shown. That makes
it a proxy twice over: the classifier reads the EfficientNet-Lite0 features a Sound2Scene
generator is conditioned in, and the plausibility table is written by hand.

Each row draws one picture per held-out mix (:class:`~geosound.evaluation.separation.
SeparatedMixtures`), conditioned on ``normalise(Σ λᵢ cᵢ)`` of some vectors' conditions:

* **separator** — the separator's reported slots, ``λ`` their estimated shares (what
  ``geosound separate --images`` draws as ``combined.png``);
* **mix** — the unseparated mix's one vector;
* **oracle** — the clean sources, ``λ`` their true shares;
* **shuffled** — the separator's pictures judged against another mix's sources: what the
  judge gives a picture that did not hear these sounds.

Mixes with a source plausible for none of the classifier's classes are left out (counted).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from geosound.data.devsets import LANDCOVER_SOUNDS
from geosound.encoders import Encoder
from geosound.evaluation.generated import LandcoverClassifier
from geosound.evaluation.separation import SeparatedMixtures, lift_to_shared
from geosound.generation.generator import GenerationOptions, LandscapeGenerator
from geosound.generation.hearing import Listener, combined_condition
from geosound.models.soundit import SoundCondition
from geosound.progress import Progress

if TYPE_CHECKING:
    from geosound.space.shared import SharedSpace

__all__ = ["class_representation", "covers_of", "represented"]


def covers_of(sound_class: str, classes: Sequence[str]) -> set[str]:
    """The land covers among ``classes`` a sound class is likely or possible for."""
    return {
        cover
        for cover in classes
        if sound_class in (*LANDCOVER_SOUNDS.get(cover, {}).get("likely", ()),
                           *LANDCOVER_SOUNDS.get(cover, {}).get("possible", ()))
    }  # fmt: skip


def represented(
    probabilities: np.ndarray, covers: Sequence[Sequence[set[str]]], classes: Sequence[str]
) -> np.ndarray:
    """Whether each picture shows every one of its sources (see the module docstring).

    Args:
        probabilities: ``(M, C)`` the classifier's class probabilities of each picture.
        covers: Per picture, per source, the land covers that source is plausible for.
        classes: The classifier's classes, the columns of ``probabilities``.
    """
    names = np.asarray(classes)
    shown = []
    for row, sources in zip(np.asarray(probabilities), covers, strict=True):
        top = set(names[np.argsort(-row, kind="stable")[: len(sources)]].tolist())
        shown.append(all(top & cover for cover in sources))
    return np.asarray(shown, dtype=bool)


def _combined(listener: Listener, space: SharedSpace, vectors: np.ndarray, weights: np.ndarray
              ) -> SoundCondition:  # fmt: skip
    """The combined condition of some audio-encoder vectors, as ``separate --images`` makes it."""
    conditions = listener.sources(vectors, lift_to_shared(space, vectors), space.space_id,
                                  space.encoders["audio"].id)  # fmt: skip
    return combined_condition(conditions, weights)


def class_representation(
    generator: LandscapeGenerator,
    listener: Listener,
    space: SharedSpace,
    mixes: SeparatedMixtures,
    classifier: LandcoverClassifier,
    image_encoder: Encoder,
    options: GenerationOptions | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The Class Representation Score (proxy) of each row on one set of mixes.

    Args:
        generator: Draws the pictures (with its knowledge base, as users draw).
        listener: How it hears (:meth:`Listener.sources` checks the separator's space).
        space: The separator's Sat2Sound space.
        mixes: Held-out mixes of one source count, separated.
        classifier: The judge; its encoder must be ``image_encoder``.
        image_encoder: Encodes the pictures for the classifier.
        options: Sampling settings (the seed of mix ``m`` is ``options.seed + m``).
        progress: ``callback(fraction, message)`` per picture.
    """
    options = options or GenerationOptions()
    report = progress or (lambda fraction, message: None)
    classes = list(classifier.classes)
    covers = [[covers_of(str(c), classes) for c in row] for row in mixes.classes]
    usable = np.flatnonzero([all(cover for cover in row) for row in covers])
    drawers = {
        "separator": lambda m: _combined(listener, space, mixes.slots[m][mixes.present[m]],
                                         mixes.shares[m][mixes.present[m]]),
        "mix": lambda m: _combined(listener, space, mixes.mix[m][None], np.ones(1)),
        "oracle": lambda m: _combined(listener, space, mixes.clean[m], mixes.true_shares[m]),
    }  # fmt: skip
    kept = [covers[m] for m in usable]
    rows = {name: float("nan") for name in (*drawers, "shuffled")}
    for r, (name, condition_of) in enumerate(drawers.items()):
        if not kept:
            break
        pictures = []
        for i, m in enumerate(usable):
            picture = dataclasses.replace(options, seed=options.seed + int(m))
            pictures.append(generator.generate(condition_of(int(m)), options=picture).pixels)
            report((r * len(kept) + i + 1) / (len(drawers) * len(kept)), f"{name}: picture {i + 1}")
        probabilities = classifier.probabilities(image_encoder.encode(pictures).pooled.numpy())
        rows[name] = float(represented(probabilities, kept, classes).mean())
        if name == "separator" and len(kept) > 1:
            # Another mix's sources: the next usable mix's (a derangement of the mixes).
            other = [kept[(i + 1) % len(kept)] for i in range(len(kept))]
            rows["shuffled"] = float(represented(probabilities, other, classes).mean())
    return {
        "mixes": len(usable),
        "left_out": len(covers) - len(usable),
        "crs": {name: round(value, 4) for name, value in rows.items()},
    }
