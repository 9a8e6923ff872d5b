"""Retrieve: faiss banks of real recordings, searched by embedding.

:class:`AudioBank` indexes clip embeddings of one embedding space (``space_id``) with their
metadata (path, label, licence, place), so a map can fetch real recordings for a place, a
text or a sound; :class:`BankHits` is what a search returns.
"""

from geosound.retrieval.bank import (
    AUTO_FLAT_LIMIT,
    AUTO_HNSW_LIMIT,
    INDEX_KINDS,
    IVFPQ_MIN_VECTORS,
    AudioBank,
    BankError,
    BankHits,
    IndexKind,
    ivfpq_params,
)

__all__ = [
    "AUTO_FLAT_LIMIT",
    "AUTO_HNSW_LIMIT",
    "INDEX_KINDS",
    "IVFPQ_MIN_VECTORS",
    "AudioBank",
    "BankError",
    "BankHits",
    "IndexKind",
    "ivfpq_params",
]
