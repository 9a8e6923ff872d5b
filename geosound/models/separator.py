"""The AV-GAS separator: a mixed recording in, one embedding per source out (METHODS.md §5).

A recording of a place mixes its sources, and one embedding of the mix mostly says what the
loudest one is. The separator reads the frozen audio encoder's tokens of the mix (one per
~2.3 s aiSFX block, plus their mean) and writes ``N`` *slots*, each holding

* a unit **embedding** in the audio encoder's pooled space — trained to land on the embedding
  of one clean source (A2A); lifted through the Sat2Sound audio head, a slot queries a map, a
  bank or the generator like any recording;
* an **existence** logit — whether the slot holds a source at all, so a single-source clip
  gives one source and a busy street three;
* a **loudness** logit — softmax over the present slots gives each source's share of the
  mix's loudness.

The paper splits one 4096-d vector into a fixed foreground and background half. We instead
let ``N`` learned slot queries attend to the mix tokens and to each other (a small transformer
decoder, as DETR reads objects out of an image) and train them permutation-invariantly
(:mod:`geosound.models.separator_loss`): the slots are matched to the sources by the Hungarian
algorithm, so no slot is tied to "foreground" and ``N`` can be 2, 3 or more.

Size presets (aiSFX tokens in and slots out, 512-d; ``tests/test_separator.py`` keeps the
parameter counts)::

    =======  =====  ======  =====  =====  ==========
    preset   width  layers  heads  slots  parameters
    =======  =====  ======  =====  =====  ==========
    tiny     256    2       4      3      1.85 M
    small    384    3       6      4      5.73 M
    =======  =====  ======  =====  =====  ==========

Example:
    >>> model = build_separator("tiny")
    >>> out = model(torch.randn(2, 3, 512), torch.ones(2, 3, dtype=torch.bool))
    >>> out.embeddings.shape, out.existence.shape
    (torch.Size([2, 3, 512]), torch.Size([2, 3]))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geosound.config import check_known_fields


@dataclass
class SeparatorConfig:
    """Everything that defines a separator; round-trips through plain dicts.

    Attributes:
        in_dim: Width of the audio encoder's tokens (aiSFX: 512).
        out_dim: Width of the slots: the audio encoder's pooled space (aiSFX: 512).
        dim: Width inside the decoder.
        layers: Decoder layers (slot self-attention, cross-attention to the mix, MLP).
        heads: Attention heads (must divide ``dim``).
        num_slots: ``N``, the most sources one recording can yield.
        dropout: Dropout inside the decoder.
    """

    in_dim: int = 512
    out_dim: int = 512
    dim: int = 256
    layers: int = 2
    heads: int = 4
    num_slots: int = 3
    dropout: float = 0.1

    def __post_init__(self) -> None:
        for name in ("in_dim", "out_dim", "dim", "layers", "heads", "num_slots"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.dim % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide dim ({self.dim})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        """Plain builtins, for checkpoints and JSON."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SeparatorConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (a typo must not pass)."""
        check_known_fields(cls, data, "SeparatorConfig keys")
        return cls(**dict(data))


SEPARATOR_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"dim": 256, "layers": 2, "heads": 4, "num_slots": 3},
    "small": {"dim": 384, "layers": 3, "heads": 6, "num_slots": 4},
}
"""Size presets (overrides of :class:`SeparatorConfig`); see the table above."""


def build_separator(
    preset_or_config: str | SeparatorConfig | Mapping[str, Any] = "tiny", **overrides: Any
) -> SourceSeparator:
    """Build a separator from a preset name, a config or a config dict (e.g. a checkpoint's).

    Raises:
        ValueError: Unknown preset or field.
    """
    if isinstance(preset_or_config, str):
        if preset_or_config not in SEPARATOR_PRESETS:
            raise ValueError(
                f"unknown separator preset {preset_or_config!r}; presets: "
                f"{', '.join(SEPARATOR_PRESETS)}"
            )
        config = SeparatorConfig.from_dict({**SEPARATOR_PRESETS[preset_or_config], **overrides})
    elif isinstance(preset_or_config, SeparatorConfig):
        config = dataclasses.replace(preset_or_config, **overrides)
    else:
        config = SeparatorConfig.from_dict({**dict(preset_or_config), **overrides})
    return SourceSeparator(config)


