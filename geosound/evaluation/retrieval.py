"""Cross-modal retrieval metrics, both directions, instance- and class-level.

Our pairs are made by sonification (a tile and a mix of clips chosen for its land cover), so a
tile's exact partner is only one of many plausible sounds. Beside the usual instance metrics
(recall@k, recall@10 % of the gallery, median rank of the true partner) we therefore report
class-level recall@k: the share of queries whose top k hold at least one item of the query's
class. Chance levels for both come from :func:`chance_levels`, computed from the gallery, not
assumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

DEFAULT_KS = (1, 5, 10)

Labels = Sequence[object] | np.ndarray
"""Class labels of queries or gallery items, one per row."""


@dataclass(frozen=True)
class RetrievalReport:
    """Metrics of one retrieval direction (e.g. image→audio) over a query set."""

    direction: str
    recall: dict[int, float]
    recall_at_10pct: float
    median_rank: float
    class_recall: dict[int, float]
    n_queries: int
    n_gallery: int

    def as_row(self) -> dict[str, float | str | int]:
        """Flat dict for tables: ``R@1``, ``R@5``, ``R@10``, ``R@10%``, ``MdR``, ``cR@k``."""
        row: dict[str, float | str | int] = {"direction": self.direction}
        row.update({f"R@{k}": v for k, v in self.recall.items()})
        row["R@10%"] = self.recall_at_10pct
        row["MdR"] = self.median_rank
        row.update({f"cR@{k}": v for k, v in self.class_recall.items()})
        return row


def ranks_of_partners(similarity: np.ndarray) -> np.ndarray:
    """1-based rank of the diagonal partner of each query row (ties count against it)."""
    partner = np.diag(similarity)[:, None]
    return (similarity > partner).sum(axis=1) + 1


def retrieval_report(
    queries: np.ndarray,
    gallery: np.ndarray,
    query_labels: Labels,
    gallery_labels: Labels,
    direction: str,
    ks: Sequence[int] = DEFAULT_KS,
) -> RetrievalReport:
    """Metrics for retrieving ``gallery[i]`` with ``queries[i]`` (row i's partner is item i).

    Args:
        queries: (N, D) embeddings of the query modality (cosine is taken; any norm).
        gallery: (N, D) embeddings of the other modality, partner-aligned with ``queries``.
        query_labels: Class of each query.
        gallery_labels: Class of each gallery item.
        direction: Name for tables, e.g. ``"image→audio"``.
        ks: Cut-offs for recall@k.
    """
    if len(queries) != len(gallery):
        raise ValueError("queries and gallery must be partner-aligned (same length)")
    similarity = _cosine(queries, gallery)
    ranks = ranks_of_partners(similarity)
    n = len(gallery)
    order = np.argsort(-similarity, axis=1, kind="stable")
    hits = np.asarray(gallery_labels)[order] == np.asarray(query_labels)[:, None]
    first_hit = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, n + 1)
    return RetrievalReport(
        direction=direction,
        recall={k: float((ranks <= k).mean()) for k in ks},
        recall_at_10pct=float((ranks <= max(1, int(np.ceil(0.1 * n)))).mean()),
        median_rank=float(np.median(ranks)),
        class_recall={k: float((first_hit <= k).mean()) for k in ks},
        n_queries=len(queries),
        n_gallery=n,
    )


def chance_levels(
    query_labels: Labels, gallery_labels: Labels, ks: Sequence[int] = DEFAULT_KS
) -> RetrievalReport:
    """Expected metrics of a random ranking of this gallery, in closed form.

    Instance recall@k of a random ranking is k/N; class-level recall@k is
    1 − C(N − n_c, k) / C(N, k) for a query whose class has n_c items in the gallery.
    """
    n = len(gallery_labels)
    gallery = np.asarray(gallery_labels)
    per_class = {label: int((gallery == label).sum()) for label in set(gallery.tolist())}
    counts = np.array([per_class.get(label, 0) for label in np.asarray(query_labels).tolist()])

    def class_recall(k: int) -> float:
        k = min(k, n)
        miss = np.exp(_log_comb(n - counts, k) - _log_comb(np.full_like(counts, n), k))
        miss[n - counts < k] = 0.0
        return float(np.mean(1.0 - miss))

    return RetrievalReport(
        direction="chance",
        recall={k: min(k, n) / n for k in ks},
        recall_at_10pct=max(1, int(np.ceil(0.1 * n))) / n,
        median_rank=(n + 1) / 2,
        class_recall={k: class_recall(k) for k in ks},
        n_queries=len(query_labels),
        n_gallery=n,
    )


def _log_comb(n: np.ndarray, k: int) -> np.ndarray:
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return gammaln(n + 1) - gammaln(k + 1) - gammaln(np.maximum(n - k, 0) + 1)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T
