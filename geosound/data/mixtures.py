"""Mixtures of single-source clips, the separator's training and test material (METHODS §5).

AV-GAS learns to pull sources out of a soundscape from mixes whose sources are known: single-
source clips (ESC-50: one labelled class each) mixed at random loudness and with random
delays. Each mix is a :class:`~geosound.data.recipe.MixRecipe` — rendered when encoded, keyed
in the feature cache by the recipe, so a rerun encodes nothing — together with the rows of its
sources and their true shares of the mix's loudness.

Sources of one mix are of different classes (two dogs are one "dog" to the zero-shot
classifier, and identification is what we measure). Delays are bounded per clip by when its
sound starts (:func:`sound_onsets`): a dog bark at 4.5 s delayed by a second would leave a
silent source, which has no loudness to normalise.

Shares follow from the loudness targets, as power: ``10^(L_i/10) / Σ_j 10^(L_j/10)``. Mixing
scales the whole mix when it would clip (:func:`geosound.audio.mix`), which leaves them
unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from geosound.data.recipe import MixRecipe
from geosound.errors import DataError, InputError

__all__ = [
    "MIX_SAMPLE_RATE",
    "MIX_SECONDS",
    "Mixture",
    "draw_mixtures",
    "loudness_shares",
    "ratio_mixtures",
    "sound_onsets",
]

MIX_SAMPLE_RATE = 16000
"""Rate of rendered mixes (the dev clips' own)."""
MIX_SECONDS = 5.0
"""Length of a mix: one ESC-50 clip."""
ONSET_FLOOR_DB = -40.0
"""A clip's sound starts at its first 50 ms frame within this many dB of its loudest frame."""


@dataclass(frozen=True)
class Mixture:
    """One mix and what is in it.

    Attributes:
        recipe: How to render it.
        sources: Rows (positions) of its sources in the clip table it was drawn from.
        shares: Each source's share of the mix's loudness (sums to 1).
    """

    recipe: MixRecipe
    sources: tuple[int, ...]
    shares: tuple[float, ...]


def loudness_shares(target_lufs: Sequence[float]) -> np.ndarray:
    """Shares of loudness (power) of sources mixed at these LUFS targets."""
    power = 10.0 ** (np.asarray(target_lufs, dtype=np.float64) / 10.0)
    return power / power.sum()


def sound_onsets(paths: Sequence[str], sample_rate: int = MIX_SAMPLE_RATE) -> np.ndarray:
    """Seconds from each clip's start to its first sounding 50 ms frame (``ONSET_FLOOR_DB``).

    Raises:
        AudioError: A clip is missing, unreadable or silent (named).
    """
    from geosound.audio import load_audio

    frame = sample_rate // 20
    onsets = []
    for path in paths:
        samples = load_audio(path, sample_rate=sample_rate, mono=True).samples
        usable = len(samples) // frame * frame
        if usable == 0:
            onsets.append(0.0)
            continue
        energy = np.mean(samples[:usable].reshape(-1, frame) ** 2, axis=1)
        level = 10 * np.log10(energy + 1e-20)
        first = int(np.argmax(level >= level.max() + ONSET_FLOOR_DB))
        onsets.append(first * frame / sample_rate)
    return np.asarray(onsets)


def _source(clip: pd.Series, target_lufs: float, delay: float) -> dict[str, str | float]:
    return {
        "path": str(clip["path"]),
        "class": str(clip["label"]),
        "licence": str(clip.get("licence", "")),
        "target_lufs": round(float(target_lufs), 3),
        "offset": 0.0,
        "delay": round(float(delay), 3),
    }


def _mixture(
    clips: pd.DataFrame,
    rows: Sequence[int],
    targets: Sequence[float],
    delays: Sequence[float],
) -> Mixture:
    sources = tuple(
        _source(clips.iloc[row], target, delay)
        for row, target, delay in zip(rows, targets, delays, strict=True)
    )
    recipe = MixRecipe(MIX_SAMPLE_RATE, MIX_SECONDS, sources)
    shares = loudness_shares(targets)
    return Mixture(recipe, tuple(int(r) for r in rows), tuple(float(s) for s in shares))


def _check_clips(clips: pd.DataFrame, onsets: np.ndarray, most_sources: int) -> None:
    for column in ("path", "label"):
        if column not in clips.columns:
            raise DataError(f"the clip table has no {column!r} column")
    if len(onsets) != len(clips):
        raise InputError(f"got {len(onsets)} onsets for {len(clips)} clips")
    classes = clips["label"].nunique()
    if classes < most_sources:
        raise DataError(
            f"mixes of {most_sources} sources of different classes need {most_sources} classes; "
            f"the clips have {classes}"
        )


def _distinct_class_rows(labels: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
    """``k`` random rows, each of a different class (classes drawn uniformly, then a clip)."""
    classes = rng.choice(np.unique(labels), size=k, replace=False)
    return [int(rng.choice(np.flatnonzero(labels == name))) for name in classes]


def _delays(
    onsets: np.ndarray, rows: Sequence[int], max_delay: float, rng: np.random.Generator
) -> list[float]:
    """A delay per source that still leaves a second of its sound inside the mix."""
    room = np.clip(MIX_SECONDS - 1.0 - onsets[list(rows)], 0.0, max_delay)
    return [float(rng.uniform(0.0, limit)) if limit > 0 else 0.0 for limit in room]


def draw_mixtures(
    clips: pd.DataFrame,
    onsets: np.ndarray,
    n: int,
    source_counts: Sequence[int] = (1, 2, 3),
    count_weights: Sequence[float] | None = None,
    lufs_range: tuple[float, float] = (-38.0, -20.0),
    max_delay: float = 1.0,
    seed: int = 0,
) -> list[Mixture]:
    """``n`` random mixes of the clips, seeded.

    Args:
        clips: Needs ``path`` and ``label`` (e.g. :func:`~geosound.data.devsets.load_esc50`).
        onsets: :func:`sound_onsets` of the clips, aligned with the rows.
        n: How many mixes.
        source_counts: How many sources a mix may have; drawn per mix.
        count_weights: Probabilities of ``source_counts`` (default: uniform).
        lufs_range: Each source's loudness target is uniform in this range, so a source can
            be up to ``high − low`` dB quieter than another.
        max_delay: Sources start up to this many seconds into the mix.
        seed: Seeds every draw.

    Raises:
        DataError: The table lacks a column or has too few classes for the largest count.
        InputError: Bad counts or ranges.
    """
    counts = [int(c) for c in source_counts]
    if not counts or min(counts) < 1:
        raise InputError(f"source counts must be >= 1; got {list(source_counts)}")
    low, high = lufs_range
    if low > high:
        raise InputError(f"lufs_range low ({low}) must not exceed high ({high})")
    if max_delay < 0:
        raise InputError(f"max_delay must be >= 0; got {max_delay}")
    _check_clips(clips, onsets, max(counts))
    rng = np.random.default_rng([seed, 5])
    labels = clips["label"].astype(str).to_numpy()
    mixtures = []
    for k in rng.choice(counts, size=n, p=count_weights):
        rows = _distinct_class_rows(labels, int(k), rng)
        targets = rng.uniform(low, high, size=len(rows)).tolist()
        mixtures.append(_mixture(clips, rows, targets, _delays(onsets, rows, max_delay, rng)))
    return mixtures


def ratio_mixtures(
    clips: pd.DataFrame,
    onsets: np.ndarray,
    n: int,
    ratio_db: float,
    loud_lufs: float = -20.0,
    max_delay: float = 1.0,
    seed: int = 0,
) -> list[Mixture]:
    """``n`` two-source mixes whose second source is ``ratio_db`` dB relative to the first.

    The sweep of how identification degrades as one source gets quieter (0, −6, −12, −18 dB)
    draws the same pairs of clips and delays at every ratio (same ``seed``), so its rows
    differ only in loudness.
    """
    if ratio_db > 0:
        raise InputError(f"ratio_db is the quieter source's level, <= 0; got {ratio_db}")
    _check_clips(clips, onsets, 2)
    rng = np.random.default_rng([seed, 6])
    labels = clips["label"].astype(str).to_numpy()
    mixtures = []
    for _ in range(n):
        rows = _distinct_class_rows(labels, 2, rng)
        delays = _delays(onsets, rows, max_delay, rng)
        mixtures.append(_mixture(clips, rows, [loud_lufs, loud_lufs + ratio_db], delays))
    return mixtures
