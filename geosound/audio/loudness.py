"""Perceived loudness (ITU-R BS.1770 integrated loudness, in LUFS) and normalisation to a target.

Mixing by LUFS rather than by peak or RMS is what makes "louder source → more prominent"
(METHODS §3) mean something: BS.1770's K-weighting and gating follow what a listener hears,
so two clips normalised to the same LUFS sound about equally loud whatever their spectra.
The measurement is pyloudnorm's reference implementation.
"""

from __future__ import annotations

import math

import numpy as np
import pyloudnorm

from geosound.audio.signal import as_audio, is_silent, to_mono
from geosound.errors import AudioError, InputError

#: BS.1770 measures loudness over 400 ms gating blocks; pyloudnorm refuses anything shorter.
BLOCK_SECONDS = 0.4

#: BS.1770's absolute gate: blocks quieter than this are ignored, so audio whose every block
#: is below it measures as -inf even though it is not digitally silent.
ABSOLUTE_GATE_LUFS = -70.0

#: pyloudnorm's channel weights cover at most five channels (L, R, C, Ls, Rs).
_MAX_CHANNELS = 5


def _tile_to_block(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Repeat a clip shorter than one 400 ms block until it fills at least one block.

    Repeating (rather than zero-padding) keeps the clip's mean-square level, so the loudness
    measured is the loudness of the sound itself; zero-padding would dilute it and make the
    reading depend on how short the clip happens to be. Longer clips are returned unchanged.
    """
    n = samples.shape[-1]
    need = math.ceil(BLOCK_SECONDS * sample_rate)
    if n >= need:
        return samples
    reps = math.ceil(need / n)
    return np.tile(samples, (1,) * (samples.ndim - 1) + (reps,))


def measure_lufs(samples: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness of ``samples`` in LUFS (ITU-R BS.1770-4, via pyloudnorm).

    Clips shorter than one 400 ms gating block are measured on the clip repeated end to end
    until it fills a block (see :func:`_tile_to_block`), so very short sounds still get a
    finite, level-true reading instead of an error. More than five channels are measured on
    their mono downmix, since BS.1770 defines channel weights for five only.

    Args:
        samples: ``(n,)`` or ``(channels, n)`` float audio at full scale ±1.
        sample_rate: Rate of ``samples`` in Hz.

    Returns:
        The loudness in LUFS; ``float('-inf')`` for silent or empty input, and for audio
        quieter than the -70 LUFS absolute gate throughout.
    """
    array = as_audio(samples)
    if sample_rate <= 0:
        raise InputError(f"sample_rate must be > 0; got {sample_rate!r}")
    if is_silent(array):
        return float("-inf")
    if array.ndim == 2 and array.shape[0] > _MAX_CHANNELS:
        array = to_mono(array)
    array = _tile_to_block(array.astype(np.float64), sample_rate)
    meter = pyloudnorm.Meter(sample_rate, block_size=BLOCK_SECONDS)
    # pyloudnorm wants (n, channels); ours is (channels, n).
    data = array if array.ndim == 1 else np.ascontiguousarray(array.T)
    lufs = float(meter.integrated_loudness(data))
    return lufs if math.isfinite(lufs) else float("-inf")


def lufs_gain(samples: np.ndarray, sample_rate: int, target_lufs: float) -> float:
    """The linear gain that brings ``samples`` to ``target_lufs``.

    Exposed separately from :func:`normalize_lufs` so a sonified mix can be recorded as a
    recipe (sources + gains) and rebuilt later without re-measuring.

    Raises:
        AudioError: The input is silent, or below the -70 LUFS gate throughout, so no gain
            can reach the target.
    """
    if is_silent(samples):
        raise AudioError(
            "cannot loudness-normalise silent audio (all samples are zero; loudness is -inf LUFS)"
        )
    measured = measure_lufs(samples, sample_rate)
    if not math.isfinite(measured):
        raise AudioError(
            "cannot loudness-normalise: the audio is too quiet to measure (every 400 ms block is "
            f"below the {ABSOLUTE_GATE_LUFS:g} LUFS absolute gate of ITU-R BS.1770)"
        )
    return float(10.0 ** ((target_lufs - measured) / 20.0))


def normalize_lufs(samples: np.ndarray, sample_rate: int, target_lufs: float) -> np.ndarray:
    """Scale ``samples`` so their integrated loudness is ``target_lufs``.

    Only a gain is applied — no limiting — so the result may exceed full scale for loud
    targets; :func:`geosound.audio.mix.mix` guards the peak of the final mix instead, which
    keeps the relative loudness of the sources intact.

    Args:
        samples: ``(n,)`` or ``(channels, n)``.
        sample_rate: Rate of ``samples`` in Hz.
        target_lufs: The wanted loudness, e.g. -23.0.

    Returns:
        A new float32 array of the same shape.

    Raises:
        AudioError: The input is silent or too quiet to measure; it cannot be normalised.
    """
    array = as_audio(samples)
    gain = lufs_gain(array, sample_rate, target_lufs)
    return (array.astype(np.float64) * gain).astype(np.float32)
