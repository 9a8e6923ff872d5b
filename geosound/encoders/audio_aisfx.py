"""aiSFX (ISMIR 2022, CC BY 4.0) as the default audio encoder: 512-d, weights in the wheel.

aiSFX embeds ~2.3 s blocks of a 96-band log-mel spectrogram at 44.1 kHz with a 9-layer CNN
trained on sound-effect libraries. We reproduce the package's librosa front end (peak
normalisation, mel 2048/1024, log10(10⁴·S + 1), min–max scaling with the paper's constants,
blocks of 100 frames with 50 % hop) in batched form, and run the CNN on all blocks of a batch
of clips at once. Each block is one token; the pooled vector is the mean over blocks, which
is what our dev linear probe measured (ESC-50 dev accuracy 0.74).

Long recordings (:meth:`AisfxAudioEncoder.pooled_long`) are streamed: decoded, resampled,
turned into log-mel frames and encoded a window at a time, the blocks' mean kept as a running
sum, so memory stays flat in the recording's length and the result is the whole-file one.

The package is installed with ``--no-deps`` (its pins clash with ours); its checkpoint is a
pickled ``(state_dict, dataset_dict)`` tuple, hence ``weights_only=False`` on a file that
ships inside an installed wheel — never on a user's path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import torch

from geosound.encoders.base import Encoder, EncoderInput, Encoding, pad_tokens, register_encoder
from geosound.errors import EncoderError

SAMPLE_RATE = 44100
N_FFT = 2048
HOP_LENGTH = 1024
N_MELS = 96
BLOCK_FRAMES = 100
BLOCK_HOP = 50
SPEC_MIN, SPEC_MAX = 0.0, 9.457798957824707  # aiSFX "original" normalisation constants
STREAM_SECONDS = 30.0
"""Recordings longer than this are streamed; shorter ones are encoded whole, as always."""
STREAM_WINDOW_SECONDS = 10.0
"""Seconds of audio decoded and turned into log-mel frames at a time when streaming."""
STREAM_BATCH_BLOCKS = 8
"""aiSFX blocks per forward pass when streaming (the CNN's activations are ~10 MB a block)."""


def as_waveform(item: Any) -> tuple[np.ndarray, int]:
    """Accept a path, a ``Clip``-like object (``.samples``, ``.sample_rate``) or a tuple."""
    if isinstance(item, str | os.PathLike):
        from geosound.audio import load_audio

        clip = load_audio(item, sample_rate=None)
        return clip.samples, clip.sample_rate
    if hasattr(item, "samples") and hasattr(item, "sample_rate"):
        return np.asarray(item.samples, dtype=np.float32), int(item.sample_rate)
    samples, rate = item
    return np.asarray(samples, dtype=np.float32), int(rate)


def _log_mel(samples: np.ndarray, center: bool = True) -> np.ndarray:
    """(frames, 96) scaled log-mel frames of peak-normalised mono audio at 44.1 kHz."""
    mel = librosa.feature.melspectrogram(
        y=samples,
        sr=SAMPLE_RATE,
        n_fft=N_FFT,
        hop_length=HOP_LENGTH,
        win_length=N_FFT,
        center=center,
        n_mels=N_MELS,
        fmin=0.0,
        fmax=SAMPLE_RATE / 2,
        htk=True,
        norm=1.0,
        power=2.0,
    )
    return (np.log10(mel * 10000.0 + 1.0).T - SPEC_MIN) / (SPEC_MAX - SPEC_MIN)


def log_mel_blocks(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """AiSFX input blocks for one mono clip: (n_blocks, 100 frames, 96 mel bands)."""
    from geosound.audio import resample

    if samples.ndim != 1:
        samples = samples.mean(axis=0)
    samples = resample(samples, sample_rate, SAMPLE_RATE)
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    samples = samples / peak if peak > 0 else samples
    spec = _log_mel(samples)
    n_frames = spec.shape[0]
    # Whole blocks only (aiSFX's drop_partial_block), but always at least one, zero-padded.
    n_blocks = max(1, (n_frames - BLOCK_FRAMES) // BLOCK_HOP + 1)
    padded = np.zeros((max(n_frames, (n_blocks - 1) * BLOCK_HOP + BLOCK_FRAMES), N_MELS))
    padded[:n_frames] = spec
    starts = np.arange(n_blocks) * BLOCK_HOP
    return np.stack([padded[s : s + BLOCK_FRAMES] for s in starts]).astype(np.float32)


@register_encoder("aisfx")
class AisfxAudioEncoder(Encoder):
    """Frozen aiSFX audio encoder.

    Items: file paths, ``geosound.audio.Clip`` objects, or ``(samples, sample_rate)`` tuples;
    any sample rate, mono or (channels, n).
    """

    modality = "audio"
    dim = 512

    def __init__(self, batch_size: int = 16, device: str = "cpu") -> None:
        super().__init__(batch_size=batch_size, device=device)

    def _load(self) -> Any:
        try:
            from aisfx.inference import get_path_modelWeights
            from aisfx.models.cnn2d import EmbeddingNet
        except ImportError as error:
            raise EncoderError(
                "aisfx is missing; run `make install` (it installs aisfx with --no-deps)"
            ) from error
        state, _datasets = torch.load(
            get_path_modelWeights(), map_location="cpu", weights_only=False
        )
        prefix = "embedding_net."
        network = EmbeddingNet("max", 3, 1, 64)
        network.load_state_dict(
            {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        )
        return network.eval().to(self.device)

    def _encode_batch(self, items: EncoderInput) -> Encoding:
        blocks = [log_mel_blocks(*as_waveform(item)) for item in items]
        counts = [len(b) for b in blocks]
        embedded = (
            self.model(torch.from_numpy(np.concatenate(blocks)).to(self.device)).float().cpu()
        )
        per_clip = list(torch.split(embedded, counts))
        tokens, mask = pad_tokens(per_clip)
        pooled = torch.stack([clip.mean(dim=0) for clip in per_clip])
        return Encoding(pooled=pooled, tokens=tokens, mask=mask)

    def pooled_long(
        self,
        path: str | os.PathLike[str],
        min_seconds: float = STREAM_SECONDS,
        window_seconds: float = STREAM_WINDOW_SECONDS,
    ) -> np.ndarray | None:
        """The pooled embedding of a long recording, streamed; None for a short one.

        A recording up to ``min_seconds`` long returns None: encode it whole, as usual.
        A longer one is read twice in blocks — once for the peak that aiSFX normalises by,
        once to make log-mel frames ``window_seconds`` at a time, encode their blocks and add
        them to a running mean — so memory stays that of one window however long the
        recording is, and the vector equals the whole-file one (to float rounding).

        Args:
            path: An audio file (any rate, any channels; downmixed like :func:`load_audio`).
            min_seconds: Longest recording left to the whole-clip path (None returned).
            window_seconds: Seconds of audio processed at a time.

        Returns:
            A (512,) float32 vector, or None.

        Raises:
            AudioError: As :func:`geosound.audio.load_audio` (missing, truncated, corrupt,
                empty, NaN samples, silent); the message names the file.
        """
        from geosound.audio import read_header

        header = read_header(path)
        if header.duration <= min_seconds:
            return None
        block_frames = max(1, round(window_seconds * header.sample_rate))
        peak = max(
            (
                float(np.max(np.abs(chunk)))
                for chunk in _resampled(path, block_frames)
                if chunk.size
            ),
            default=0.0,
        )
        frames = _stream_log_mel(path, block_frames, peak, round(window_seconds * SAMPLE_RATE))
        total = torch.zeros(self.dim, dtype=torch.float64)
        count = 0
        with torch.inference_mode():
            for batch in _batched_blocks(frames, STREAM_BATCH_BLOCKS):
                embedded = self.model(torch.from_numpy(batch).to(self.device)).float().cpu()
                total += embedded.double().sum(dim=0)
                count += len(batch)
        return (total / count).float().numpy()


def _resampled(path: str | os.PathLike[str], block_frames: int) -> Iterator[np.ndarray]:
    """A recording as mono float32 at 44.1 kHz, block by block (soxr HQ, streamed).

    soxr's stream gives exactly the samples of its one-shot resampling of the whole file.
    """
    import soxr

    from geosound.audio import audio_blocks, read_header

    rate = read_header(path).sample_rate
    stream = (
        None
        if rate == SAMPLE_RATE
        else soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
    )
    for block in audio_blocks(Path(path), block_frames):
        yield block if stream is None else stream.resample_chunk(block)
    if stream is not None:
        yield stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)


def _stream_log_mel(
    path: str | os.PathLike[str], block_frames: int, peak: float, window: int
) -> Iterator[np.ndarray]:
    """The log-mel frames of the whole recording (as :func:`log_mel_blocks` makes them), in parts.

    librosa centres frame ``t`` on sample ``t * HOP_LENGTH`` of the signal zero-padded by
    ``N_FFT // 2`` at both ends; each part is computed without centring from exactly the
    padded samples its frames cover, so the frames are those of the whole-file transform.
    """
    half = N_FFT // 2
    buffer = np.zeros(half, dtype=np.float32)  # padded samples from index `start` on
    start = 0  # padded index of buffer[0]
    frame = 0  # next frame to compute
    length = 0  # resampled samples seen
    for chunk in _resampled(path, block_frames):
        chunk = chunk / peak if peak > 0 else chunk
        length += chunk.size
        buffer = np.concatenate([buffer, chunk.astype(np.float32, copy=False)])
        if buffer.size - (frame * HOP_LENGTH - start) < window + N_FFT:
            continue
        stop = frame + 1 + (start + buffer.size - frame * HOP_LENGTH - N_FFT) // HOP_LENGTH
        yield _log_mel(
            buffer[frame * HOP_LENGTH - start : (stop - 1) * HOP_LENGTH + N_FFT - start],
            center=False,
        )
        frame = stop
        buffer, start = buffer[frame * HOP_LENGTH - start :], frame * HOP_LENGTH
    buffer = np.concatenate([buffer, np.zeros(half, dtype=np.float32)])
    stop = 1 + length // HOP_LENGTH  # librosa's frame count for a centred transform
    if stop > frame:
        yield _log_mel(
            buffer[frame * HOP_LENGTH - start : (stop - 1) * HOP_LENGTH + N_FFT - start],
            center=False,
        )


def _batched_blocks(frames: Iterator[np.ndarray], batch: int) -> Iterator[np.ndarray]:
    """Batches of aiSFX blocks (100 frames, hop 50, whole blocks only; at least one)."""
    pending = np.zeros((0, N_MELS))
    blocks: list[np.ndarray] = []
    emitted = 0
    for part in frames:
        pending = np.concatenate([pending, part])
        while pending.shape[0] >= BLOCK_FRAMES:
            blocks.append(pending[:BLOCK_FRAMES].astype(np.float32))
            pending = pending[BLOCK_HOP:]
            if len(blocks) == batch:
                yield np.stack(blocks)
                emitted += len(blocks)
                blocks = []
    if emitted == 0 and not blocks:  # shorter than one block: one zero-padded block
        padded = np.zeros((BLOCK_FRAMES, N_MELS))
        padded[: pending.shape[0]] = pending
        blocks.append(padded.astype(np.float32))
    if blocks:
        yield np.stack(blocks)
