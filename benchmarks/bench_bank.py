"""Benchmark: search an audio bank with faiss, next to brute-force numpy and the machine's limit.

Why this exists: maps retrieve real recordings from an :class:`~geosound.retrieval.AudioBank`
of 10⁵–10⁶ clips, and the bank offers exact (flat) and approximate (IVF re-ranked, HNSW,
IVF-PQ) indexes. This measures what each buys — queries/s against the obvious numpy way,
recall@10 against exact search, build time, and the memory a loaded bank holds — side by side
in one run, with the machine's float32 matrix-product speed as the ceiling that exact search
cannot beat (benchmarks/README.md: ratios, not absolute numbers).

**Real-like vectors.** Isotropic Gaussian noise is the easiest case for approximate search
and looks nothing like audio embeddings (aiSFX vectors are non-negative and sit in a narrow
cone: two random ESC-50 dev clips have cosine ~0.85, a clip and its nearest other clip
~0.95, and ~20 PCA directions carry most of the variance). So the bank is grown from real
embeddings:

1. The ESC-50 dev clips (168, ``load_esc50``) are embedded with aiSFX and L2-normalised; the
   ``(168, 512)`` array is cached in the work folder (keyed by clip names and encoder id).
2. A PCA of those vectors gives the real data's covariance (mean removed; rank ≤ 167), plus
   an isotropic floor holding :data:`ISO_FLOOR` of the total variance, so generated vectors
   are not confined to the 167 sampled directions.
3. **Sub-centres** (one per :data:`CLUSTER_SIZE` bank vectors, like the takes of one source
   or one recorder's site): a real vector chosen at random, plus noise drawn from that
   covariance scaled by :data:`CENTRE_SCALE`, renormalised.
4. **Bank vectors**: a random sub-centre plus noise from the same covariance scaled by
   :data:`POINT_SCALE`, renormalised. **Queries** are drawn the same way, independently, from
   the bank's sub-centres, so each has genuine near neighbours (a place whose sounds the bank
   holds) without being one of the bank's vectors.

The report prints the resulting similarity structure next to the real clips' (median cosine
of each query's top-1 and top-10 neighbour), so the reader can judge the likeness.
Without the dev data the same generator is fitted to a **synthetic** anchor set (32 classes
around a shared mean, power-law spectrum) and every report line says SYNTHETIC.

**Methods** (k = 10, the same queries for all):

* ``numpy``  — normalise the queries, ``queries @ bank.T`` in blocks of 256 queries, then
  ``argpartition`` top-10 per row and a sort of those 10: what one writes without faiss.
* ``flat``   — ``AudioBank`` with an exact ``IndexFlatIP`` (its ``search``, normalisation
  included). Exact: its results are the reference for recall.
* ``ivf``    — ``AudioBank`` kind ``ivf``: IVF-PQ candidates re-ranked exactly (faiss
  ``IndexRefineFlat``); the loaded bank memory-maps its float vectors.
* ``ivfflat`` — for comparison, not a bank kind: faiss ``IndexIVFFlat`` with the same lists and
  ``nprobe`` as ``ivf`` (the other way to exact scores: float vectors in the lists).
* ``hnsw``   — ``AudioBank`` kind ``hnsw`` (graph; build time reported).
* ``ivfpq``  — ``AudioBank`` kind ``ivfpq`` (inverted lists + product quantisation; training
  time included in the build time).
* ``limit``  — numpy float32 matrix product of the search's shape (1000 × 512 · 512 × 32768
  into a preallocated output), timed in rounds interleaved with the two exact searches (a
  shared machine drifts), best kept: the FLOP rate no exact search can beat, as exact search
  is that product plus a top-k. ``vs limit`` = (2·Q·N·D / search time) / that rate.

**Memory** (``mem MB``): each bank is saved, then loaded and searched once by a fresh Python
process, which reports how much its anonymous resident memory (``RssAnon``: what the process
itself holds, the index) and its resident file pages (``RssFile``: pages of memory-mapped
files, shared page cache the kernel can drop) grew. ``mem/flat`` compares the anonymous part
with the flat bank's. ``mapped MB`` is the file pages the search touched; for ``ivf`` that is
the page cache of its float vectors (re-ranking reads ~k_factor·k rows a query, and the kernel's
read-around brings in more), which the kernel evicts under pressure at the cost of disk reads.

Run ``python benchmarks/bench_bank.py --help``; benchmarks/README.md explains the numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import _common
import numpy as np

K = 10
SEED = 20261123
CLUSTER_SIZE = 50
"""Bank vectors per sub-centre (takes of one source, clips of one site)."""
CENTRE_SCALE = 0.5
"""Sub-centre spread around its real parent, as a multiple of the real data's covariance
(sub-centres of one parent end up at cosine ~0.96, like clips of one ESC-50 class)."""
POINT_SCALE = 0.3
"""Bank-vector spread around its sub-centre (two takes of one source: cosine ~0.98)."""
ISO_FLOOR = 0.1
"""Share of the noise variance spread evenly over all dimensions."""
QUERY_BLOCK = 256
"""Queries per numpy matrix product (bounds its (block, N) score matrix: 1 GB at N = 1M)."""
LIMIT_SHAPE = (1000, 512, 32768)
"""(queries, dim, bank vectors) of the matrix product timed as the machine's limit."""
SPACE_ID = "bench:real-like-aisfx@1"
TABLE_HEADER = (
    f"{'N':>8} {'method':<7} {'build s':>8} {'search s':>9} {'queries/s':>10} "
    f"{'vs numpy':>9} {'recall@10':>10} {'GFLOP/s':>8} {'vs limit':>9} {'mem MB':>8} "
    f"{'mem/flat':>8} {'mapped MB':>9}"
)
MEMORY_PROBE = """
import sys, time
import numpy as np
def rss():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return [int(fields[k].split()[0]) / 1024 for k in ("RssAnon", "RssFile")]
queries = np.load(sys.argv[2])
import faiss
from geosound.retrieval import AudioBank
faiss.omp_set_num_threads(faiss.omp_get_max_threads())
before = rss()
if sys.argv[1].endswith(".faiss"):
    index = faiss.read_index(sys.argv[1]); index.nprobe = int(sys.argv[3]); search = index.search
else:
    bank = AudioBank.load(sys.argv[1]); search = bank.search
search(queries[:10], 10)
start = time.perf_counter(); search(queries, 10); seconds = time.perf_counter() - start
after = rss()
print(after[0] - before[0], after[1] - before[1], seconds)
"""
"""Run by a fresh interpreter: load one saved bank, search once, print the growth of
anonymous and file-backed resident memory (MB) and the search time."""


