"""Training the Sound2Scene audio aligner on cached features (no picture is drawn).

The aligner (:class:`~geosound.models.aligner.AudioAligner`) sees only frozen features: the
audio encoder's tokens of each pair's recording and the image encoder's pooled embedding of
its tile, both already in the generator's data bundle. An epoch over two thousand pairs takes
well under a second on a CPU, so this is a plain seeded loop over in-memory tensors rather
than a Lightning run with checkpoints: there is nothing worth resuming.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from geosound.models.aligner import AlignerConfig, AudioAligner, distance_info_nce
from geosound.progress import Progress


@dataclass(frozen=True)
class AlignerFit:
    """A trained aligner and what it measured on the held-out pairs.

    Attributes:
        aligner: The aligner (eval mode).
        metrics: Dev figures on the eval pairs (JSON-able).
    """

    aligner: AudioAligner
    metrics: dict[str, Any]


def fit_aligner(
    tokens: Tensor,
    mask: Tensor,
    targets: Tensor,
    train_rows: np.ndarray,
    eval_rows: np.ndarray,
    epochs: int,
    learning_rate: float,
    seed: int,
    batch_size: int = 256,
    config: AlignerConfig | None = None,
    progress: Progress | None = None,
    labels: np.ndarray | None = None,
) -> AlignerFit:
    """Fit an aligner so each recording lands on its tile's image embedding.

    Args:
        tokens: ``(N, T, audio_dim)`` audio encoder tokens of every pair.
        mask: ``(N, T)`` True for real tokens.
        targets: ``(N, visual_dim)`` image embedding of each pair's tile.
        train_rows: Pairs to train on.
        eval_rows: Held-out pairs the figures are measured on (never used to choose).
        epochs: Passes over the train pairs.
        learning_rate: AdamW learning rate.
        seed: Seeds the initial weights and the batches.
        batch_size: Pairs per batch (each batch's other pairs are the negatives).
        config: Sizes (default: the audio and image widths of ``tokens`` and ``targets``).
        progress: ``callback(fraction, message)`` once per epoch.
        labels: ``(N,)`` land-cover class of each pair, for the class-level figures.
    """
    torch.manual_seed(seed)
    config = config or AlignerConfig(
        audio_dim=int(tokens.shape[-1]), visual_dim=int(targets.shape[-1])
    )
    aligner = AudioAligner(config)
    optimiser = torch.optim.AdamW(aligner.parameters(), lr=learning_rate, weight_decay=0.01)
    order = torch.Generator().manual_seed(seed)
    train = torch.as_tensor(train_rows, dtype=torch.long)
    for epoch in range(epochs):
        aligner.train()
        for batch in train[torch.randperm(len(train), generator=order)].split(batch_size):
            if len(batch) < 2:
                continue  # one pair has no negative
            loss = distance_info_nce(aligner(tokens[batch], mask[batch]), targets[batch],
                                     aligner.scale())  # fmt: skip
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        if progress is not None:
            progress((epoch + 1) / epochs, f"aligner epoch {epoch + 1}/{epochs}")
    aligner.eval()
    return AlignerFit(aligner, alignment_metrics(aligner, tokens, mask, targets, eval_rows, labels))


@torch.no_grad()
def alignment_metrics(
    aligner: AudioAligner,
    tokens: Tensor,
    mask: Tensor,
    targets: Tensor,
    rows: np.ndarray,
    labels: np.ndarray | None = None,
) -> dict[str, Any]:
    """How close held-out recordings land to their own tiles' embeddings (dev figures).

    ``recall_at_10``: share of recordings whose own tile is among the 10 nearest of all the
    rows' tiles (chance ``10 / rows``); ``cosine``: mean cosine to the own tile's embedding,
    beside ``cosine_other``, the mean to the other rows' tiles (what an unaligned vector gets).

    A recording says which land cover it comes from, not which tile, so with ``labels`` the
    class-level figure matters more: ``class_top1``, the share of recordings whose nearest
    class centroid of the rows' tile embeddings is their own class, beside chance and
    ``class_top1_tiles``, what the tile embeddings themselves score (a perfect aligner).
    """
    index = torch.as_tensor(rows, dtype=torch.long)
    if len(index) < 2:
        return {"pairs": len(index)}
    aligned = aligner(tokens[index], mask[index])
    visual = torch.nn.functional.normalize(targets[index].float(), dim=-1)
    cosines = aligned @ visual.T
    own = cosines.diagonal()
    rank = (cosines > own.unsqueeze(1)).sum(dim=1)
    others = (cosines.sum() - own.sum()) / (len(index) * (len(index) - 1))
    return {
        "pairs": len(index),
        "recall_at_10": round(float((rank < 10).float().mean()), 4),
        "recall_at_10_chance": round(min(1.0, 10 / len(index)), 4),
        "cosine": round(float(own.mean()), 4),
        "cosine_other": round(float(others), 4),
        "loss": round(float(distance_info_nce(aligned, visual, aligner.scale())), 4),
        **({} if labels is None else class_figures(aligned, visual, np.asarray(labels)[rows])),
        "note": "dev figures on the eval pairs (loss over all of them at once)",
    }


def class_figures(aligned: Tensor, visual: Tensor, labels: np.ndarray) -> dict[str, float]:
    """Nearest-centroid land-cover accuracy of aligned recordings and of the tiles themselves."""
    classes, codes = np.unique(labels, return_inverse=True)
    index = torch.as_tensor(codes)
    centroids = torch.stack([visual[index == c].mean(0) for c in range(len(classes))])
    centroids = torch.nn.functional.normalize(centroids, dim=-1)

    def top1(vectors: Tensor) -> float:
        return round(float(((vectors @ centroids.T).argmax(1) == index).float().mean()), 4)

    return {
        "class_top1": top1(aligned),
        "class_top1_chance": round(1 / len(classes), 4),
        "class_top1_tiles": top1(visual),
    }


__all__ = ["AlignerFit", "alignment_metrics", "class_figures", "fit_aligner"]
