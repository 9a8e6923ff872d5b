"""Evaluating Sat2Sound retrieval on held-out pairs, beside the baselines it must beat.

Rows of the table (all dev figures, image→audio and audio→image):

* ``chance`` — closed-form expectation of a random ranking of this gallery;
* ``linear map (untrained encoders)`` — the frozen encoders' pooled features, with a
  closed-form ridge map from image features to audio features fitted on the training split;
  retrieval by cosine in the audio feature space;
* ``no codebook`` — Sat2Sound's projection heads alone (``use_codebook=False``);
* ``Sat2Sound`` — the full model.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from geosound.data.features import PairFeatures
from geosound.evaluation.retrieval import RetrievalReport, chance_levels, retrieval_report
from geosound.models import Sat2Sound, metadata_features


def embed_pairs(model: Sat2Sound, features: PairFeatures) -> dict[str, np.ndarray]:
    """Image and audio embeddings of every pair, in the model's shared space.

    A model built with metadata sees each pair's place and time (:func:`pair_metadata`).
    """
    model.eval()
    metadata = pair_metadata(features) if model.metadata_fusion is not None else None
    with torch.inference_mode():
        image = model.encode_image(
            torch.from_numpy(features.image_tokens),
            torch.from_numpy(features.image_mask),
            metadata,
        )
        audio = model.encode_audio(
            torch.from_numpy(features.audio_tokens), torch.from_numpy(features.audio_mask)
        )
    return {"image": image.embedding.numpy(), "audio": audio.embedding.numpy()}


def pair_metadata(features: PairFeatures) -> torch.Tensor:
    """Each pair's place and time as :func:`~geosound.models.metadata_features` rows.

    Month and hour are flagged unknown where the pairs have none (NaN, or no such arrays).
    """
    return metadata_features(features.lat, features.lon, features.month, features.hour)


def pooled(tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Masked mean over tokens: the frozen encoder's own pooled vector."""
    weights = mask[..., None].astype(np.float64)
    return (tokens * weights).sum(1) / np.maximum(weights.sum(1), 1.0)


def linear_map_baseline(
    train: PairFeatures, evaluation: PairFeatures, ridge: float = 1.0
) -> dict[str, np.ndarray]:
    """Untrained encoders joined by a closed-form ridge map from image to audio features.

    Features are standardised on the training split; the map ``W = (XᵀX + λI)⁻¹ XᵀY`` sends
    image features into the audio feature space, where retrieval is by cosine.
    """
    x_train = pooled(train.image_tokens, train.image_mask)
    y_train = pooled(train.audio_tokens, train.audio_mask)
    x_mean, x_std = x_train.mean(0), x_train.std(0) + 1e-6
    y_mean, y_std = y_train.mean(0), y_train.std(0) + 1e-6
    x = (x_train - x_mean) / x_std
    y = (y_train - y_mean) / y_std
    weights = np.linalg.solve(x.T @ x + ridge * len(x) * np.eye(x.shape[1]), x.T @ y)
    x_eval = (pooled(evaluation.image_tokens, evaluation.image_mask) - x_mean) / x_std
    y_eval = (pooled(evaluation.audio_tokens, evaluation.audio_mask) - y_mean) / y_std
    return {"image": x_eval @ weights, "audio": y_eval}


def both_directions(
    embeddings: dict[str, np.ndarray], labels: np.ndarray, name: str
) -> list[tuple[str, RetrievalReport]]:
    """image→audio and audio→image reports for one method."""
    return [
        (
            name,
            retrieval_report(
                embeddings["image"], embeddings["audio"], labels, labels, "image→audio"
            ),
        ),
        (
            name,
            retrieval_report(
                embeddings["audio"], embeddings["image"], labels, labels, "audio→image"
            ),
        ),
    ]


def chance_rows(labels: np.ndarray) -> list[tuple[str, RetrievalReport]]:
    """Chance level, the same in both directions for a partner-aligned gallery."""
    report = chance_levels(labels, labels)
    return [
        ("chance", dataclasses.replace(report, direction="image→audio")),
        ("chance", dataclasses.replace(report, direction="audio→image")),
    ]


def format_table(rows: list[tuple[str, RetrievalReport]], title: str) -> str:
    """A Markdown table of retrieval rows (the same text goes to the terminal and to docs)."""
    columns = ["R@1", "R@5", "R@10", "R@10%", "MdR", "cR@1", "cR@5", "cR@10"]
    lines = [
        f"{title}",
        "",
        "| method | direction | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for name, report in rows:
        row = report.as_row()
        cells = [f"{row[c]:.1f}" if c == "MdR" else f"{row[c]:.3f}" for c in columns]
        lines.append(f"| {name} | {report.direction} | " + " | ".join(cells) + " |")
    n = rows[0][1]
    se_high = (0.9 * 0.1 / n.n_queries) ** 0.5
    se_mid = (0.5 * 0.5 / n.n_queries) ** 0.5
    lines.append("")
    lines.append(
        f"{n.n_queries} queries against a gallery of {n.n_gallery} (dev eval split). R@k: the true "
        "partner in the top k; cR@k: an item of the query's land-cover class in the top k; "
        "MdR: median rank of the true partner. "
        f"With {n.n_queries} queries a recall near 0.9 has a binomial standard error of "
        f"{se_high:.3f}, one near 0.5 of {se_mid:.3f}: read smaller differences as noise."
    )
    return "\n".join(lines)