# --------------------------------------------------------------------------- real embeddings


def real_embeddings(workdir: Path, clips: int | None) -> tuple[np.ndarray | None, str]:
    """The dev ESC-50 clips embedded with aiSFX, unit rows; cached in ``workdir``.

    Args:
        workdir: Where the cache file lives.
        clips: Use this many clips spread over the table (all when None): a smoke run
            needs the real path, not all 168 encodings.

    Returns:
        ``(vectors, description)``, or ``(None, why)`` when the dev data is missing.
    """
    from geosound.data import load_esc50
    from geosound.errors import DataError

    try:
        table = load_esc50()
    except DataError as exc:
        return None, str(exc)
    if clips is not None and clips < len(table):
        table = table.iloc[np.linspace(0, len(table) - 1, clips).round().astype(int)]
    names = [Path(p).name for p in table["path"]]
    encoder_id = "aisfx@1"
    cache = workdir / f"esc50_{encoder_id}_{len(names)}.npz"
    if cache.is_file():
        with np.load(cache) as stored:
            if list(stored["names"]) == names and str(stored["encoder"]) == encoder_id:
                vectors = stored["vectors"]
                return _unit(vectors), f"{len(names)} ESC-50 dev clips, aisfx (cached {cache})"
    from geosound.atomic import atomic_path
    from geosound.encoders import get_encoder

    start = time.perf_counter()
    encoder = get_encoder("aisfx")
    vectors = encoder.encode(list(table["path"])).pooled.numpy().astype(np.float32)
    seconds = time.perf_counter() - start
    workdir.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, vectors=vectors, names=np.array(names), encoder=np.array(encoder.id))
    return _unit(vectors), f"{len(names)} ESC-50 dev clips, aisfx (embedded in {seconds:.0f} s)"


