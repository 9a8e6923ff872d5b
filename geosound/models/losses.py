"""Contrastive losses of Sat2Sound (METHODS.md §1), kept apart from the model as in open_clip.

The total, with every term on and every modality present, is::

    pairwise = mean(L(image, audio), L(image, audio caption), L(audio, audio caption))
    total    = pairwise
             + L(image, normalise(audio + audio caption))
             + image_image_caption_weight · L(image, image caption)

where ``L`` is :func:`clip_loss`. "(averaged)" in METHODS.md applies to the three pairwise
terms only, exactly as the reference's ``(L_ia + L_it + L_at) / 3``; the combined term and
the image–image-caption ("through the codebook", reference ``fdt_weight`` = 1) term are added
at full weight. When a pairwise term is switched off or its modalities are missing from the
batch, the mean runs over the remaining ones (so an image+audio-only batch gives
``L(image, audio)``, not a third of it). One logit scale (the model's) serves every term; the
reference learns one per pair, which we do not find worth the extra knobs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geosound.config import check_known_fields
from geosound.models.sat2sound import ModalityOutput


def _pseudo_positive_targets(logits: Tensor) -> Tensor:
    """Soft targets: every column at least as similar to the row as its true pair.

    The true pair (the diagonal) always qualifies; the row is normalised to sum to 1, so a row
    with ``n`` such entries spreads its target evenly over them.
    """
    positives = (logits >= logits.diagonal().unsqueeze(1)).to(logits.dtype)
    return positives / positives.sum(dim=1, keepdim=True)


def clip_loss(
    a: Tensor, b: Tensor, logit_scale: Tensor | float, pseudo_positive_weight: float = 0.1
) -> Tensor:
    """Symmetric CLIP cross-entropy between paired rows of ``a`` and ``b``, plus pseudo-positives.

    Row ``i`` of ``a`` and row ``i`` of ``b`` are a pair; every other row of the batch is a
    negative. With ``pseudo_positive_weight > 0`` a second cross-entropy is added whose soft
    targets also count as positive every entry ``j`` whose similarity to query ``i`` is ``≥``
    the true pair's (computed per direction, without gradient through the targets): in
    soundscape data two places often *do* sound alike, and punishing the model for ranking a
    near-duplicate first is noise. Without such entries the pseudo term equals the plain one,
    so the loss is then ``(1 + w)`` times the plain CLIP loss, as in the reference.

    Args:
        a: ``(B, D)`` embeddings; L2-normalised here, so raw vectors are fine.
        b: ``(B, D)`` embeddings paired with ``a``.
        logit_scale: The multiplier of the cosine logits (already ``exp``-ed and clamped,
            e.g. ``model.clamped_logit_scale()``).
        pseudo_positive_weight: Weight of the pseudo-positive term (reference 0.1; 0 turns
            it off).

    Returns:
        Scalar loss.
    """
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"need two (B, D) tensors of one shape, got {a.shape} and {b.shape}")
    logits = logit_scale * F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).t()
    labels = torch.arange(a.shape[0], device=a.device)
    loss = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))
    if pseudo_positive_weight:
        with torch.no_grad():
            targets_ab = _pseudo_positive_targets(logits)
            targets_ba = _pseudo_positive_targets(logits.t())
        pseudo = 0.5 * (
            F.cross_entropy(logits, targets_ab) + F.cross_entropy(logits.t(), targets_ba)
        )
        loss = loss + pseudo_positive_weight * pseudo
    return loss


@dataclass
class LossConfig:
    """Which terms of the Sat2Sound loss to use (all on by default, as in the reference).

    Attributes:
        image_audio: ``L(image, audio)``, one of the three averaged pairwise terms.
        image_audio_caption: ``L(image, audio caption)``, averaged pairwise term.
        audio_audio_caption: ``L(audio, audio caption)``, averaged pairwise term.
        image_audio_plus_caption: ``L(image, normalise(audio + audio caption))``, added.
        image_image_caption: ``L(image, image caption)`` through the codebook, added.
        image_image_caption_weight: Its weight (reference ``fdt_weight`` = 1).
        pseudo_positive_weight: Weight of the pseudo-positive term inside every ``L``.
    """

    image_audio: bool = True
    image_audio_caption: bool = True
    audio_audio_caption: bool = True
    image_audio_plus_caption: bool = True
    image_image_caption: bool = True
    image_image_caption_weight: float = 1.0
    pseudo_positive_weight: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, for YAML/JSON and checkpoints."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LossConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        check_known_fields(cls, data, "LossConfig keys")
        return cls(**dict(data))


PAIRWISE_TERMS: dict[str, tuple[str, str]] = {
    "image_audio": ("image", "audio"),
    "image_audio_caption": ("image", "audio_caption"),
    "audio_audio_caption": ("audio", "audio_caption"),
}
"""The averaged terms: name → (output key, output key)."""


class Sat2SoundLoss(nn.Module):
    """The Sat2Sound training objective over the outputs of :meth:`Sat2Sound.forward`.

    Terms that are switched off, or whose modalities are missing from the outputs, are skipped,
    so one loss serves image+audio-only data and fully captioned data alike.

    Example:
        >>> loss_fn = Sat2SoundLoss()
        >>> total, parts = loss_fn(model(batch), model.clamped_logit_scale())
    """

    def __init__(self, config: LossConfig | None = None) -> None:
        super().__init__()
        self.config = config or LossConfig()

    def forward(
        self, outputs: Mapping[str, ModalityOutput], logit_scale: Tensor | float
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Compute the total and its named parts.

        Args:
            outputs: ``{"image" | "audio" | "audio_caption" | "image_caption": output}``.
            logit_scale: The logit multiplier (``model.clamped_logit_scale()``).

        Returns:
            ``(total, parts)``: ``parts`` holds each computed term by its :class:`LossConfig`
            name, ``"pairwise"`` (their mean) when any pairwise term ran, and ``"total"``.

        Raises:
            ValueError: No enabled term has its modalities in ``outputs``.
        """
        cfg = self.config
        emb = {name: out.embedding for name, out in outputs.items()}

        def loss(a: Tensor, b: Tensor) -> Tensor:
            return clip_loss(a, b, logit_scale, cfg.pseudo_positive_weight)

        parts: dict[str, Tensor] = {}
        for name, (left, right) in PAIRWISE_TERMS.items():
            if getattr(cfg, name) and left in emb and right in emb:
                parts[name] = loss(emb[left], emb[right])
        terms: list[Tensor] = []
        if parts:
            parts["pairwise"] = torch.stack(list(parts.values())).mean()
            terms.append(parts["pairwise"])
        if cfg.image_audio_plus_caption and {"image", "audio", "audio_caption"} <= emb.keys():
            combined = F.normalize(emb["audio"] + emb["audio_caption"], dim=-1)
            parts["image_audio_plus_caption"] = loss(emb["image"], combined)
            terms.append(parts["image_audio_plus_caption"])
        if cfg.image_image_caption and {"image", "image_caption"} <= emb.keys():
            parts["image_image_caption"] = loss(emb["image"], emb["image_caption"])
            terms.append(cfg.image_image_caption_weight * parts["image_image_caption"])
        if not terms:
            raise ValueError(
                f"no enabled loss term can be computed from outputs {sorted(emb)} "
                "(need at least two modalities that an enabled term pairs)"
            )
        total = torch.stack(terms).sum()
        parts["total"] = total
        return total, parts
