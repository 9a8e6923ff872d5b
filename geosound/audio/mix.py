"""Mixing several sources into one soundscape (METHODS §3, step 3).

Each source is loudness-normalised to its own target, all are brought to one length and
summed in the time domain, and the sum is scaled down as a whole if it would clip. Scaling
the whole mix (never hard-clipping, never limiting one source) is what keeps the relative
loudness of the sources — the "louder source → more prominent" control — intact.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from geosound.audio.loudness import normalize_lufs
from geosound.audio.signal import as_audio, pad_or_trim
from geosound.errors import AudioError, InputError


def mix(
    sources: Sequence[np.ndarray],
    sample_rate: int,
    target_lufs: Sequence[float] | None = None,
    length: int | None = None,
    peak_limit: float = 0.99,
) -> np.ndarray:
    """Loudness-normalise, align, sum and peak-guard a set of sources.

    Args:
        sources: Arrays at ``sample_rate``, all 1-D ``(n,)`` or all ``(channels, n)`` with
            the same channel count; lengths may differ.
        sample_rate: Rate of every source in Hz (resample beforehand; mixing does not).
        target_lufs: One loudness target per source, e.g. from :func:`random_lufs_targets`;
            None mixes the sources at their own levels.
        length: Length of the mix in samples; sources are zero-padded or trimmed at the end.
            Defaults to the longest source, so nothing is cut.
        peak_limit: If the mix peaks above this, the whole mix is scaled so its peak equals
            it. 0.99 leaves a little headroom for PCM_16 rounding.

    Returns:
        The mix, float32, shaped like one source with ``length`` samples.

    Raises:
        InputError: No sources, mismatched shapes or target count, or a bad ``peak_limit``.
        AudioError: A source is silent (or too quiet to measure) and so cannot reach its
            loudness target; the message names its index.
    """
    arrays = _checked_sources(sources, peak_limit)
    layout = arrays[0].shape[:-1]
    if target_lufs is not None:
        arrays = _normalised(arrays, sample_rate, target_lufs)
    length = _mix_length(arrays, length)
    total = np.zeros((*layout, int(length)), dtype=np.float64)
    for array in arrays:
        total += pad_or_trim(array, length)
    return _peak_guarded(total, peak_limit).astype(np.float32)


def _checked_sources(sources: Sequence[np.ndarray], peak_limit: float) -> list[np.ndarray]:
    """The sources as audio arrays, after the checks that need no loudness measurement.

    Done first so that a wrong call fails at once, with the source's index, before any of
    the (slower) loudness work.
    """
    if len(sources) == 0:
        raise InputError("mix needs at least one source")
    if not peak_limit > 0:
        raise InputError(f"peak_limit must be > 0; got {peak_limit!r}")
    arrays = [as_audio(source, name=f"source {i}") for i, source in enumerate(sources)]
    layout = arrays[0].shape[:-1]
    for i, array in enumerate(arrays):
        if array.shape[:-1] != layout:
            raise InputError(
                f"all sources must share a channel layout; source 0 has shape {arrays[0].shape}, "
                f"source {i} has {array.shape}"
            )
    return arrays


def _normalised(
    arrays: list[np.ndarray], sample_rate: int, target_lufs: Sequence[float]
) -> list[np.ndarray]:
    """Each source at its own loudness target; a failure names the source by its index."""
    if len(target_lufs) != len(arrays):
        raise InputError(f"got {len(target_lufs)} loudness targets for {len(arrays)} sources")
    normalised = []
    for i, (array, target) in enumerate(zip(arrays, target_lufs, strict=True)):
        try:
            normalised.append(normalize_lufs(array, sample_rate, float(target)))
        except AudioError as error:
            raise AudioError(f"mix source {i}: {error.message}", error.path) from error
    return normalised


def _mix_length(arrays: list[np.ndarray], length: int | None) -> int:
    """The mix length asked for, checked; by default the longest source's, so nothing is cut."""
    if length is None:
        return max(array.shape[-1] for array in arrays)
    if int(length) != length or length < 0:
        raise InputError(f"length must be a whole number of samples >= 0; got {length!r}")
    return length


def _peak_guarded(total: np.ndarray, peak_limit: float) -> np.ndarray:
    """Scale the whole mix (in place) so it peaks at ``peak_limit`` at most.

    One gain for the whole mix, never clipping or limiting a source, keeps the sources'
    relative loudness.
    """
    peak = float(np.max(np.abs(total))) if total.size else 0.0
    if peak > peak_limit:
        total *= peak_limit / peak
    return total


def random_lufs_targets(
    n: int,
    low: float = -30.0,
    high: float = -20.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Draw ``n`` loudness targets uniformly from ``[low, high)`` LUFS (METHODS §3).

    A small random range varies which source dominates a mix, so the pairs carry the
    "louder → more prominent" signal, without making any source inaudible.

    Args:
        n: How many targets (one per source).
        low: Quietest target in LUFS.
        high: Loudest target in LUFS.
        rng: The generator to draw from; pass a seeded one for reproducible mixes. None uses
            a fresh, unseeded generator.

    Returns:
        A float64 array of shape ``(n,)``.
    """
    if int(n) != n or n < 0:
        raise InputError(f"n must be a whole number >= 0; got {n!r}")
    if low > high:
        raise InputError(f"low ({low}) must not exceed high ({high})")
    generator = rng if rng is not None else np.random.default_rng()
    return generator.uniform(low, high, size=int(n))