def synthetic_anchors(seed: int, count: int = 168, dim: int = 512) -> np.ndarray:
    """A SYNTHETIC stand-in for the real clips: 32 classes around a shared mean direction.

    Only for machines without the dev data. Non-negative mean plus class and clip offsets
    drawn with a power-law spectrum in a random basis, so it has a cone and a few dominant
    directions like audio embeddings, but nothing here was ever heard.
    """
    rng = np.random.default_rng([seed, 1])
    basis, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    spectrum = 1.0 / np.arange(1, dim + 1) ** 1.2
    scale = np.sqrt(spectrum / spectrum.sum() * 0.16)
    mean = np.abs(rng.standard_normal(dim))
    mean /= np.linalg.norm(mean)
    classes = mean + (rng.standard_normal((32, dim)) * scale) @ basis.T
    labels = rng.integers(32, size=count)
    clips = classes[labels] + 0.5 * (rng.standard_normal((count, dim)) * scale) @ basis.T
    return _unit(clips.astype(np.float32))


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


# --------------------------------------------------------------------------- generator


@dataclass
class RealLikeGenerator:
    """Draws unit vectors clustered like real embeddings (see the module docstring).

    Attributes:
        anchors: ``(n, D)`` the real (or synthetic) unit vectors sub-centres grow from.
        components: ``(r, D)`` PCA directions scaled by their standard deviation, so
            ``z @ components`` with ``z ~ N(0, I)`` has the anchors' covariance.
        iso_std: Per-dimension standard deviation of the isotropic floor.
    """

    anchors: np.ndarray
    components: np.ndarray
    iso_std: float

    @classmethod
    def fit(cls, anchors: np.ndarray) -> RealLikeGenerator:
        """PCA of the anchors (mean removed); the floor holds :data:`ISO_FLOOR` of the total."""
        centred = anchors - anchors.mean(axis=0)
        _, singular, vt = np.linalg.svd(centred, full_matrices=False)
        std = singular / np.sqrt(max(1, len(anchors) - 1))
        keep = std > std.max() * 1e-6
        components = (vt[keep] * std[keep, None]).astype(np.float32)
        total = float((std**2).sum())
        dim = anchors.shape[1]
        iso_std = float(np.sqrt(ISO_FLOOR / (1 - ISO_FLOOR) * total / dim))
        return cls(anchors=anchors, components=components, iso_std=iso_std)

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return int(self.anchors.shape[1])

    def noise(self, rng: np.random.Generator, count: int, scale: float) -> np.ndarray:
        """``count`` draws from the anchors' covariance plus the floor, times ``scale``."""
        z = rng.standard_normal((count, len(self.components)), dtype=np.float32)
        out = z @ self.components
        out += rng.standard_normal((count, self.dim), dtype=np.float32) * np.float32(self.iso_std)
        out *= np.float32(scale)
        return out

    def centres(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """Sub-centres: random anchors plus :data:`CENTRE_SCALE` noise, unit rows."""
        parents = rng.integers(len(self.anchors), size=count)
        return _unit(self.anchors[parents] + self.noise(rng, count, CENTRE_SCALE))

    def points(
        self, rng: np.random.Generator, centres: np.ndarray, count: int, block: int = 65536
    ) -> np.ndarray:
        """Vectors around random sub-centres plus :data:`POINT_SCALE` noise, unit rows.

        Made in blocks, so a million vectors cost their own 2 GB and little more.
        """
        out = np.empty((count, self.dim), dtype=np.float32)
        for start in range(0, count, block):
            stop = min(count, start + block)
            picked = rng.integers(len(centres), size=stop - start)
            chunk = centres[picked] + self.noise(rng, stop - start, POINT_SCALE)
            chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
            out[start:stop] = chunk
        return out


def make_set(
    generator: RealLikeGenerator, size: int, queries: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A bank of ``size`` vectors and ``queries`` queries around the same sub-centres."""
    rng = np.random.default_rng([seed, size])
    centres = generator.centres(rng, max(1, size // CLUSTER_SIZE))
    bank = generator.points(rng, centres, size)
    query = generator.points(np.random.default_rng([seed, size, 1]), centres, queries)
    return bank, query


# --------------------------------------------------------------------------- methods


def numpy_search(bank: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute force without faiss: normalised matrix product, argpartition, sort the top k."""
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    scores = np.empty((len(queries), k), dtype=np.float32)
    ids = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), QUERY_BLOCK):
        sims = queries[start : start + QUERY_BLOCK] @ bank.T
        top = np.argpartition(sims, -k, axis=1)[:, -k:]
        top_scores = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-top_scores, axis=1)
        ids[start : start + len(sims)] = np.take_along_axis(top, order, axis=1)
        scores[start : start + len(sims)] = np.take_along_axis(top_scores, order, axis=1)
    return scores, ids