@dataclass
class SeparatorOutput:
    """The slots of a batch of ``B`` mixes.

    Attributes:
        embeddings: ``(B, N, D)`` unit vectors in the shared space, one per slot.
        existence: ``(B, N)`` logits that the slot holds a source.
        loudness: ``(B, N)`` logits of each slot's share of the mix's loudness (softmax over
            the slots that exist).
    """

    embeddings: Tensor
    existence: Tensor
    loudness: Tensor

    def present(self, threshold: float = 0.5, max_sources: int | None = None) -> Tensor:
        """``(B, N)`` bool: the slots taken as sources.

        A slot counts when its existence probability reaches ``threshold``; the most likely
        slot always counts (every recording that passed the silence check holds something),
        and at most ``max_sources`` count, the most likely first.
        """
        probability = torch.sigmoid(self.existence)
        order = probability.argsort(dim=1, descending=True)
        rank = order.argsort(dim=1)
        keep = (probability >= threshold) | (rank == 0)
        if max_sources is not None:
            keep &= rank < max_sources
        return keep

    def shares(self, present: Tensor) -> Tensor:
        """``(B, N)`` loudness shares of the present slots (rows sum to 1; 0 elsewhere)."""
        logits = self.loudness.masked_fill(~present, float("-inf"))
        return torch.softmax(logits, dim=1)


class SourceSeparator(nn.Module):
    """Slot queries read sources out of a mix's audio tokens (see the module docstring).

    Attributes:
        config: The :class:`SeparatorConfig` it was built from.
    """

    def __init__(self, config: SeparatorConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or SeparatorConfig()
        self.input = nn.Sequential(
            nn.LayerNorm(config.in_dim), nn.Linear(config.in_dim, config.dim)
        )
        # Marks the mean-of-tokens summary so attention can tell it from a block token.
        self.summary_type = nn.Parameter(torch.zeros(config.dim))
        self.slot_queries = nn.Parameter(torch.randn(config.num_slots, config.dim) * 0.02)
        layer = nn.TransformerDecoderLayer(
            config.dim,
            config.heads,
            dim_feedforward=2 * config.dim,
            dropout=config.dropout,
            batch_first=True,
            norm_first=True,
        )
        self.decoder = nn.TransformerDecoder(layer, config.layers, norm=nn.LayerNorm(config.dim))
        self.embedding_head = nn.Linear(config.dim, config.out_dim)
        self.existence_head = nn.Linear(config.dim, 1)
        self.loudness_head = nn.Linear(config.dim, 1)

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> SeparatorOutput:
        """Separate a batch of mixes.

        Args:
            tokens: ``(B, T, in_dim)`` audio-encoder tokens of the mixes.
            mask: ``(B, T)`` True at real tokens (None: all real).

        Returns:
            The :class:`SeparatorOutput` of ``N`` slots per mix.
        """
        if tokens.ndim != 3 or tokens.shape[-1] != self.config.in_dim:
            raise ValueError(
                f"expected tokens (B, T, {self.config.in_dim}); got {tuple(tokens.shape)}"
            )
        if mask is None:
            mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        mask = mask.to(torch.bool)
        weights = mask.unsqueeze(-1).to(tokens.dtype)
        mean = (tokens * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        memory = self.input(torch.cat([mean.unsqueeze(1), tokens], dim=1))
        memory[:, 0] = memory[:, 0] + self.summary_type
        memory_mask = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        queries = self.slot_queries.unsqueeze(0).expand(tokens.shape[0], -1, -1)
        slots = self.decoder(queries, memory, memory_key_padding_mask=~memory_mask)
        return SeparatorOutput(
            embeddings=F.normalize(self.embedding_head(slots), dim=-1),
            existence=self.existence_head(slots).squeeze(-1),
            loudness=self.loudness_head(slots).squeeze(-1),
        )


__all__ = [
    "SEPARATOR_PRESETS",
    "SeparatorConfig",
    "SeparatorOutput",
    "SourceSeparator",
    "build_separator",
]
