"""aiSFX (ISMIR 2022, CC BY 4.0) as the default audio encoder: 512-d, weights in the wheel.

aiSFX embeds ~2.3 s blocks of a 96-band log-mel spectrogram at 44.1 kHz with a 9-layer CNN
trained on sound-effect libraries. We reproduce the package's librosa front end (peak
normalisation, mel 2048/1024, log10(10⁴·S + 1), min–max scaling with the paper's constants,
blocks of 100 frames with 50 % hop) in batched form, and run the CNN on all blocks of a batch
of clips at once. Each block is one token; the pooled vector is the mean over blocks, which
is what our dev linear probe measured (ESC-50 dev accuracy 0.74).

The package is installed with ``--no-deps`` (its pins clash with ours); its checkpoint is a
pickled ``(state_dict, dataset_dict)`` tuple, hence ``weights_only=False`` on a file that
ships inside an installed wheel — never on a user's path.
"""

from __future__ import annotations

import os
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


def log_mel_blocks(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """AiSFX input blocks for one mono clip: (n_blocks, 100 frames, 96 mel bands)."""
    from geosound.audio import resample

    if samples.ndim != 1:
        samples = samples.mean(axis=0)
    samples = resample(samples, sample_rate, SAMPLE_RATE)
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    samples = samples / peak if peak > 0 else samples
    mel = librosa.feature.melspectrogram(
        y=samples,
        sr=SAMPLE_RATE,
        n_fft=N_FFT,
        hop_length=HOP_LENGTH,
        win_length=N_FFT,
        n_mels=N_MELS,
        fmin=0.0,
        fmax=SAMPLE_RATE / 2,
        htk=True,
        norm=1.0,
        power=2.0,
    )
    spec = (np.log10(mel * 10000.0 + 1.0).T - SPEC_MIN) / (SPEC_MAX - SPEC_MIN)
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