def best_time(run: Callable[[], Any], repeat: int) -> tuple[float, Any, list[float]]:
    """Best wall time of ``repeat`` runs (a shared machine only ever adds time), last result."""
    times = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result, times


def measure_limit(repeat: int = 3) -> float:
    """GFLOP/s of a float32 matrix product shaped like the search (best of ``repeat``)."""
    q, d, n = LIMIT_SHAPE
    rng = np.random.default_rng(0)
    a = rng.standard_normal((q, d), dtype=np.float32)
    b = rng.standard_normal((n, d), dtype=np.float32)
    out = np.empty((q, n), dtype=np.float32)
    np.matmul(a, b.T, out=out)  # warm up BLAS threads
    seconds, _, _ = best_time(lambda: np.matmul(a, b.T, out=out), repeat)
    return 2.0 * q * d * n / seconds / 1e9


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each exact top-k found in the approximate top-k."""
    hits = sum(np.intersect1d(f[f >= 0], t).size for f, t in zip(found, truth, strict=True))
    return hits / truth.size


@dataclass
class Row:
    """One line of the table."""

    size: int
    method: str
    limit: float
    build_s: float | None
    search_s: float | None
    queries: int
    recall: float | None
    gflops: float | None = None
    mem_mb: float | None = None
    mapped_mb: float | None = None
    mem_vs_flat: float | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def qps(self) -> float | None:
        """Queries per second."""
        return self.queries / self.search_s if self.search_s else None

    def line(self, numpy_qps: float | None) -> str:
        """The table row; ratios against numpy's queries/s and this size's limit GFLOP/s."""

        def num(value: float | None, fmt: str, width: int) -> str:
            return f"{'-':>{width}}" if value is None else f"{value:>{width}{fmt}}"

        vs_numpy = self.qps / numpy_qps if self.qps and numpy_qps else None
        vs_limit = self.gflops / self.limit if self.gflops else None
        text = (
            f"{self.size:>8d} {self.method:<7} {num(self.build_s, '.2f', 8)} "
            f"{num(self.search_s, '.3f', 9)} {num(self.qps, '.0f', 10)} "
            f"{num(vs_numpy, '.2f', 8)}{'x' if vs_numpy else ' '} {num(self.recall, '.3f', 10)} "
            f"{num(self.gflops, '.1f', 8)} {num(vs_limit, '.2f', 8)}{'x' if vs_limit else ' '} "
            f"{num(self.mem_mb, '.0f', 8)} "
            f"{num(None if self.mem_vs_flat is None else 100 * self.mem_vs_flat, '.1f', 7)}"
            f"{'%' if self.mem_vs_flat is not None else ' '} {num(self.mapped_mb, '.0f', 9)}"
        )
        return text + (f"  {self.note}" if self.note else "")


def measure_memory(
    saved: Path, queries_file: Path, nprobe: int = 0
) -> tuple[float | None, float | None, float | None]:
    """(anonymous MB, file-page MB, search s) of a fresh process that loads and searches once.

    Memory deltas of the benchmark's own process would mix in whatever it allocated before;
    a fresh interpreter (numpy, faiss and geosound imported first) shows only the bank.
    Returns Nones where /proc is missing (not Linux).
    """
    if not Path("/proc/self/status").is_file():
        return None, None, None
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(saved), str(queries_file), str(nprobe)],
        capture_output=True,
        text=True,
        check=True,
    )
    anon, mapped, seconds = (float(v) for v in done.stdout.split()[-3:])
    return anon, mapped, seconds


def bench_size(
    size: int, bank: np.ndarray, queries: np.ndarray, args: argparse.Namespace
) -> list[Row]:
    """All methods on one bank; exact ``flat`` results are the recall reference.

    The exact methods and the matmul limit are timed in interleaved rounds (limit, numpy,
    flat; best of each kept), so that drift on a shared machine hits all three alike and
    ``vs limit`` compares numbers taken in the same minute. Every bank is then saved and its
    memory measured by a fresh process (:func:`measure_memory`).
    """
    import faiss
    import pandas as pd

    from geosound.retrieval import AudioBank, BankError

    dim = bank.shape[1]
    flops = 2.0 * len(queries) * size * dim
    repeat_exact = args.repeat if size < 500_000 else max(1, args.repeat - 1)
    metadata = pd.DataFrame({"path": pd.RangeIndex(size).astype(str)})
    saved_root = args.workdir / f"banks-{size}"
    shutil.rmtree(saved_root, ignore_errors=True)
    saved_root.mkdir(parents=True)
    queries_file = saved_root / "queries.npy"
    np.save(queries_file, queries)
    rows: list[Row] = []

    start = time.perf_counter()
    flat = AudioBank.build(bank, metadata, SPACE_ID, kind="flat")
    flat_build = time.perf_counter() - start
    limits: list[float] = []
    numpy_times: list[float] = []
    flat_times: list[float] = []
    for _ in range(repeat_exact):
        limits.append(measure_limit(repeat=3))
        seconds, (_, numpy_ids), _ = best_time(lambda: numpy_search(bank, queries, K), 1)
        numpy_times.append(seconds)
        seconds, hits, _ = best_time(lambda b=flat: b.search(queries, K), 1)
        flat_times.append(seconds)
    limit = max(limits)
    truth = hits.indices
    numpy_s, flat_s = min(numpy_times), min(flat_times)
    rows.append(
        Row(
            size,
            "numpy",
            limit,
            None,
            numpy_s,
            len(queries),
            recall(numpy_ids, truth),  # agreement of the two exact searches
            flops / numpy_s / 1e9,
            extra={"all_search_s": numpy_times, "all_limit_gflops": limits},
        )
    )
    flat.save(saved_root / "flat")
    del flat, hits
    gc.collect()
    flat_mem, flat_mapped, _ = measure_memory(saved_root / "flat", queries_file)
    shutil.rmtree(saved_root / "flat")
    rows.append(
        Row(
            size,
            "flat",
            limit,
            flat_build,
            flat_s,
            len(queries),
            1.0,
            flops / flat_s / 1e9,
            flat_mem,
            flat_mapped,
            extra={"all_search_s": flat_times},
        )
    )

    def versus_flat(mem: float | None) -> float | None:
        return mem / flat_mem if mem is not None and flat_mem else None

    ivf_lists: dict[str, int] = {}
    for kind in ("ivf", "ivfflat", "hnsw", "ivfpq"):
        start = time.perf_counter()
        if kind == "ivfflat":
            if not ivf_lists:
                continue
            index = faiss.IndexIVFFlat(
                faiss.IndexFlatIP(dim), dim, ivf_lists["nlist"], faiss.METRIC_INNER_PRODUCT
            )
            index.nprobe = ivf_lists["nprobe"]
            sample = np.random.default_rng(args.seed).choice(
                size, ivf_lists["train_size"], replace=False
            )
            index.train(bank[np.sort(sample)])
            index.add(bank)
            build = time.perf_counter() - start
            seconds, (_, found), times = best_time(
                lambda i=index: i.search(queries, K), args.repeat
            )
            faiss.write_index(index, str(saved_root / "ivfflat.faiss"))
            del index
            gc.collect()
            mem, mapped, _ = measure_memory(
                saved_root / "ivfflat.faiss", queries_file, ivf_lists["nprobe"]
            )
            (saved_root / "ivfflat.faiss").unlink()
            rows.append(
                Row(
                    size, kind, limit, build, seconds, len(queries), recall(found, truth),
                    mem_mb=mem, mapped_mb=mapped, mem_vs_flat=versus_flat(mem),
                    note=f"nlist={ivf_lists['nlist']} nprobe={ivf_lists['nprobe']} "
                    "(faiss IndexIVFFlat, not a bank kind)",
                    extra={"all_search_s": times},
                )
            )  # fmt: skip
            continue
        try:
            index_bank = AudioBank.build(
                bank, metadata, SPACE_ID, kind=kind, measure_recall=False, seed=args.seed
            )
        except BankError as exc:
            rows.append(
                Row(size, kind, limit, None, None, len(queries), None, note=f"skipped: {exc}")
            )
            continue
        build = time.perf_counter() - start
        seconds, hits, times = best_time(lambda b=index_bank: b.search(queries, K), args.repeat)
        params = index_bank.params
        if kind == "hnsw":
            note = f"M={params['M']} efC={params['ef_construction']} ef={params['ef_search']}"
        else:
            note = (
                f"nlist={params['nlist']} m={params['m']} nprobe={params['nprobe']} "
                f"train={params['train_size']}"
            )
        if kind == "ivf":
            ivf_lists = params
            note += f" k_factor={params['k_factor']}"
        index_bank.save(saved_root / kind)
        del index_bank
        gc.collect()
        mem, mapped, loaded_s = measure_memory(saved_root / kind, queries_file)
        shutil.rmtree(saved_root / kind)
        if kind == "ivf" and mem is not None:
            # faiss maps the lists with the vectors; every search reads its probed lists, so
            # they count as the index's memory: mem MB + lists (codes, ids) + centroids.
            lists = (size * (params["m"] + 8) + params["nlist"] * dim * 4) / 1e6
            mem += lists
            note += f"; mem includes {lists:.0f} MB of mapped lists+centroids (layout)"
        if kind == "ivf" and loaded_s is not None:
            note += f"; loaded (mapped) search {loaded_s:.3f} s"
        rows.append(
            Row(
                size,
                kind,
                limit,
                build,
                seconds,
                len(queries),
                recall(hits.indices, truth),
                mem_mb=mem,
                mapped_mb=mapped,
                mem_vs_flat=versus_flat(mem),
                note=note,
                extra={"params": params, "all_search_s": times, "loaded_search_s": loaded_s},
            )
        )
        del hits
        gc.collect()
    shutil.rmtree(saved_root, ignore_errors=True)
    with contextlib.suppress(AttributeError):
        rows[0].extra["faiss_threads"] = faiss.omp_get_max_threads()
    return rows


def similarity_profile(bank: np.ndarray, queries: np.ndarray) -> dict[str, float]:
    """Median cosine of each query's nearest and 10th-nearest bank vector."""
    scores, _ = numpy_search(bank, queries[:200], K)
    return {"top1": float(np.median(scores[:, 0])), "top10": float(np.median(scores[:, -1]))}


