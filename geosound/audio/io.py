"""Reading and writing audio files, with every bad-input case turned into a clear AudioError.

Recordings arrive from many sources (field recorders, datasets, users' folders), so loading
is where broken input must be caught: a missing, corrupt, truncated, empty, silent or too
short file fails here with a message naming the file, instead of later as a NaN embedding
or a shape error deep in an encoder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from geosound.atomic import atomic_path
from geosound.audio.signal import SILENCE_THRESHOLD, is_silent, resample, to_mono
from geosound.errors import AudioError, InputError

#: Errors soundfile/libsndfile raise on unreadable or undecodable data. LibsndfileError is a
#: RuntimeError; the others cover codec and allocation failures on nonsense headers.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    sf.SoundFileError,
    RuntimeError,
    OSError,
    ValueError,
    EOFError,
    MemoryError,
)

#: Containers :func:`write_audio` writes, by file suffix.
_WRITE_FORMATS = {".wav": "WAV", ".flac": "FLAC"}

#: Frames per block when a recording is streamed (about 6 s at 44.1 kHz).
BLOCK_FRAMES = 1 << 18


@dataclass(frozen=True, eq=False)
class Clip:
    """Audio samples with their rate and where they came from.

    ``eq=False`` because comparing numpy arrays elementwise has no single truth value;
    compare ``samples`` with numpy when needed.

    Attributes:
        samples: float32, 1-D mono ``(n,)`` or 2-D ``(channels, n)``.
        sample_rate: Samples per second.
        source: The file the samples were read from, if any (kept for error messages and
            provenance in sidecars).
    """

    samples: np.ndarray
    sample_rate: int
    source: str | None = None

    def __post_init__(self) -> None:
        samples = np.asarray(self.samples, dtype=np.float32)
        if samples.ndim not in (1, 2):
            raise InputError(
                f"Clip samples must be (n,) or (channels, n); got shape {samples.shape}",
                self.source,
            )
        if int(self.sample_rate) != self.sample_rate or self.sample_rate <= 0:
            raise InputError(
                f"Clip sample_rate must be a positive integer; got {self.sample_rate!r}"
            )
        object.__setattr__(self, "samples", samples)
        object.__setattr__(self, "sample_rate", int(self.sample_rate))

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.samples.shape[-1] / self.sample_rate

    @property
    def channels(self) -> int:
        """Number of channels (1 for 1-D samples)."""
        return 1 if self.samples.ndim == 1 else int(self.samples.shape[0])


@dataclass(frozen=True)
class AudioHeader:
    """What a recording's header says, checked: it opens and does not look cut short.

    Attributes:
        path: The file.
        frames: Frames the header declares.
        sample_rate: Samples per second.
        channels: Number of channels.
    """

    path: str
    frames: int
    sample_rate: int
    channels: int

    @property
    def duration(self) -> float:
        """Length in seconds, from the header."""
        return self.frames / self.sample_rate


def _check_path(path: Path) -> None:
    """The checks before decoding: the file exists, is a file, and is not empty."""
    if not path.exists():
        raise AudioError("file not found", path)
    if path.is_dir():
        raise AudioError("is a folder, not an audio file", path)
    if path.stat().st_size == 0:
        raise AudioError("is an empty file (0 bytes)", path)


def _open_checked(path: Path) -> sf.SoundFile:
    """Open a recording for decoding; a file that does not open or looks cut is an AudioError."""
    _check_path(path)
    try:
        handle = sf.SoundFile(str(path))
    except _DECODE_ERRORS as error:
        raise AudioError(f"not a readable audio file ({_reason(error)})", path) from error
    cut = _truncation_hint(path, handle)
    if cut:
        handle.close()
        raise AudioError(f"truncated or corrupt audio: {cut}", path)
    return handle


def read_header(path: str | os.PathLike[str]) -> AudioHeader:
    """A recording's length, rate and channels from its header, without decoding it.

    Raises:
        AudioError: The file is missing, empty, not audio, or visibly truncated.
    """
    path = Path(path)
    with _open_checked(path) as handle:
        return AudioHeader(str(path), int(handle.frames), int(handle.samplerate), handle.channels)


def audio_blocks(
    path: str | os.PathLike[str],
    block_frames: int = BLOCK_FRAMES,
    mono: bool = True,
    allow_silent: bool = False,
) -> Iterator[np.ndarray]:
    """Decode a recording block by block, with :func:`load_audio`'s checks, at its own rate.

    Memory follows one block, whatever the recording's length: this is how hour-long field
    recordings are read. The checks that need the whole file (the frame count, silence) run
    when the last block has been read, so a consumer sees the error before it finishes.

    Args:
        path: The file.
        block_frames: Frames per block (the last block may be shorter).
        mono: Downmix each block to ``(n,)`` by averaging channels; else ``(channels, n)``.
        allow_silent: Accept a recording whose every sample is (near) zero.

    Yields:
        float32 blocks, in order.

    Raises:
        AudioError: As :func:`load_audio`: missing, not audio, truncated or corrupt, empty,
            NaN/inf samples, or silent (unless ``allow_silent``). The message names the file.
    """
    path = Path(path)
    if int(block_frames) != block_frames or block_frames < 1:
        raise InputError(f"block_frames must be a whole number >= 1; got {block_frames!r}")
    with _open_checked(path) as handle:
        expected = int(handle.frames)
        decoded, peak, mono_peak = 0, 0.0, 0.0
        while True:
            try:
                data = handle.read(int(block_frames), dtype="float32", always_2d=True)
            except _DECODE_ERRORS as error:
                raise AudioError(
                    f"truncated or corrupt audio: decoding failed ({_reason(error)})", path
                ) from error
            if data.shape[0] == 0:
                break
            block = np.ascontiguousarray(data.T)
            if not np.all(np.isfinite(block)):
                raise AudioError("is corrupt: it contains NaN or infinite samples", path)
            decoded += block.shape[1]
            peak = max(peak, float(np.max(np.abs(block))))
            out = to_mono(block) if mono else block
            if mono:
                mono_peak = max(mono_peak, float(np.max(np.abs(out))))
            yield out
    if decoded < expected:
        raise AudioError(
            f"truncated or corrupt audio: decoded {decoded} of the {expected} frames "
            "its header declares",
            path,
        )
    if decoded == 0:
        raise AudioError("is empty: it contains no audio samples", path)
    if not allow_silent and peak < SILENCE_THRESHOLD:
        raise AudioError(
            f"is silent (every sample is below {SILENCE_THRESHOLD:g} in magnitude)", path
        )
    if mono and not allow_silent and mono_peak < SILENCE_THRESHOLD:
        raise AudioError("is silent after downmixing to mono (its channels cancel out)", path)


def check_audio(path: str | os.PathLike[str], allow_silent: bool = True) -> AudioHeader:
    """Decode a whole recording (block by block, in bounded memory) to prove that it is whole.

    For tables of recordings that are paired now and loaded much later (``geosound pairs``):
    a truncated or corrupt file is named here, before it is paired with anything.

    Args:
        path: The file.
        allow_silent: Accept digital silence (default; only decoding is checked).

    Returns:
        The checked header.

    Raises:
        AudioError: The file is missing, not audio, truncated or corrupt, empty or holds
            NaN/inf samples (or is silent, with ``allow_silent=False``).
    """
    header = read_header(path)
    for _ in audio_blocks(path, mono=False, allow_silent=allow_silent):
        pass
    return header


def _read_frames(path: Path) -> tuple[np.ndarray, int]:
    """Decode the whole file as float32 ``(channels, n)``; raise AudioError if it cannot.

    The frame count in the header is checked against what was decoded, because a truncated
    file may decode "successfully" up to where it was cut and silently yield a short clip.
    """
    with _open_checked(path) as handle:
        expected = handle.frames
        rate = int(handle.samplerate)
        try:
            data = handle.read(dtype="float32", always_2d=True)
        except _DECODE_ERRORS as error:
            raise AudioError(
                f"truncated or corrupt audio: decoding failed ({_reason(error)})", path
            ) from error
    if data.shape[0] < expected:
        raise AudioError(
            f"truncated or corrupt audio: decoded {data.shape[0]} of the {expected} frames "
            "its header declares",
            path,
        )
    return np.ascontiguousarray(data.T), rate


def _truncation_hint(path: Path, handle: sf.SoundFile) -> str | None:
    """Say why a file that libsndfile opened looks cut short, or None if it looks whole.

    libsndfile quietly shrinks its frame count to what a truncated WAV or OGG still holds,
    so the header-vs-decoded check in :func:`_read_frames` cannot see those cuts (a half
    downloaded file would load as a shorter clip). These two containers are checked here:
    WAV by comparing the ``data`` chunk's declared size with the bytes present, OGG by
    libsndfile's log noting a missing end-of-stream flag or a partial last page. Other
    containers rely on the decoder failing or on the frame-count check.
    """
    if handle.format in ("WAV", "WAVEX"):
        declared, present = _wav_data_sizes(path)
        if declared is not None and declared > present:
            return f"the data chunk declares {declared} bytes but only {present} are present"
    elif handle.format == "OGG":
        log = handle.extra_info.lower()
        if "end-of-stream" in log:
            return "the Ogg stream ends without its end-of-stream marker"
        if "junk after the last page" in log:
            return "the Ogg stream ends in a partial page"
    return None


def _wav_data_sizes(path: Path) -> tuple[int | None, int]:
    """The ``data`` chunk's declared byte size (None if unknown) and the bytes after its header.

    Sizes 0 and 0xFFFFFFFF are what streaming writers (and RF64) put when they do not know
    the length yet; those are treated as unknown rather than as a truncation.
    """
    size = path.stat().st_size
    with path.open("rb") as stream:
        riff = stream.read(12)
        if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
            return None, 0
        while True:
            header = stream.read(8)
            if len(header) < 8:
                return None, 0
            chunk_id, chunk_size = header[:4], int.from_bytes(header[4:], "little")
            if chunk_id == b"data":
                present = size - stream.tell()
                return (None if chunk_size in (0, 0xFFFFFFFF) else chunk_size), present
            stream.seek(chunk_size + (chunk_size & 1), 1)  # chunks are padded to even sizes


def _reason(error: BaseException) -> str:
    """Libsndfile's own words, without the path it repeats (our message names it already)."""
    text = str(error).strip() or type(error).__name__
    return text.rsplit(": ", 1)[1] if text.startswith("Error opening") and ": " in text else text


