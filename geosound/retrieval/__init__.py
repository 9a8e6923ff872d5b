"""Retrieve: faiss banks of real recordings, searched by embedding.

:class:`AudioBank` indexes clip embeddings of one embedding space (``space_id``) with their
metadata (path, label, licence, place), so a map can fetch real recordings for a place, a
text or a sound; :class:`BankHits` is what a search returns. :class:`ShardedBank` searches
several bank folders of one space as one, in this process or on a Dask cluster, and
:func:`open_bank` opens either kind of folder.
"""

from geosound.retrieval.bank import (
    AUTO_FLAT_LIMIT,
    INDEX_KINDS,
    IVFPQ_MIN_VECTORS,
    AudioBank,
    BankError,
    BankHits,
    IndexKind,
    choose_kind,
    ivf_params,
    ivfpq_params,
)
from geosound.retrieval.shards import ShardedBank, open_bank

__all__ = [
    "AUTO_FLAT_LIMIT",
    "INDEX_KINDS",
    "IVFPQ_MIN_VECTORS",
    "AudioBank",
    "BankError",
    "BankHits",
    "IndexKind",
    "ShardedBank",
    "choose_kind",
    "ivf_params",
    "ivfpq_params",
    "open_bank",
]
