"""The audio bank: a faiss index over clip embeddings plus the metadata of each clip.

Maps retrieve real recordings for a place by embedding the place (or a text, or a sound) into
the bank's embedding space and asking the bank for the nearest clips. Vectors are
L2-normalised on the way in, so the index's inner product is the cosine similarity whatever
the index kind, and scores compare across banks and kinds.

A bank records the **embedding space** its vectors live in (``space_id``: an encoder id such
as ``"aisfx@1"``, or a trained model's head such as ``"sat2sound:<model id>/audio"``). A query
from another space still returns neighbours — just meaningless ones — so the id is stored
beside the index and checked when a caller says which space it will query from
(:meth:`AudioBank.load` with ``expected_space_id``).

**Index kinds**, and what ``kind="auto"`` picks (:func:`choose_kind`):

* ``flat`` — exact search over the float vectors; auto's choice below
  :data:`AUTO_FLAT_LIMIT` vectors, where a scan costs milliseconds a query.
* ``ivf`` — IVF-PQ finds ``k_factor·k`` candidates, which faiss (``IndexRefineFlat``)
  re-ranks exactly against the float vectors: recall@10 0.99+ and exact scores at a fraction
  of a flat scan's time (see :func:`ivf_params`). The float vectors are memory-mapped from
  ``index.faiss`` when the bank is loaded, so memory holds what every search reads (PQ codes,
  lists, centroids: 6.4 % of flat at 1M × 512) and the kernel pages in the float rows
  re-ranking touches (page cache, dropped under pressure; then re-ranking reads the disk).
  Auto's choice from :data:`AUTO_FLAT_LIMIT` vectors on.
* ``hnsw`` — a graph over the float vectors, all in memory (~106 % of flat); fast to search
  but minutes per million vectors to build. Never chosen by auto since ``ivf`` exists.
* ``ivfpq`` — PQ codes only, ~7 % of flat on disk and in memory, recall@10 ~0.55 and
  approximate scores; for when even the float vectors on disk are too many.

Collections larger than one machine's memory or disk are split into shards
(:class:`geosound.retrieval.shards.ShardedBank`), each a bank folder like this one.

On disk a bank is a folder of three files, written together or not at all:

* ``index.faiss`` — the faiss index (row ``i`` of the metadata is vector ``i``);
* ``metadata.parquet`` — one row per clip: ``path`` and whatever else the caller gave
  (``label``, ``licence``, ``lon``, ``lat``, …), kept as is;
* ``bank.json`` — ``space_id``, index kind and parameters, ``dim``, ``count``, the recall
  measured at build time, geosound's version and the creation time.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import faiss
import numpy as np
import numpy.typing as npt
import pandas as pd

from geosound.atomic import atomic_folder, fsync_file
from geosound.errors import InputError
from geosound.runtime import requested_cuda_index
from geosound.sidecar import now_iso, sidecar

__all__ = [
    "AUTO_FLAT_LIMIT",
    "INDEX_KINDS",
    "IVFPQ_MIN_VECTORS",
    "AudioBank",
    "BankError",
    "BankHits",
    "IndexKind",
    "choose_kind",
    "ivf_params",
    "ivfpq_params",
]

IndexKind = Literal["flat", "ivf", "hnsw", "ivfpq"]
INDEX_KINDS: tuple[str, ...] = ("flat", "ivf", "hnsw", "ivfpq")

#: ``kind="auto"`` searches exactly below this many vectors and uses ``ivf`` from here on: at
#: D=512 a flat scan of 200k vectors is a ~0.2 GFLOP matrix product per query, a few ms, so
#: approximation buys little; beyond it ``ivf`` answers at recall@10 ≥ 0.99 many times faster
#: and holds a small part of flat's memory (benchmarks/results/bank_*.txt).
AUTO_FLAT_LIMIT = 200_000
#: IVF-PQ's product quantiser has 256 centroids per sub-space; faiss wants ~39 training points
#: per centroid, so fewer vectors than this train a poor quantiser and the bank refuses.
IVFPQ_MIN_VECTORS = 39 * 256

HNSW_DEFAULTS: dict[str, int] = {"M": 16, "ef_construction": 40, "ef_search": 128}
"""HNSW parameters: ``M`` links per node (memory and recall), ``ef_construction`` (build
quality; build time grows with it), ``ef_search`` (recall vs speed at query time). Chosen so
that a 1M × 512 bank builds in minutes on 2 cores and reaches recall@10 ≥ 0.9 on real-like
audio embeddings (benchmarks/bench_bank.py)."""

PQ_TRAIN_ITERATIONS = 10
"""k-means iterations of each PQ sub-quantiser (faiss's default is 25)."""

IVF_K_FACTOR = 10
"""``ivf`` re-ranks ``IVF_K_FACTOR·k`` PQ candidates exactly (see :func:`ivf_params`)."""
IVF_NPROBE = 8
"""IVF lists an ``ivf`` query visits (see :func:`ivf_params`)."""

RECALL_QUERIES = 1000
"""Bank vectors sampled as queries when the builder measures recall and is given none."""

INDEX_FILE = "index.faiss"
METADATA_FILE = "metadata.parquet"
INFO_FILE = "bank.json"
FORMAT_VERSION = 2
"""Format 2 added the ``ivf`` kind and sharded banks; other banks are still written as 1, so
an older geosound keeps reading them."""

_HIT_COLUMNS = ("query", "rank", "index", "score")


class BankError(InputError):
    """An audio bank cannot be built, saved or loaded as asked; names the bank folder or file."""


# --------------------------------------------------------------------------- hits


@dataclass(frozen=True)
class BankHits:
    """The ``k`` nearest clips of each of ``Q`` queries.

    Attributes:
        scores: ``(Q, k)`` float32 cosine similarities, best first (exact for ``flat``,
            ``ivf`` and ``hnsw``; approximate for ``ivfpq``, whose vectors are compressed).
        indices: ``(Q, k)`` int64 bank rows; ``-1`` where the index found fewer than ``k``.
        metadata: The bank's metadata table, to look the rows up in.
    """

    scores: np.ndarray
    indices: np.ndarray
    metadata: pd.DataFrame = field(repr=False)

    def __len__(self) -> int:
        """The number of queries."""
        return int(self.indices.shape[0])

    def to_frame(self) -> pd.DataFrame:
        """One row per hit: ``query``, ``rank`` (1 = best), ``index``, ``score``, then metadata.

        A tidy table is what maps, CLIs and notebooks consume (group by ``query``, filter by
        ``licence``, …). Missing hits (``-1``) are dropped. A metadata column whose name
        clashes with a hit column gets a ``_meta`` suffix rather than hiding either.

        Returns:
            A DataFrame sorted by query, then rank.
        """
        n_queries, k = self.indices.shape
        query = np.repeat(np.arange(n_queries, dtype=np.int64), k)
        rank = np.tile(np.arange(1, k + 1, dtype=np.int64), n_queries)
        index = self.indices.reshape(-1).astype(np.int64)
        score = self.scores.reshape(-1).astype(np.float32)
        found = index >= 0
        hits = pd.DataFrame(
            {
                "query": query[found],
                "rank": rank[found],
                "index": index[found],
                "score": score[found],
            }
        )
        meta = self.metadata.iloc[index[found]].reset_index(drop=True)
        meta = meta.rename(columns={c: f"{c}_meta" for c in meta.columns if c in _HIT_COLUMNS})
        return pd.concat([hits, meta], axis=1)


# --------------------------------------------------------------------------- the bank


class AudioBank:
    """A faiss index over L2-normalised clip embeddings, with one metadata row per vector.

    Build one with :meth:`build`, or open a saved one with :meth:`load`; the constructor
    wraps an index that is already consistent with its metadata.

    Attributes:
        index: The faiss index (inner-product metric).
        space_id: The embedding space of the vectors, e.g. ``"aisfx@1"``.
        kind: ``"flat"`` (exact), ``"ivf"``, ``"hnsw"`` or ``"ivfpq"`` (approximate).
        params: The index parameters (HNSW ``M``/``ef_*``, IVF ``nlist``/``m``/``nprobe``/…).
        recall: What the builder measured for an approximate index (``k``, ``value``, how many
            queries, from where), or None for an exact one.
        created: When the bank was built (ISO 8601, UTC).
    """

    def __init__(
        self,
        index: faiss.Index,
        metadata: pd.DataFrame,
        space_id: str,
        *,
        kind: IndexKind,
        params: Mapping[str, int] | None = None,
        recall: Mapping[str, float | str] | None = None,
        created: str | None = None,
        memory_mapped: bool = False,
    ) -> None:
        if index.ntotal != len(metadata):
            raise BankError(
                f"the index holds {index.ntotal} vectors but the metadata {len(metadata)} rows"
            )
        self.index = index
        self._metadata = metadata.reset_index(drop=True)
        self.space_id = _check_space_id(space_id)
        self.kind: IndexKind = kind
        self.params: dict[str, int] = dict(params or {})
        self.recall: dict[str, float | str] | None = None if recall is None else dict(recall)
        self.created = created or now_iso()
        # faiss aborts the process (a C++ assertion) when a memory-mapped index grows.
        self._memory_mapped = memory_mapped
        self._searcher: _Searcher | None = None

    # ----------------------------------------------------------------------- build

    @classmethod
    def build(
        cls,
        vectors: npt.ArrayLike,
        metadata: pd.DataFrame,
        space_id: str,
        kind: IndexKind | Literal["auto"] = "auto",
        *,
        hnsw_m: int | None = None,
        ef_construction: int | None = None,
        ef_search: int | None = None,
        nlist: int | None = None,
        pq_m: int | None = None,
        nprobe: int | None = None,
        k_factor: int | None = None,
        recall_k: int = 10,
        recall_queries: npt.ArrayLike | None = None,
        measure_recall: bool = True,
        seed: int = 0,
    ) -> AudioBank:
        """Index clip embeddings, and measure recall when the index is approximate.

        Args:
            vectors: ``(N, D)`` embeddings (numpy or CPU torch); normalised here, never in
                place.
            metadata: ``N`` rows, row ``i`` describing vector ``i``; needs a ``path`` column.
            space_id: The embedding space of ``vectors`` (queries must come from the same).
            kind: ``"flat"``, ``"ivf"``, ``"hnsw"``, ``"ivfpq"``, or ``"auto"`` (see
                :func:`choose_kind`: flat below :data:`AUTO_FLAT_LIMIT` vectors, else ivf).
            hnsw_m: HNSW links per node (default 16).
            ef_construction: HNSW build-time beam (default 40).
            ef_search: HNSW query-time beam (default 128).
            nlist: IVF lists (defaults: :func:`ivf_params`, :func:`ivfpq_params`).
            pq_m: PQ sub-quantisers (defaults as for ``nlist``).
            nprobe: IVF lists visited per query (defaults as for ``nlist``).
            k_factor: ``ivf`` only: candidates re-ranked per hit (default
                :data:`IVF_K_FACTOR`).
            recall_k: The ``k`` of the stored recall@k.
            recall_queries: Queries to measure recall with (best: drawn like real queries).
                Default: up to :data:`RECALL_QUERIES` of the bank's own vectors, which is
                slightly optimistic (each query's own vector is in the bank).
            measure_recall: Skip the measurement (one exact search of the queries) when the
                caller measures recall itself, e.g. a benchmark timing the build.
            seed: Seeds the training and recall samples, so a build is repeatable.

        Returns:
            The bank, with :attr:`recall` set for an approximate index.

        Raises:
            BankError: No vectors ("no vectors to index"), bad shapes, zero or non-finite
                vectors, metadata without ``path`` or of the wrong length, an unknown kind,
                or too few vectors to train IVF-PQ (``ivf`` and ``ivfpq``).
        """
        data = _normalised(vectors, "vectors")
        table = _check_metadata(metadata, len(data))
        count, dim = data.shape
        chosen = choose_kind(kind, count)
        rng = np.random.default_rng(seed)
        if chosen == "flat":
            index: faiss.Index = faiss.IndexFlatIP(dim)
            params: dict[str, int] = {}
        elif chosen == "hnsw":
            params = {
                "M": hnsw_m or HNSW_DEFAULTS["M"],
                "ef_construction": ef_construction or HNSW_DEFAULTS["ef_construction"],
                "ef_search": ef_search or HNSW_DEFAULTS["ef_search"],
            }
            index = _new_hnsw(dim, params)
        else:
            if chosen == "ivf":
                params = ivf_params(
                    count, dim, nlist=nlist, pq_m=pq_m, nprobe=nprobe, k_factor=k_factor
                )
                index = _new_ivf(dim, params)
            else:
                params = ivfpq_params(count, dim, nlist=nlist, pq_m=pq_m, nprobe=nprobe)
                index = _new_ivfpq(dim, params)
            sample = rng.choice(count, size=params["train_size"], replace=False)
            index.train(data[np.sort(sample)])
        index.add(data)
        bank = cls(index, table, space_id, kind=chosen, params=params)
        if chosen != "flat" and measure_recall:
            if recall_queries is None:
                picked = rng.choice(count, size=min(RECALL_QUERIES, count), replace=False)
                queries, source = data[np.sort(picked)], "bank sample"
            else:
                queries, source = _normalised(recall_queries, "recall_queries", dim=dim), "given"
            k = min(recall_k, count)
            bank.recall = {
                "k": k,
                "value": bank.recall_at_k(queries, k=k, vectors=data),
                "queries": len(queries),
                "query_source": source,
                "count": count,
            }
        return bank

    def add(self, vectors: npt.ArrayLike, metadata: pd.DataFrame) -> None:
        """Append clips: vectors are normalised and indexed, metadata rows appended.

        An IVF bank encodes new vectors with the quantisers trained at build time, so add
        data like what it was built on. A memory-mapped bank (an ``ivf`` one, loaded) is
        read into memory first, as the mapped file cannot grow. The stored recall stays the
        build-time figure (its ``count`` says on how many vectors it was measured).

        Raises:
            BankError: Bad vectors or metadata (as in :meth:`build`).
        """
        data = _normalised(vectors, "vectors", dim=self.dim)
        table = _check_metadata(metadata, len(data))
        if self._memory_mapped:  # a mapped index is read-only: copy it into memory first
            self.index = faiss.deserialize_index(faiss.serialize_index(self.index))
            _apply_search_params(self.index, self.params)
            self._memory_mapped = False
        self.index.add(data)
        self._searcher = None  # a GPU copy holds the old vectors
        self._metadata = pd.concat([self._metadata, table], ignore_index=True)

    # ----------------------------------------------------------------------- query

    def search(self, queries: npt.ArrayLike, k: int = 10) -> BankHits:
        """The ``k`` nearest clips of each query, by cosine similarity.

        The bank cannot tell which space ``queries`` come from: they must be embedded by the
        encoder or model head named by :attr:`space_id`.

        Args:
            queries: ``(Q, D)`` or ``(D,)`` embeddings; normalised here.
            k: Hits per query; at most the bank's size.

        Returns:
            Scores and bank rows, best first, and the metadata to look them up in.

        Raises:
            BankError: ``k < 1``, or queries of the wrong dimension, zero or non-finite.
        """
        if k < 1:
            raise BankError(f"k must be at least 1, got {k}")
        data = _normalised(queries, "queries", dim=self.dim, allow_1d=True)
        if self._searcher is None or self._searcher.source is not self.index:
            self._searcher = _Searcher(self.index)
        scores, indices = self._searcher.index.search(data, min(k, len(self)))
        return BankHits(scores=scores, indices=indices.astype(np.int64), metadata=self._metadata)

    def recall_at_k(
        self, queries: npt.ArrayLike, k: int = 10, vectors: npt.ArrayLike | None = None
    ) -> float:
        """Mean fraction of the exact top-``k`` that this index returns in its top-``k``.

        Approximate indexes trade recall for speed and memory; this measures how much, on the
        bank's own vectors, against a brute-force inner-product search.

        Args:
            queries: ``(Q, D)`` queries, ideally drawn like real ones.
            k: How many neighbours count.
            vectors: The bank's vectors, in bank order. Needed for IVF-PQ (it keeps only
                compressed codes); read back from the index otherwise.

        Returns:
            Recall@k in [0, 1]; 1.0 for a flat (exact) bank.

        Raises:
            BankError: IVF-PQ without ``vectors``, or vectors that do not match the bank.
        """
        if self.kind == "flat":
            return 1.0
        data = _normalised(queries, "queries", dim=self.dim, allow_1d=True)
        if vectors is None:
            if self.kind == "ivfpq":
                raise BankError(
                    "an IVF-PQ bank keeps only compressed codes; pass the original vectors= "
                    "to measure recall against exact search"
                )
            stored = (
                cast(faiss.IndexRefine, self.index).refine_index
                if self.kind == "ivf"
                else self.index
            )
            reference = stored.reconstruct_n(0, self.index.ntotal)
        else:
            reference = _normalised(vectors, "vectors", dim=self.dim)
            if len(reference) != len(self):
                raise BankError(f"{len(reference)} vectors given for a bank of {len(self)}")
        k = min(k, len(self))
        _, truth = faiss.knn(data, reference, k, metric=faiss.METRIC_INNER_PRODUCT)
        found = self.search(data, k).indices
        hits = sum(np.intersect1d(f[f >= 0], t).size for f, t in zip(found, truth, strict=True))
        return hits / (len(data) * k)

    # ----------------------------------------------------------------------- info

    def __len__(self) -> int:
        """The number of clips."""
        return int(self.index.ntotal)

    def __repr__(self) -> str:
        return (
            f"AudioBank(space_id={self.space_id!r}, kind={self.kind!r}, "
            f"count={len(self)}, dim={self.dim})"
        )

    @property
    def dim(self) -> int:
        """The vectors' dimension."""
        return int(self.index.d)

    @property
    def metadata(self) -> pd.DataFrame:
        """The clip table (row ``i`` ↔ vector ``i``).

        Do not reorder it: rows are matched to vectors by position.
        """
        return self._metadata

    def info(self) -> dict[str, object]:
        """What ``bank.json`` holds: enough to check a bank without opening its index."""
        return sidecar(
            "audio bank",
            format=FORMAT_VERSION if self.kind == "ivf" else 1,
            space_id=self.space_id,
            kind=self.kind,
            metric="inner_product",
            normalised=True,
            dim=self.dim,
            count=len(self),
            params=self.params,
            recall=self.recall,
            faiss_version=faiss.__version__,
            created=self.created,
        )

    # ----------------------------------------------------------------------- disk

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the bank to ``folder``, atomically: a reader sees the old bank or the new one.

        Everything is written into a hidden temporary folder beside ``folder``, then renamed
        over it (on Linux by an atomic exchange; elsewhere by two renames, undone if the
        second fails). A failure at any point leaves the previous bank as it was and no
        temporary folder behind.

        Args:
            folder: The bank folder; created, or replaced if it already holds a bank.

        Returns:
            The folder.

        Raises:
            BankError: ``folder`` is a file or a non-empty folder that is not a bank (never
                replaced: it may be anything), or the metadata cannot be stored as Parquet.
        """
        folder = check_destination(folder)
        with atomic_folder(folder) as staging:
            faiss.write_index(self.index, str(staging / INDEX_FILE))
            try:
                self._metadata.to_parquet(staging / METADATA_FILE, index=False)
            except (ImportError, TypeError, ValueError, NotImplementedError) as exc:
                raise BankError(f"the metadata cannot be stored as Parquet: {exc}", folder) from exc
            (staging / INFO_FILE).write_text(json.dumps(self.info(), indent=2, default=str) + "\n")
            for name in (INDEX_FILE, METADATA_FILE, INFO_FILE):
                fsync_file(staging / name)
        return folder

    @classmethod
    def load(
        cls,
        folder: str | os.PathLike[str],
        expected_space_id: str | None = None,
        *,
        memory_map: bool | None = None,
    ) -> AudioBank:
        """Open a saved bank, checking that its files agree with each other.

        Args:
            folder: A folder written by :meth:`save`.
            expected_space_id: The space the caller's queries come from; checked before the
                index is read, because searching a bank of another space silently returns
                meaningless neighbours.
            memory_map: Map the index's float vectors from the file instead of reading them
                (faiss ``IO_FLAG_MMAP_IFC``): the process then holds only what the vectors do
                not, and the kernel pages in the rows a search touches. Default: for ``ivf``
                banks, whose re-ranking touches a few rows per query.

        Returns:
            The bank, with the saved search parameters (``ef_search``, ``nprobe``) in force.

        Raises:
            BankError: The folder or one of its files is missing, unreadable or corrupt; the
                files disagree (dimension, vector count vs metadata rows); the bank is empty;
                or its ``space_id`` is not ``expected_space_id`` (the message names both).
        """
        folder = Path(folder)
        if not folder.exists():
            raise BankError("audio bank not found", folder)
        if not folder.is_dir():
            raise BankError("is not an audio bank folder", folder)
        info = read_info(folder, INDEX_KINDS)
        space_id = info["space_id"]
        if expected_space_id is not None and space_id != expected_space_id:
            raise BankError(
                f"the bank holds vectors of embedding space {space_id!r}, but queries will come "
                f"from {expected_space_id!r}; neighbours across spaces are meaningless — build "
                f"a bank from {expected_space_id!r} embeddings or query with {space_id!r}",
                folder,
            )
        if info["count"] == 0:
            raise BankError("the bank is empty (no vectors to index)", folder)
        mapped = info["kind"] == "ivf" if memory_map is None else memory_map
        index = _read_index(folder / INDEX_FILE, memory_map=mapped)
        metadata = _read_metadata(folder / METADATA_FILE)
        problems = []
        if index.d != info["dim"]:
            problems.append(f"index dimension {index.d} but {INFO_FILE} says {info['dim']}")
        if index.ntotal != info["count"]:
            problems.append(
                f"index holds {index.ntotal} vectors but {INFO_FILE} says {info['count']}"
            )
        if len(metadata) != index.ntotal:
            problems.append(f"{METADATA_FILE} has {len(metadata)} rows for {index.ntotal} vectors")
        if index.metric_type != faiss.METRIC_INNER_PRODUCT:
            problems.append("index metric is not inner product")
        if problems:
            raise BankError("inconsistent bank files: " + "; ".join(problems), folder)
        params = dict(info.get("params") or {})
        _apply_search_params(index, params)
        return cls(
            index,
            metadata,
            space_id,
            kind=info["kind"],
            params=params,
            recall=info.get("recall"),
            created=info.get("created"),
            memory_mapped=mapped,
        )


# --------------------------------------------------------------------------- helpers


def ivfpq_params(
    count: int,
    dim: int,
    *,
    nlist: int | None = None,
    pq_m: int | None = None,
    nprobe: int | None = None,
) -> dict[str, int]:
    """IVF-PQ parameters sized from the number and dimension of vectors.

    ``nlist`` ≈ √N keeps lists ~√N long, so a query scans ``nprobe``·√N codes, and k-means
    training on 2 cores stays in seconds; at least 39 training vectors per list. ``m`` gives
    each sub-quantiser ~4 dimensions (D/4 bytes per vector, 1/16 of float32): on real-like
    audio embeddings, whose near neighbours differ by a few thousandths of cosine, 8
    dimensions per byte lost a quarter of the recall@10 that 4 keep. Training uses at most 64
    vectors per list (and enough for the PQ's 256 centroids): more costs time and barely moves
    the centroids. ``nprobe`` = nlist/64 (at least 8): on the benchmark's 1M real-like bank
    recall@10 was the same from 4 to 64 probes (the PQ, not the lists, limits it) while search
    time grew ninefold; 1/64 keeps a margin for less clustered data.

    PQ codes cost recall: ~0.55 recall@10 on real-like embeddings whose near neighbours are
    a few thousandths of cosine apart (HNSW: 0.94). Use IVF-PQ when float vectors do not fit.

    Raises:
        BankError: Fewer than :data:`IVFPQ_MIN_VECTORS` vectors, or ``pq_m`` not dividing D.
    """
    if count < IVFPQ_MIN_VECTORS:
        raise BankError(
            f"IVF-PQ needs at least {IVFPQ_MIN_VECTORS} vectors to train its quantisers "
            f"(256 centroids × 39 points), got {count}; use kind='flat' (exact) or 'hnsw'"
        )
    if nlist is None:
        nlist = _nearest_power_of_two(math.sqrt(count), count)
    if pq_m is None:
        pq_m = _largest_divisor(dim, dim // 4)
    if dim % pq_m:
        raise BankError(f"pq_m={pq_m} does not divide the dimension {dim}")
    if nprobe is None:
        nprobe = min(nlist, max(8, nlist // 64))
    train_size = min(count, max(64 * nlist, IVFPQ_MIN_VECTORS))
    return {"nlist": nlist, "m": pq_m, "nbits": 8, "nprobe": nprobe, "train_size": train_size}


def ivf_params(
    count: int,
    dim: int,
    *,
    nlist: int | None = None,
    pq_m: int | None = None,
    nprobe: int | None = None,
    k_factor: int | None = None,
) -> dict[str, int]:
    """Parameters of the ``ivf`` kind: IVF-PQ candidates, re-ranked exactly.

    The PQ only has to put each query's true neighbours among its ``k_factor·k`` best
    candidates, not order them (the exact re-ranking does), so it can be coarse: one byte per
    8 dimensions (``m`` = the largest divisor of D ≤ D/8) trains 4× faster than ``ivfpq``'s
    one per 4 and scans half the bytes. ``nlist`` ≈ 2√N keeps each probe to ~√N/2 codes,
    and the coarse quantiser's share of a query (nlist·D multiply-adds) small. At most 39
    training vectors per list, as faiss advises: the build is mostly k-means. ``nprobe`` and
    ``k_factor`` were tuned on the benchmark's real-like banks (benchmarks/bench_bank.py),
    whose near neighbours differ by a few thousandths of cosine: at 1M, nprobe 4 / 8 with
    k_factor 10 gave recall@10 0.966 / 0.988, and k_factor 5 lost 0.02-0.04.

    Raises:
        BankError: Fewer than :data:`IVFPQ_MIN_VECTORS` vectors, or ``pq_m`` not dividing D.
    """
    if nlist is None:
        nlist = _nearest_power_of_two(2 * math.sqrt(count), count)
    if pq_m is None:
        pq_m = _largest_divisor(dim, dim // 8)
    nprobe = nprobe or min(nlist, IVF_NPROBE)
    params = ivfpq_params(count, dim, nlist=nlist, pq_m=pq_m, nprobe=nprobe)
    params["k_factor"] = k_factor or IVF_K_FACTOR
    params["train_size"] = min(count, max(39 * nlist, IVFPQ_MIN_VECTORS))
    return params


def choose_kind(kind: str, count: int) -> IndexKind:
    """The index kind a bank of ``count`` vectors gets; ``"auto"`` decides by size.

    The rule: ``flat`` (exact) below :data:`AUTO_FLAT_LIMIT` vectors, ``ivf`` from there on.
    Below the limit an exact scan takes a few ms a query; above it ``ivf`` keeps recall@10
    ≥ 0.95 with exact scores (0.989 on the benchmark's 1M real-like bank, where HNSW reached
    0.939) and holds the float vectors on disk, not in memory (6.4 % of flat's memory at 1M;
    benchmarks/results/bank_2026-12-02.txt). It builds in about HNSW's time on 2 cores.
    HNSW and IVF-PQ are only used when asked for. A collection too large for one machine is
    sharded (:mod:`geosound.retrieval.shards`), and this rule applies within each shard.

    Raises:
        BankError: An unknown kind.
    """
    if kind == "auto":
        return "flat" if count < AUTO_FLAT_LIMIT else "ivf"
    if kind not in INDEX_KINDS:
        raise BankError(
            f"unknown index kind {kind!r}; choose one of auto, {', '.join(INDEX_KINDS)}"
        )
    return cast(IndexKind, kind)


def _nearest_power_of_two(target: float, count: int) -> int:
    """The power of two nearest ``target``, halved until each list gets ≥ 39 vectors."""
    nlist = 2 ** round(math.log2(max(1.0, target)))
    while nlist > 1 and count / nlist < 39:
        nlist //= 2
    return nlist


def _largest_divisor(dim: int, at_most: int) -> int:
    return max(m for m in range(1, max(1, at_most) + 1) if dim % m == 0)


def _new_ivf(dim: int, params: Mapping[str, int]) -> faiss.Index:
    index = faiss.IndexRefineFlat(_new_ivfpq(dim, params))
    index.k_factor = float(params["k_factor"])
    return index


def _new_hnsw(dim: int, params: Mapping[str, int]) -> faiss.Index:
    index = faiss.IndexHNSWFlat(dim, int(params["M"]), faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = int(params["ef_construction"])
    index.hnsw.efSearch = int(params["ef_search"])
    return index


def _new_ivfpq(dim: int, params: Mapping[str, int]) -> faiss.Index:
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFPQ(
        quantizer,
        dim,
        int(params["nlist"]),
        int(params["m"]),
        int(params["nbits"]),
        faiss.METRIC_INNER_PRODUCT,
    )
    index.nprobe = int(params["nprobe"])
    # The PQ's k-means dominates training time (m sub-spaces × iterations × points): on the
    # benchmark's 100k real-like set, 10 iterations gave the recall@10 of faiss's default 25
    # (0.539 vs 0.540) in 40 % of the time; 64 points per centroid is ample for 256 centroids.
    index.pq.cp.niter = PQ_TRAIN_ITERATIONS
    index.pq.cp.max_points_per_centroid = 64
    return index


def _apply_search_params(index: faiss.Index, params: Mapping[str, int]) -> None:
    """Re-apply query-time parameters after reading an index (faiss may not store them all)."""
    if "ef_search" in params and hasattr(index, "hnsw"):
        index.hnsw.efSearch = int(params["ef_search"])
    if isinstance(index, faiss.IndexRefine):
        index.k_factor = float(params.get("k_factor", index.k_factor))
        index = faiss.downcast_index(index.base_index)
    if "nprobe" in params and hasattr(index, "nprobe"):
        index.nprobe = int(params["nprobe"])


class _Searcher:
    """The index a bank's searches run on: a GPU copy where asked for and possible, else its own.

    A GPU is used only when the process was asked for one (``--device cuda``,
    ``GEOSOUND_DEVICE``) and faiss has GPUs (the ``gpu`` extra, ``faiss.get_num_gpus()``);
    kinds faiss cannot run on a GPU (``hnsw``; ``ivf``, whose exact re-ranking is a CPU index)
    stay on the CPU. The copy is made on the first search (search parameters such as
    ``nprobe`` are copied then), and its hits are bank rows as on the CPU, with scores to
    float rounding.
    """

    def __init__(self, index: faiss.Index) -> None:
        self.source = index
        self.index = index
        self.gpu: int | None = None
        self._resources: Any = None  # kept alive as long as the GPU index that uses it
        number = requested_cuda_index()
        if number is None or not hasattr(faiss, "StandardGpuResources"):
            return
        if faiss.get_num_gpus() <= number:
            return
        try:
            resources = faiss.StandardGpuResources()
            self.index = faiss.index_cpu_to_gpu(resources, number, index)
        except RuntimeError:  # "not implemented on GPU"
            return
        self._resources, self.gpu = resources, number


def _check_space_id(space_id: object) -> str:
    if not isinstance(space_id, str) or not space_id.strip():
        raise BankError(f"space_id must be a non-empty string such as 'aisfx@1', got {space_id!r}")
    return space_id


def _normalised(
    values: npt.ArrayLike, what: str, dim: int | None = None, allow_1d: bool = False
) -> np.ndarray:
    """A C-contiguous float32 copy of ``values`` with unit rows, after checking it.

    Zero rows cannot be normalised and NaN rows poison an index silently, so both are errors
    naming the first bad row.
    """
    if hasattr(values, "detach"):  # a torch tensor
        values = values.detach().cpu().numpy()
    data = np.array(values, dtype=np.float32, copy=True, order="C")
    if data.ndim == 1 and allow_1d:
        data = data.reshape(1, -1)
    if data.ndim != 2:
        raise BankError(f"{what} must be a 2-D (count, dim) array, got shape {data.shape}")
    if data.shape[0] == 0:
        raise BankError("no vectors to index" if what == "vectors" else f"no {what} given")
    if data.shape[1] == 0:
        raise BankError(f"{what} have dimension 0")
    if dim is not None and data.shape[1] != dim:
        raise BankError(f"{what} have dimension {data.shape[1]}, the bank has {dim}")
    finite = np.isfinite(data).all(axis=1)
    if not finite.all():
        raise BankError(f"{what} row {int(np.argmin(finite))} has NaN or infinite values")
    norms = np.linalg.norm(data, axis=1)
    if (norms == 0).any():
        raise BankError(f"{what} row {int(np.argmin(norms))} is all zeros (cannot be normalised)")
    faiss.normalize_L2(data)
    return data


def _check_metadata(metadata: object, count: int) -> pd.DataFrame:
    if not isinstance(metadata, pd.DataFrame):
        raise BankError(f"metadata must be a pandas DataFrame, got {type(metadata).__name__}")
    if "path" not in metadata.columns:
        raise BankError(
            f"metadata lacks a 'path' column (has: {', '.join(map(str, metadata.columns))})"
        )
    if len(metadata) != count:
        raise BankError(f"metadata has {len(metadata)} rows for {count} vectors")
    return metadata.reset_index(drop=True)


def check_destination(folder: str | os.PathLike[str]) -> Path:
    """``folder``, if a bank may be written there: absent, empty, or a bank already.

    Raises:
        BankError: ``folder`` is a file or a non-empty folder that is not a bank (never
            replaced: it may be anything).
    """
    folder = Path(folder)
    if folder.exists():
        if not folder.is_dir():
            raise BankError("exists and is not a folder; not replacing it", folder)
        if not (folder / INFO_FILE).is_file() and any(folder.iterdir()):
            raise BankError(
                f"is a non-empty folder without {INFO_FILE} (not an audio bank); not replacing it",
                folder,
            )
    return folder


def read_info(folder: Path, kinds: tuple[str, ...]) -> dict[str, Any]:  # checked key by key
    """A bank folder's ``bank.json``, checked, for a bank of one of ``kinds``.

    Raises:
        BankError: The file is missing, unreadable, incomplete, of a newer format, or
            describes a bank of another kind (a sharded bank opened as one bank, or the
            other way round: the message says which opener to use).
    """
    path = folder / INFO_FILE
    if not path.is_file():
        raise BankError(f"not an audio bank: {INFO_FILE} is missing", folder)
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BankError(f"unreadable or corrupt: {exc}", path) from exc
    if not isinstance(info, dict):
        raise BankError("corrupt: not a JSON object", path)
    missing = [key for key in ("space_id", "kind", "dim", "count") if key not in info]
    if missing:
        raise BankError(f"corrupt: lacks {', '.join(missing)}", path)
    numbers = ("dim", "count", "format")
    if not all(isinstance(info.get(key, 1), int) for key in numbers):
        raise BankError("corrupt: dim, count and format must be integers", path)
    if not isinstance(info["space_id"], str):
        raise BankError("corrupt: space_id must be a string", path)
    if info.get("format", 1) > FORMAT_VERSION:
        raise BankError(
            f"written by a newer geosound (bank format {info['format']}, this one reads "
            f"{FORMAT_VERSION}); upgrade geosound",
            path,
        )
    if info["kind"] not in kinds:
        if info["kind"] == "sharded":
            raise BankError(
                "is a sharded bank (several shard folders); open it with ShardedBank.load or "
                "geosound.retrieval.open_bank",
                folder,
            )
        if info["kind"] in INDEX_KINDS:
            raise BankError(f"is a single {info['kind']} bank, not a sharded one", folder)
        raise BankError(f"corrupt: unknown index kind {info['kind']!r}", path)
    return info


def _read_index(path: Path, memory_map: bool = False) -> faiss.Index:
    if not path.is_file():
        raise BankError("index file is missing", path)
    try:
        return faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC if memory_map else 0)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown error"
        raise BankError(f"index file is corrupt or truncated ({reason})", path) from exc


def _read_metadata(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise BankError("metadata file is missing", path)
    try:
        return pd.read_parquet(path)
    except ImportError as exc:
        raise BankError(f"reading Parquet needs a working pyarrow: {exc}", path) from exc
    except (OSError, ValueError) as exc:
        raise BankError(f"metadata file is corrupt or unreadable ({exc})", path) from exc