def load_audio(
    path: str | os.PathLike[str],
    sample_rate: int | None = 16000,
    mono: bool = True,
    min_duration: float | None = None,
    allow_silent: bool = False,
) -> Clip:
    """Read an audio file as float32, optionally downmixed and resampled.

    Reads anything soundfile (libsndfile) reads: WAV, FLAC, OGG/Vorbis, AIFF, and more.
    Defaults match the encoders' input (16 kHz mono, METHODS §3).

    Args:
        path: The file.
        sample_rate: Resample to this rate in Hz (soxr, HQ); None keeps the file's rate.
        mono: Downmix to mono by averaging channels, giving ``(n,)`` samples. If False the
            samples are always ``(channels, n)``, even for a one-channel file, so callers
            get a predictable layout.
        min_duration: Reject files shorter than this many seconds (of the file's own
            duration, before resampling); None accepts any non-empty length.
        allow_silent: Accept all-zero audio. Off by default because a silent clip cannot be
            loudness-normalised and embeds to nothing meaningful.

    Returns:
        A :class:`Clip` whose ``source`` is ``str(path)``.

    Raises:
        AudioError: The file is missing, not audio, truncated or corrupt, empty, contains
            NaN/inf, is silent (unless ``allow_silent``), or is shorter than
            ``min_duration``. The message names the file.
    """
    path = Path(path)
    if sample_rate is not None and (int(sample_rate) != sample_rate or sample_rate <= 0):
        raise InputError(f"sample_rate must be a positive integer or None; got {sample_rate!r}")
    _check_path(path)
    data, native_rate = _read_frames(path)
    n_frames = data.shape[1]
    if n_frames == 0:
        raise AudioError("is empty: it contains no audio samples", path)
    if not np.all(np.isfinite(data)):
        raise AudioError("is corrupt: it contains NaN or infinite samples", path)
    duration = n_frames / native_rate
    if min_duration is not None and duration < min_duration:
        raise AudioError(
            f"is too short: {duration:.3f} s long, the minimum is {min_duration:.3f} s", path
        )
    if not allow_silent and is_silent(data):
        raise AudioError(
            f"is silent (every sample is below {SILENCE_THRESHOLD:g} in magnitude)", path
        )

    samples = to_mono(data) if mono else data
    if mono and not allow_silent and is_silent(samples):
        raise AudioError("is silent after downmixing to mono (its channels cancel out)", path)
    if sample_rate is not None and sample_rate != native_rate:
        samples = resample(samples, native_rate, int(sample_rate))
        rate = int(sample_rate)
    else:
        rate = native_rate
    return Clip(samples=samples, sample_rate=rate, source=str(path))