def real_profile(anchors: np.ndarray) -> dict[str, float]:
    """The anchors' own structure: median nearest-other cosine and median pair cosine."""
    sims = anchors @ anchors.T
    np.fill_diagonal(sims, -np.inf)
    pairs = sims[np.isfinite(sims)]
    return {"nearest": float(np.median(sims.max(axis=1))), "pairs": float(np.median(pairs))}


# --------------------------------------------------------------------------- report


def _peak_rss_mb() -> float:
    """This process's highest resident memory so far (Linux reports KiB, macOS bytes)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on, printed with them."""
    import faiss

    return _common.machine_info(faiss=faiss.__version__, faiss_threads=faiss.omp_get_max_threads())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line."""
    from geosound.config import cache_dir

    parser = argparse.ArgumentParser(
        description="Audio bank search: faiss (flat, IVF re-ranked, IVF-Flat, HNSW, IVF-PQ) vs "
        "numpy brute force vs "
        "the machine's matmul limit, on real-like embeddings.",
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=None, help="bank sizes (100000 1000000)"
    )
    parser.add_argument("--queries", type=int, default=1000, help="queries (1000)")
    parser.add_argument("--quick", action="store_true", help="smoke run: sizes 20000, 1 repeat")
    parser.add_argument(
        "--repeat", type=int, default=None, help="timed runs per search, best kept (3; quick: 1)"
    )
    parser.add_argument(
        "--clips", type=int, default=None, help="real clips to fit the generator on (all 168)"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=cache_dir() / "benchmarks",
        help="where the real-embedding cache lives (default: geosound's cache)",
    )
    parser.add_argument("--seed", type=int, default=SEED, help="generator seed")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)
    if args.sizes is None:
        args.sizes = [20000] if args.quick else [100_000, 1_000_000]
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if min(*args.sizes, args.queries, args.repeat) < 1 or min(args.sizes) < K:
        parser.error(f"--sizes must be >= {K}; --queries and --repeat positive")
    if args.clips is not None and args.clips < 2:
        parser.error("--clips must be at least 2")
    return args


def main(argv: list[str] | None = None) -> int:
    """Fit the generator, run every method at every size, print the table and ratios."""
    args = parse_args(argv)
    machine = machine_info()
    print("geosound audio bank benchmark")
    print(
        f"machine: {machine['cpu']}, nproc {machine['nproc']} "
        f"(usable {machine['usable_cpus']}), RAM {machine['ram_gb']} GB; "
        f"device {machine['device']}"
    )
    print(
        f"software: Python {machine['python']}, numpy {machine['numpy']}, "
        f"faiss {machine['faiss']} ({machine['faiss_threads']} threads)"
    )

    anchors, source = real_embeddings(args.workdir, args.clips)
    synthetic = anchors is None
    if synthetic:
        print(f"dev data missing ({source}): falling back to a SYNTHETIC clustered generator")
        anchors = synthetic_anchors(args.seed)
        source = f"SYNTHETIC anchors ({len(anchors)} vectors, 32 classes)"
    generator = RealLikeGenerator.fit(anchors)
    anchor_profile = real_profile(anchors)
    label = "SYNTHETIC" if synthetic else "real-like"
    print(
        f"data: {label} vectors, D={generator.dim}, grown from {source}; "
        f"PCA rank {len(generator.components)}, floor {ISO_FLOOR:.0%}; "
        f"{CLUSTER_SIZE} vectors per sub-centre, scales centre {CENTRE_SCALE} point {POINT_SCALE}"
    )
    print(
        f"anchors: median cosine to nearest other {anchor_profile['nearest']:.3f}, "
        f"of all pairs {anchor_profile['pairs']:.3f}"
    )

    q, d, n = LIMIT_SHAPE
    print(
        f"limit: numpy float32 matmul ({q}x{d})·({d}x{n}), best of 3 per round, in rounds "
        "interleaved with the exact searches (limit, numpy, flat), best round kept"
    )
    print(
        f"queries: {args.queries}, k={K}; search times best of {args.repeat} "
        f"(exact searches at N >= 500000: best of {max(1, args.repeat - 1)})"
    )
    print(f"load average at start (1, 5, 15 min): {_common.load_average()}", flush=True)
    started = time.perf_counter()

    rows: list[Row] = []
    profiles: dict[int, dict[str, float]] = {}
    for size in args.sizes:
        start = time.perf_counter()
        bank, queries = make_set(generator, size, args.queries, args.seed)
        made = time.perf_counter() - start
        profiles[size] = similarity_profile(bank, queries)
        print(
            f"N={size}: {label} bank made in {made:.1f} s; median query cosine to its top-1 "
            f"{profiles[size]['top1']:.3f}, to its 10th {profiles[size]['top10']:.3f}",
            flush=True,
        )
        rows.extend(bench_size(size, bank, queries, args))
        print(f"N={size}: limit {rows[-1].limit:.1f} GFLOP/s", flush=True)
        del bank, queries
        gc.collect()

    print()
    print(TABLE_HEADER)
    numpy_qps = {row.size: row.qps for row in rows if row.method == "numpy"}
    for row in rows:
        print(row.line(numpy_qps[row.size]))
    print()
    print(
        "recall@10: against flat (exact); for numpy it is the agreement of the two exact "
        "searches (ties aside, 1.000)"
    )
    print(
        "mem MB: growth of anonymous resident memory (RssAnon) of a fresh process that loads the "
        "saved bank and searches once; mem/flat: that against flat's; mapped MB: growth of its "
        "resident file pages (RssFile: memory-mapped page cache, shared and reclaimable)"
    )
    for size in args.sizes:
        by = {row.method: row for row in rows if row.size == size}
        ratios = [
            f"{m}/numpy {by[m].qps / numpy_qps[size]:.2f}x"
            for m in ("flat", "ivf", "ivfflat", "hnsw", "ivfpq")
            if m in by and by[m].qps and numpy_qps[size]
        ]
        limit = by["flat"].limit
        exact = (
            f"exact search reaches {by['flat'].gflops / limit:.0%} (flat) and "
            f"{by['numpy'].gflops / limit:.0%} (numpy) of the matmul limit ({limit:.0f} GFLOP/s)"
        )
        print(f"N={size}: {', '.join(ratios)}; {exact}")
        ivf, hnsw = by.get("ivf"), by.get("hnsw")
        if ivf is not None and ivf.qps and numpy_qps[size]:
            targets = (
                f"N={size}: ivf recall@10 {ivf.recall:.3f} (target >= 0.95), "
                f"{ivf.qps / numpy_qps[size]:.1f}x numpy (target >= 50x), memory "
                + ("-" if ivf.mem_vs_flat is None else f"{ivf.mem_vs_flat:.1%}")
                + " of flat (target <= 25%)"
            )
            if hnsw is not None and hnsw.build_s and ivf.build_s:
                targets += f"; builds in {ivf.build_s / hnsw.build_s:.2f}x HNSW's time"
            print(targets)

    print(
        f"total {time.perf_counter() - started:.0f} s; peak RSS {_peak_rss_mb():.0f} MB; load "
        f"average at the end: {_common.load_average()} (other work on the machine only ever "
        "slows the numbers down)"
    )

    if args.json is not None:
        payload = {
            "machine": machine,
            "data": {
                "synthetic": synthetic,
                "source": source,
                "anchors": anchor_profile,
                "profiles": {str(s): p for s, p in profiles.items()},
                "cluster_size": CLUSTER_SIZE,
                "centre_scale": CENTRE_SCALE,
                "point_scale": POINT_SCALE,
                "iso_floor": ISO_FLOOR,
                "seed": args.seed,
            },
            "queries": args.queries,
            "k": K,
            "limit_shape": LIMIT_SHAPE,
            "rows": [
                {
                    **asdict(row),
                    "qps": row.qps,
                    "vs_numpy": (row.qps / numpy_qps[row.size]) if row.qps else None,
                    "vs_limit": (row.gflops / row.limit) if row.gflops else None,
                }
                for row in rows
            ],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
