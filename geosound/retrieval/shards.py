"""Sharded audio banks: several bank folders of one embedding space, searched as one.

A collection can outgrow one machine: its index does not fit in memory, or takes too long to
build in one go, or is meant to be searched by several machines. A sharded bank splits it
into shards, each an ordinary :class:`~geosound.retrieval.bank.AudioBank` folder (of the
kind ``kind="auto"`` picks for its size), and answers a query by asking every shard for its
top ``k`` and merging them. The merge is exact: the global top ``k`` is among the union of
the shards' top ``k``, so a sharded search returns what the same index over the whole
collection would (identical hits for flat shards; for approximate shards, each shard's own
approximation). Shards are searched one after the other in this process, or as tasks on a
Dask cluster (``client=``), where each worker opens the shards it is given once and keeps
them.

On disk a sharded bank is a folder holding ``bank.json`` (``kind: "sharded"``, ``space_id``,
``dim``, ``count`` and one entry per shard: its folder name and vector count) and the shard
folders ``shard-00000``, ``shard-00001``, … Global row ``i`` is row ``i - offset`` of the
shard whose rows start at ``offset``; the shards' metadata tables, in order, are the bank's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from geosound.atomic import atomic_folder, fsync_file
from geosound.retrieval.bank import (
    FORMAT_VERSION,
    INDEX_KINDS,
    INFO_FILE,
    METADATA_FILE,
    AudioBank,
    BankError,
    BankHits,
    IndexKind,
    _normalised,
    _read_metadata,
    check_destination,
    read_info,
)
from geosound.sidecar import now_iso, sidecar

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["SHARD_PREFIX", "ShardedBank", "merge_top_k", "open_bank", "search_shard"]

SHARD_PREFIX = "shard-"

BankPart = AudioBank | tuple[npt.ArrayLike, pd.DataFrame]
"""What a shard is built from: a bank, or ``(vectors, metadata)`` to build one from."""


class ShardedBank:
    """Several bank folders of one embedding space, searched as one bank.

    Build one with :meth:`build`, open one with :meth:`load`. It answers :meth:`search` like
    an :class:`~geosound.retrieval.bank.AudioBank` (same :class:`BankHits`, global rows), so a
    map or the CLI can take either (:func:`open_bank`).

    Attributes:
        folder: The sharded bank's folder.
        space_id: The embedding space of every shard's vectors.
        kind: Always ``"sharded"``.
        shards: Each shard's folder, in row order.
        counts: Each shard's number of vectors.
        created: When the bank was built (ISO 8601, UTC).
    """

    kind: Literal["sharded"] = "sharded"

    def __init__(
        self,
        folder: Path,
        space_id: str,
        dim: int,
        shards: Sequence[Path],
        counts: Sequence[int],
        *,
        keep_open: bool = True,
        created: str | None = None,
    ) -> None:
        self.folder = folder
        self.space_id = space_id
        self._dim = dim
        self.shards = list(shards)
        self.counts = [int(c) for c in counts]
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)
        self.created = created or now_iso()
        self._keep_open = keep_open
        self._open: dict[int, AudioBank] = {}
        self._metadata: pd.DataFrame | None = None

    # ----------------------------------------------------------------------- build

    @classmethod
    def build(
        cls,
        folder: str | os.PathLike[str],
        parts: Iterable[BankPart],
        space_id: str,
        kind: IndexKind | Literal["auto"] = "auto",
        **options: Any,
    ) -> ShardedBank:
        """Write a sharded bank, one shard per part, holding one shard in memory at a time.

        Everything is written into a staging folder beside ``folder`` and renamed into place
        at the end, so a failure leaves no partial bank (and any previous bank as it was).

        Args:
            folder: The sharded bank's folder; created, or replaced if it holds a bank.
            parts: Each shard's content, in row order: an :class:`AudioBank` (saved as is)
                or ``(vectors, metadata)``, built with :meth:`AudioBank.build`. An iterable,
                so parts can be produced one by one (e.g. embedded batch by batch).
            space_id: The embedding space of every part.
            kind: The index kind of shards built here (``"auto"``: by each shard's size).
            **options: Further :meth:`AudioBank.build` arguments (``nprobe``, ``seed``, …).

        Returns:
            The sharded bank, opened.

        Raises:
            BankError: No parts; a part of another embedding space or dimension than the
                first (named by its position); ``folder`` is not replaceable; or anything
                :meth:`AudioBank.build` refuses.
        """
        folder = check_destination(folder)
        dim: int | None = None
        counts: list[int] = []
        names: list[str] = []
        with atomic_folder(folder) as staging:
            for number, part in enumerate(parts):
                if isinstance(part, AudioBank):
                    bank = part
                else:
                    vectors, metadata = part
                    bank = AudioBank.build(vectors, metadata, space_id, kind, **options)
                if bank.space_id != space_id:
                    raise BankError(
                        f"shard {number} holds vectors of embedding space {bank.space_id!r}, "
                        f"the sharded bank {space_id!r}; one bank holds one space",
                        folder,
                    )
                if dim is None:
                    dim = bank.dim
                elif bank.dim != dim:
                    raise BankError(
                        f"shard {number} has dimension {bank.dim}, shard 0 has {dim}", folder
                    )
                name = f"{SHARD_PREFIX}{number:05d}"
                bank.save(staging / name)
                names.append(name)
                counts.append(len(bank))
                del bank
            if dim is None:
                raise BankError("no shards to write (no vectors to index)", folder)
            created = now_iso()
            info = _sharded_info(space_id, dim, names, counts, created)
            (staging / INFO_FILE).write_text(json.dumps(info, indent=2, default=str) + "\n")
            fsync_file(staging / INFO_FILE)
        return cls(folder, space_id, dim, [folder / n for n in names], counts, created=created)

    # ----------------------------------------------------------------------- open

    @classmethod
    def load(
        cls,
        folder: str | os.PathLike[str],
        expected_space_id: str | None = None,
        *,
        keep_open: bool = True,
    ) -> ShardedBank:
        """Open a sharded bank, checking that every shard agrees with it.

        Only the ``bank.json`` files are read here; a shard's index is opened when it is
        first searched, by this process or by the Dask worker that searches it.

        Args:
            folder: A folder written by :meth:`build`.
            expected_space_id: The space the caller's queries come from (checked first).
            keep_open: Keep each shard open after searching it (fast repeated searches), or
                close it again, so that at most one shard's index is in memory at a time.

        Returns:
            The bank.

        Raises:
            BankError: The folder is missing or not a sharded bank; a shard folder is
                missing or is not a bank; a shard's space, dimension or count disagrees with
                the sharded bank's ``bank.json`` (the message names the shard folder); or its
                space is not ``expected_space_id``.
        """
        folder = Path(folder)
        if not folder.exists():
            raise BankError("audio bank not found", folder)
        if not folder.is_dir():
            raise BankError("is not an audio bank folder", folder)
        info = read_info(folder, ("sharded",))
        space_id, dim = info["space_id"], info["dim"]
        if expected_space_id is not None and space_id != expected_space_id:
            raise BankError(
                f"the bank holds vectors of embedding space {space_id!r}, but queries will come "
                f"from {expected_space_id!r}; neighbours across spaces are meaningless",
                folder,
            )
        entries = info.get("shards")
        if not isinstance(entries, list) or not entries:
            raise BankError("corrupt: lists no shards", folder / INFO_FILE)
        shards = [_shard_folder(folder, entry) for entry in entries]
        counts = [
            _check_shard(shard, space_id, dim, entry.get("count"))
            for shard, entry in zip(shards, entries, strict=True)
        ]
        if sum(counts) != info["count"]:
            raise BankError(
                f"corrupt: the shards hold {sum(counts)} vectors, not {info['count']}",
                folder / INFO_FILE,
            )
        return cls(
            folder, space_id, dim, shards, counts, keep_open=keep_open, created=info.get("created")
        )

    # ----------------------------------------------------------------------- query

    def search(self, queries: npt.ArrayLike, k: int = 10, client: Client | None = None) -> BankHits:
        """The ``k`` nearest clips of each query over all shards, merged exactly.

        Args:
            queries: ``(Q, D)`` or ``(D,)`` embeddings of this bank's space.
            k: Hits per query; at most the bank's size.
            client: A ``distributed.Client``: each shard is searched by one task on its
                cluster (shard folders must be readable at the same path by the workers).
                Without one, the shards are searched here, one after the other.

        Returns:
            Global rows and scores, best first, and the bank's metadata.

        Raises:
            BankError: ``k < 1``, or queries of the wrong dimension, zero or non-finite.
        """
        if k < 1:
            raise BankError(f"k must be at least 1, got {k}")
        data = _normalised(queries, "queries", dim=self.dim, allow_1d=True)
        k = min(k, len(self))
        if client is None:
            parts = [self._search_here(number, data, k) for number in range(len(self.shards))]
        else:
            # A key of its own (hash=False): the same queries scattered again by the next
            # search would otherwise share the key this search's future releases.
            shared = client.scatter(data, broadcast=True, hash=False)
            futures = [
                client.submit(search_shard, str(shard), shared, k, pure=False)
                for shard in self.shards
            ]
            parts = client.gather(futures)
        scores, indices = merge_top_k(parts, self.offsets, k)
        return BankHits(scores=scores, indices=indices, metadata=self.metadata)

    def _search_here(
        self, number: int, queries: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        bank = self._open.get(number) or AudioBank.load(self.shards[number], self.space_id)
        if self._keep_open:
            self._open[number] = bank
        hits = bank.search(queries, k)
        return hits.scores, hits.indices

    # ----------------------------------------------------------------------- info

    def __len__(self) -> int:
        """The number of clips in all shards."""
        return int(sum(self.counts))

    def __repr__(self) -> str:
        return (
            f"ShardedBank(space_id={self.space_id!r}, shards={len(self.shards)}, "
            f"count={len(self)}, dim={self.dim})"
        )

    @property
    def dim(self) -> int:
        """The vectors' dimension."""
        return self._dim

    @property
    def metadata(self) -> pd.DataFrame:
        """The shards' metadata tables, concatenated in row order (read on first use)."""
        if self._metadata is None:
            tables = [_read_metadata(shard / METADATA_FILE) for shard in self.shards]
            self._metadata = pd.concat(tables, ignore_index=True)
        return self._metadata


# --------------------------------------------------------------------------- helpers


_WORKER_SHARDS: dict[tuple[str, int], AudioBank] = {}
"""Shards a Dask worker process has opened, by folder and ``bank.json`` mtime: a worker
searches the same shard again without reading it again, and a rebuilt shard is reopened."""


def search_shard(folder: str, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """One shard's top ``k`` (scores, local rows): the task a Dask worker runs.

    Args:
        folder: The shard's bank folder.
        queries: ``(Q, D)`` normalised queries.
        k: Hits per query.
    """
    key = (folder, os.stat(Path(folder) / INFO_FILE).st_mtime_ns)
    bank = _WORKER_SHARDS.get(key)
    if bank is None:
        bank = _WORKER_SHARDS[key] = AudioBank.load(folder)
    hits = bank.search(queries, k)
    return hits.scores, hits.indices


def _shard_folder(folder: Path, entry: object) -> Path:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("folder"), str):
        raise BankError("corrupt: a shard entry lacks its folder", folder / INFO_FILE)
    return folder / Path(entry["folder"]).name  # never outside the bank's folder


def _check_shard(shard: Path, space_id: str, dim: int, listed: object) -> int:
    """The shard's vector count, after checking that it agrees with its sharded bank."""
    if not shard.is_dir():
        raise BankError("shard folder is missing", shard)
    info = read_info(shard, INDEX_KINDS)
    problems = []
    if info["space_id"] != space_id:
        problems.append(f"holds embedding space {info['space_id']!r}, the bank {space_id!r}")
    if info["dim"] != dim:
        problems.append(f"has dimension {info['dim']}, the bank {dim}")
    if info["count"] != listed:
        problems.append(f"holds {info['count']} vectors, the bank lists {listed}")
    if problems:
        raise BankError("shard disagrees with its bank: " + "; ".join(problems), shard)
    return int(info["count"])


def merge_top_k(
    parts: Sequence[tuple[np.ndarray, np.ndarray]], offsets: npt.ArrayLike, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of each query over every shard's top ``k``.

    Args:
        parts: Each shard's ``(scores, local rows)``, ``(Q, k_s)``; row ``-1`` is no hit.
        offsets: Each shard's first global row.
        k: Hits per query to keep.

    Returns:
        ``(scores, global rows)``, ``(Q, k)``, best first; ties keep shard order (lower
        global rows first), as one index over all rows would; ``-1`` rows where all shards
        together found fewer than ``k``.
    """
    starts = np.asarray(offsets, dtype=np.int64)
    scores = np.concatenate([s for s, _ in parts], axis=1).astype(np.float32)
    rows = np.concatenate(
        [np.where(r >= 0, r + start, -1) for (_, r), start in zip(parts, starts, strict=True)],
        axis=1,
    )
    ranked = np.where(rows >= 0, scores, -np.inf)
    order = np.argsort(-ranked, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(rows, order, 1)


Bank = AudioBank | ShardedBank
"""Either layout of a bank: both search alike and carry ``metadata`` and ``space_id``."""


def open_bank(folder: str | os.PathLike[str], expected_space_id: str | None = None) -> Bank:
    """Open a bank folder of either layout: one index, or shards.

    Raises:
        BankError: As :meth:`AudioBank.load` or :meth:`ShardedBank.load`.
    """
    folder = Path(folder)
    if _is_sharded(folder):
        return ShardedBank.load(folder, expected_space_id)
    return AudioBank.load(folder, expected_space_id)


def _is_sharded(folder: Path) -> bool:
    try:
        return json.loads((folder / INFO_FILE).read_text()).get("kind") == "sharded"
    except (OSError, ValueError, AttributeError):
        return False  # AudioBank.load says what is wrong


def _sharded_info(
    space_id: str, dim: int, names: Sequence[str], counts: Sequence[int], created: str
) -> dict[str, object]:
    import faiss

    return sidecar(
        "audio bank",
        format=FORMAT_VERSION,
        space_id=space_id,
        kind="sharded",
        metric="inner_product",
        normalised=True,
        dim=dim,
        count=int(sum(counts)),
        shards=[{"folder": n, "count": int(c)} for n, c in zip(names, counts, strict=True)],
        faiss_version=faiss.__version__,
        created=created,
    )