def write_audio(
    path: str | os.PathLike[str],
    clip_or_samples: Clip | np.ndarray,
    sample_rate: int | None = None,
    subtype: str = "PCM_16",
) -> Path:
    """Write audio to a WAV (or FLAC) file atomically.

    The write goes through :func:`geosound.atomic.atomic_path`, so an interrupted run never
    leaves a half-written file that a later run would mistake for a finished product.

    Args:
        path: Destination; its suffix (``.wav`` or ``.flac``) picks the container.
        clip_or_samples: A :class:`Clip`, or an array ``(n,)`` / ``(channels, n)``.
        sample_rate: Required with a bare array; with a Clip it may be omitted, and if given
            must match the clip's rate (this function does not resample).
        subtype: libsndfile subtype: ``"PCM_16"`` (default; compact, universally readable),
            ``"PCM_24"``, or ``"FLOAT"`` (WAV only; keeps values beyond ±1).

    Returns:
        The destination path.

    Raises:
        InputError: Missing or conflicting sample rate, an unsupported suffix or subtype,
            or integer PCM samples beyond full scale (they would clip; scale them down or
            use ``subtype="FLOAT"``).
    """
    path = Path(path)
    if isinstance(clip_or_samples, Clip):
        if sample_rate is not None and sample_rate != clip_or_samples.sample_rate:
            raise InputError(
                f"sample_rate={sample_rate} conflicts with the clip's rate "
                f"{clip_or_samples.sample_rate}; resample the clip first",
                path,
            )
        samples, rate = clip_or_samples.samples, clip_or_samples.sample_rate
    else:
        if sample_rate is None:
            raise InputError("sample_rate is required when writing a bare array", path)
        samples = Clip(clip_or_samples, sample_rate).samples
        rate = int(sample_rate)

    container = _WRITE_FORMATS.get(path.suffix.lower())
    if container is None:
        raise InputError(
            f"cannot write {path.suffix or 'a suffix-less file'}; use one of "
            f"{', '.join(sorted(_WRITE_FORMATS))}",
            path,
        )
    subtype = subtype.upper()
    if not sf.check_format(container, subtype):
        raise InputError(f"{container} files cannot hold subtype {subtype!r}", path)
    if subtype.startswith("PCM") and samples.size:
        peak = float(np.max(np.abs(samples)))
        if peak > 1.0:
            raise InputError(
                f"samples peak at {peak:.3f}, beyond full scale; {subtype} would clip them — "
                "scale them down or write subtype='FLOAT'",
                path,
            )

    frames = samples if samples.ndim == 1 else np.ascontiguousarray(samples.T)
    with atomic_path(path) as tmp:
        sf.write(tmp, frames, rate, subtype=subtype, format=container)
    return path
