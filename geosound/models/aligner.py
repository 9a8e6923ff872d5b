"""The audio aligner of the Sound2Scene path: a recording placed where its tile's picture lies.

Sound2Scene (paper 004, METHODS.md §5) draws a picture from a sound in two steps: a generator
that knows only pictures, conditioned on the frozen image encoder's embedding of the picture
it is to draw (:func:`geosound.models.soundit.vector_condition`), and an aligner that maps a
recording into that same embedding space. The generator never needs a pair; the aligner needs
only pairs of (recording, tile) and no picture is drawn while it trains.

:class:`AudioAligner` pools the frozen audio encoder's tokens (masked mean, so a longer
recording is not a bigger vector) and maps them through a two-layer MLP to a unit vector in
the image encoder's space (1280-d for EfficientNet-Lite0). Its loss
(:func:`distance_info_nce`) is the paper's: a symmetric InfoNCE whose logits are the negative
Euclidean distances of unit vectors, ``−s·‖â − v̂‖₂``.

Size (measured): 512 → 1024 → 1280 is 1.84 M parameters, 7.4 MB in float32.

Example:
    >>> aligner = AudioAligner(AlignerConfig(audio_dim=8, visual_dim=6, hidden_dim=16))
    >>> aligner(torch.randn(2, 3, 8), torch.ones(2, 3, dtype=torch.bool)).norm(dim=-1)
    tensor([1.0000, 1.0000], grad_fn=<LinalgVectorNormBackward0>)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geosound.config import check_known_fields


@dataclass
class AlignerConfig:
    """What defines an aligner; round-trips through plain dicts (checkpoints).

    Attributes:
        audio_dim: Width of the audio encoder's tokens (aiSFX: 512).
        visual_dim: Width of the image encoder's pooled embedding (EfficientNet-Lite0: 1280).
        hidden_dim: Width of the MLP's hidden layer.
        dropout: Dropout on the pooled audio features in training.
        initial_scale: Starting ``s`` of the distance logits (learned, kept in [1, 100]).
    """

    audio_dim: int = 512
    visual_dim: int = 1280
    hidden_dim: int = 1024
    dropout: float = 0.1
    initial_scale: float = 10.0

    def to_dict(self) -> dict[str, Any]:
        """Plain builtins."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlignerConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        check_known_fields(cls, data, "AlignerConfig keys")
        return cls(**dict(data))


class AudioAligner(nn.Module):
    """Audio-encoder tokens ``(B, T, audio_dim)`` → unit vectors ``(B, visual_dim)``."""

    def __init__(self, config: AlignerConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or AlignerConfig()
        self.mlp = nn.Sequential(
            nn.LayerNorm(config.audio_dim),
            nn.Dropout(config.dropout),
            nn.Linear(config.audio_dim, config.hidden_dim),
            nn.GELU(),
            nn.Linear(config.hidden_dim, config.visual_dim),
        )
        self.log_scale = nn.Parameter(torch.tensor(math.log(config.initial_scale)))

    def scale(self) -> Tensor:
        """The distance-logit multiplier ``s``, clamped to [1, 100] as CLIP clamps its own."""
        return self.log_scale.exp().clamp(1.0, 100.0)

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        """Unit vectors in the image encoder's space.

        Args:
            tokens: ``(B, T, audio_dim)`` audio encoder tokens.
            mask: ``(B, T)`` True for real tokens (None: all real).
        """
        if tokens.ndim != 3 or tokens.shape[-1] != self.config.audio_dim:
            raise ValueError(
                f"audio tokens {tuple(tokens.shape)} should be (B, T, {self.config.audio_dim})"
            )
        weights = (
            torch.ones(tokens.shape[:2], device=tokens.device)
            if mask is None
            else mask.to(tokens.dtype)
        ).unsqueeze(-1)
        pooled = (tokens * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return F.normalize(self.mlp(pooled), dim=-1)


def distance_info_nce(audio: Tensor, visual: Tensor, scale: Tensor | float) -> Tensor:
    """Symmetric InfoNCE on ``−s·‖â − v̂‖₂`` between paired rows (Sound2Scene's loss).

    Row ``i`` of each is a pair, every other row a negative, in both directions. Distances of
    unit vectors are ``√(2 − 2·cos)``: the same ranking as cosine logits, but the gradient of
    a pair that is already close fades instead of staying constant, which is what keeps
    aligned vectors *on* the image embeddings rather than merely nearest to them.

    Args:
        audio: ``(B, D)`` aligned audio vectors (normalised here).
        visual: ``(B, D)`` image embeddings of the paired tiles (normalised here).
        scale: ``s``.
    """
    a, v = F.normalize(audio, dim=-1), F.normalize(visual, dim=-1)
    distances = (2.0 - 2.0 * a @ v.T).clamp_min(1e-8).sqrt()  # finite gradient at 0
    logits = -scale * distances
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


__all__ = ["AlignerConfig", "AudioAligner", "distance_info_nce"]
