"""The audio core: load, downmix, resample, window, measure loudness and mix.

Data flows as numpy float32 arrays, 1-D mono ``(n,)`` or 2-D ``(channels, n)``; files come
in through :func:`load_audio` (which turns every bad-file case into an
:class:`~geosound.errors.AudioError` naming the file) and go out through :func:`write_audio`.
This package imports nothing of geosound's but errors and the atomic writer, so every
higher layer (data, encoders, mapping) can depend on it.
"""

from geosound.audio.io import (
    AudioHeader,
    Clip,
    audio_blocks,
    check_audio,
    load_audio,
    read_header,
    write_audio,
)
from geosound.audio.loudness import lufs_gain, measure_lufs, normalize_lufs
from geosound.audio.mix import mix, random_lufs_targets
from geosound.audio.signal import (
    SILENCE_THRESHOLD,
    fixed_windows,
    is_silent,
    pad_or_trim,
    resample,
    to_mono,
)

__all__ = [
    "SILENCE_THRESHOLD",
    "AudioHeader",
    "Clip",
    "audio_blocks",
    "check_audio",
    "fixed_windows",
    "is_silent",
    "load_audio",
    "lufs_gain",
    "measure_lufs",
    "mix",
    "normalize_lufs",
    "pad_or_trim",
    "random_lufs_targets",
    "read_header",
    "resample",
    "to_mono",
    "write_audio",
]
