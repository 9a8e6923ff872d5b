"""Array-level signal helpers: downmix, resample, pad/trim and fixed-length windows.

Everything here works on numpy float32 arrays laid out as 1-D mono ``(n,)`` or 2-D
``(channels, n)`` — channels first, so that "the time axis is the last axis" holds for
both and a batch of windows is ``(n_windows, window_len)``. Nothing here touches files;
that keeps the functions usable on mixes and synthesised audio as well as on recordings.
"""

from __future__ import annotations

import numpy as np
import soxr

from geosound.errors import InputError

#: Samples whose magnitude stays below this are treated as digital silence. 1e-6 is about
#: -120 dBFS: below the noise floor of any real 16- or 24-bit recording, so only true
#: zeros (or dither-free fades to zero) count as silent.
SILENCE_THRESHOLD = 1e-6


def as_audio(samples: np.ndarray, name: str = "samples") -> np.ndarray:
    """Return ``samples`` as a float32 array of shape ``(n,)`` or ``(channels, n)``.

    One place that checks the layout, so every public function rejects a 3-D array (or a
    scalar) with the same clear message instead of failing deep inside soxr or numpy.
    """
    array = np.asarray(samples, dtype=np.float32)
    if array.ndim not in (1, 2):
        raise InputError(f"{name} must be 1-D (n,) or 2-D (channels, n); got shape {array.shape}")
    return array


def is_silent(samples: np.ndarray, threshold: float = SILENCE_THRESHOLD) -> bool:
    """Whether every sample is below ``threshold`` in magnitude (empty input counts as silent).

    Silence is checked before loudness work because a silent clip has no loudness to
    normalise and would otherwise surface later as a ``-inf`` gain or a NaN embedding.
    """
    array = np.asarray(samples)
    return array.size == 0 or float(np.max(np.abs(array))) < threshold


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Downmix to mono by averaging the channels.

    The mean (not the sum) keeps the level of correlated content unchanged and cannot push
    a full-scale stereo file over full scale.

    Args:
        samples: ``(n,)`` (returned as float32, unchanged) or ``(channels, n)``.

    Returns:
        A float32 array of shape ``(n,)``.
    """
    array = as_audio(samples)
    if array.ndim == 1:
        return array
    return array.mean(axis=0, dtype=np.float64).astype(np.float32)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample along the time axis with soxr (``"HQ"`` quality).

    soxr is used because it is fast, band-limits properly (no aliasing when going from
    44.1 kHz to 16 kHz) and needs no torch. Equal rates return the input untouched, so
    callers can resample unconditionally at no cost.

    Args:
        samples: ``(n,)`` or ``(channels, n)``.
        from_rate: The rate of ``samples`` in Hz.
        to_rate: The wanted rate in Hz.

    Returns:
        A float32 array with the same channel layout and about ``n * to_rate / from_rate``
        samples.
    """
    array = as_audio(samples)
    for label, rate in (("from_rate", from_rate), ("to_rate", to_rate)):
        if int(rate) != rate or rate <= 0:
            raise InputError(f"{label} must be a positive whole number of Hz; got {rate!r}")
    if from_rate == to_rate:
        return array
    if array.shape[-1] == 0:
        return np.zeros(array.shape, dtype=np.float32)
    if array.ndim == 1:
        out = soxr.resample(array, int(from_rate), int(to_rate), quality="HQ")
        return np.asarray(out, dtype=np.float32)
    # soxr wants (n, channels), C-contiguous; our layout is (channels, n).
    out = soxr.resample(np.ascontiguousarray(array.T), int(from_rate), int(to_rate), quality="HQ")
    return np.ascontiguousarray(np.asarray(out, dtype=np.float32).T)


def pad_or_trim(samples: np.ndarray, length: int) -> np.ndarray:
    """Zero-pad at the end, or cut the end off, so the time axis has exactly ``length`` samples.

    Padding at the end (never the start) keeps onsets where they were, so a padded clip
    and its original line up sample for sample.

    Args:
        samples: ``(n,)`` or ``(channels, n)``.
        length: The wanted number of samples (>= 0).

    Returns:
        A float32 array whose last axis has ``length`` samples.
    """
    array = as_audio(samples)
    if int(length) != length or length < 0:
        raise InputError(f"length must be a whole number >= 0; got {length!r}")
    length = int(length)
    n = array.shape[-1]
    if n == length:
        return array
    if n > length:
        return array[..., :length]
    pad = [(0, 0)] * (array.ndim - 1) + [(0, length - n)]
    return np.pad(array, pad)


def fixed_windows(
    samples: np.ndarray,
    sample_rate: int,
    window_seconds: float,
    hop_seconds: float | None = None,
    pad_last: bool = True,
) -> np.ndarray:
    """Cut mono audio into equal-length windows, e.g. the 5 s chunks the audio encoders take.

    Follows METHODS §3 ("5 s chunks, zero-pad short clips"): a clip shorter than one window
    becomes one zero-padded window rather than being dropped, so every clip yields at least
    one window and no recording silently disappears from a bank.

    Args:
        samples: Mono audio ``(n,)``; downmix with :func:`to_mono` first.
        sample_rate: Rate of ``samples`` in Hz.
        window_seconds: Window length in seconds.
        hop_seconds: Start-to-start distance in seconds; defaults to ``window_seconds``
            (back-to-back windows, no overlap).
        pad_last: If the tail after the last full window holds samples no window covers,
            keep it as one more zero-padded window (True) or drop it (False). The first
            window is always kept, padded if needed.

    Returns:
        A float32 array ``(n_windows, window_len)`` with
        ``window_len = round(window_seconds * sample_rate)``; a fresh array, safe to modify.
    """
    array = as_audio(samples)
    if array.ndim != 1:
        raise InputError(
            f"fixed_windows needs mono (n,) samples; got shape {array.shape} — use to_mono first"
        )
    if sample_rate <= 0:
        raise InputError(f"sample_rate must be > 0; got {sample_rate!r}")
    window_len = round(window_seconds * sample_rate)
    if window_len < 1:
        raise InputError(
            f"window_seconds={window_seconds!r} is shorter than one sample at {sample_rate} Hz"
        )
    hop_len = window_len if hop_seconds is None else round(hop_seconds * sample_rate)
    if hop_len < 1:
        raise InputError(
            f"hop_seconds={hop_seconds!r} is shorter than one sample at {sample_rate} Hz"
        )

    n = array.shape[0]
    if n <= window_len:
        n_windows = 1
    else:
        n_full = 1 + (n - window_len) // hop_len
        last_end = (n_full - 1) * hop_len + window_len
        tail_uncovered = last_end < n and n_full * hop_len < n
        n_windows = n_full + 1 if (pad_last and tail_uncovered) else n_full

    padded = pad_or_trim(array, max(n, (n_windows - 1) * hop_len + window_len))
    views = np.lib.stride_tricks.sliding_window_view(padded, window_len)[::hop_len]
    return np.array(views[:n_windows], dtype=np.float32)
