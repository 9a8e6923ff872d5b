"""The separator's permutation-invariant loss (METHODS.md §5, "beyond the paper").

A mix of birds and traffic has no first source. So before any loss is taken, each mix's slots
are matched to its sources by the Hungarian algorithm on cosine cost
(:func:`scipy.optimize.linear_sum_assignment`, on detached copies: the matching is a choice,
not a function to differentiate), and the gradients flow through the gathered matches:

* **A2A** — symmetric InfoNCE between matched slots and their sources, every other source of
  the batch a negative — except sources with the same id, which count as positives: the same
  clip in two mixes of a batch, or, when the ids are classes, every clip of the slot's class
  (supervised-contrastive, so slots learn what a class sounds like rather than one clip);
* **existence** — binary cross-entropy: matched slots exist, the others do not, which is what
  lets a single-source clip come out as one source;
* **loudness** — cross-entropy between the softmax of the matched slots' loudness logits and
  the sources' true shares of the mix's loudness.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from geosound.config import check_known_fields
from geosound.models.separator import SeparatorOutput


@dataclass
class SeparationLossConfig:
    """Weights and temperature of :class:`SeparationLoss`.

    Attributes:
        temperature: Of the A2A InfoNCE logits (cosine / temperature).
        existence_weight: Weight of the existence term.
        loudness_weight: Weight of the loudness-share term.
    """

    temperature: float = 0.07
    existence_weight: float = 1.0
    loudness_weight: float = 0.5

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        for name in ("existence_weight", "loudness_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        """Plain builtins, for checkpoints and JSON."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SeparationLossConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        check_known_fields(cls, data, "SeparationLossConfig keys")
        return cls(**dict(data))


def match_slots(
    slots: Tensor, sources: Tensor, source_mask: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Hungarian matching of each mix's slots to its sources, on cosine cost.

    Args:
        slots: ``(B, N, D)`` unit slot embeddings.
        sources: ``(B, K, D)`` unit source embeddings (padded).
        source_mask: ``(B, K)`` True at real sources.

    Returns:
        ``(mix, slot, source)``: 1-D index tensors of the matched pairs, ``min(N, k_b)`` per
        mix ``b``.
    """
    cost = -(slots.detach() @ sources.detach().transpose(1, 2)).float().cpu().numpy()
    real = source_mask.cpu().numpy()
    mixes, slot_rows, source_rows = [], [], []
    for b in range(cost.shape[0]):
        columns = np.flatnonzero(real[b])
        if len(columns) == 0:
            continue
        rows, matched = linear_sum_assignment(cost[b][:, columns])
        mixes.append(np.full(len(rows), b))
        slot_rows.append(rows)
        source_rows.append(columns[matched])
    if not mixes:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty, empty
    return tuple(  # type: ignore[return-value]
        torch.from_numpy(np.concatenate(part)).long().to(slots.device)
        for part in (mixes, slot_rows, source_rows)
    )


class SeparationLoss(nn.Module):
    """A2A + existence + loudness over Hungarian-matched slots (see the module docstring).

    Args:
        config: Weights and temperature (defaults: :class:`SeparationLossConfig`).
    """

    def __init__(self, config: SeparationLossConfig | None = None) -> None:
        super().__init__()
        self.config = config or SeparationLossConfig()

    def forward(
        self,
        output: SeparatorOutput,
        sources: Tensor,
        source_mask: Tensor,
        source_ids: Tensor,
        shares: Tensor,
    ) -> dict[str, Tensor]:
        """The loss terms and their weighted ``total``.

        Args:
            output: The separator's slots for ``B`` mixes.
            sources: ``(B, K, D)`` unit embeddings of each mix's clean sources (padded).
            source_mask: ``(B, K)`` True at real sources.
            source_ids: ``(B, K)`` an id per source: equal ids are positives of each other
                (clip ids, or class ids).
            shares: ``(B, K)`` each source's share of its mix's loudness.
        """
        mix, slot, source = match_slots(output.embeddings, sources, source_mask)
        matched_slots = output.embeddings[mix, slot]
        matched_sources = sources[mix, source]
        ids = source_ids[mix, source]
        logits = matched_slots @ matched_sources.T / self.config.temperature
        same = (ids.unsqueeze(0) == ids.unsqueeze(1)).to(logits.dtype)
        targets = same / same.sum(dim=1, keepdim=True)
        a2a = 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))

        exists = torch.zeros_like(output.existence)
        exists[mix, slot] = 1.0
        existence = F.binary_cross_entropy_with_logits(output.existence, exists)

        loudness_logits = output.loudness.masked_fill(exists == 0, float("-inf"))
        log_share = torch.log_softmax(loudness_logits, dim=1)[mix, slot]
        target_share = torch.zeros_like(output.loudness)
        target_share[mix, slot] = shares[mix, source]
        target_share = target_share / target_share.sum(dim=1, keepdim=True).clamp_min(1e-8)
        loudness = -(target_share[mix, slot] * log_share).sum() / output.existence.shape[0]

        total = (
            a2a + self.config.existence_weight * existence + self.config.loudness_weight * loudness
        )
        return {"total": total, "a2a": a2a, "existence": existence, "loudness": loudness}


__all__ = ["SeparationLoss", "SeparationLossConfig", "match_slots"]
