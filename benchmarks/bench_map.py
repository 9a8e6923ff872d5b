"""Benchmark: ``geosound map``'s embedding step, next to a naive loop and the machine's limit.

Why this exists: embedding a region's tiles (:func:`geosound.mapping.region.embed_region`) is
the one expensive step of ``geosound map``; everything after it reads the region cache. The
project rule is that speed is measured side by side in one run and printed as ratios (ours vs
the naive way, ours vs the machine's measured limit), because absolute numbers mean nothing
across machines. One run measures five things, each in a fresh subprocess:

1. **Embedding throughput** — tiles/s of ``embed_region`` (in-process, tile 64, a fresh cache:
   grid, reads, ``to_rgb``, EfficientNet-Lite0 + Sat2Sound head in batches of 64, top
   concepts, zarr writes) on a synthetic uint8 RGB GeoTIFF, next to a **naive** loop over the
   same tiles (one boundless rasterio read per tile, ``to_rgb``, ``embed_images`` on a batch
   of one, no cache; a sample of tiles, as it is slow — compare tiles/s).
2. **How close to the compute limit** — FLOPs per 64-px tile counted with
   :class:`torch.utils.flop_counter.FlopCounterMode` (encoder convolutions + head matmuls;
   batch norm, activations and padding are not counted — they are memory-bound and small),
   times tiles/s, against the float32 GFLOP/s of a large ``torch.matmul`` measured in the same
   run with the same torch threads. ``encoder+head only`` rows time ``embed_images`` on
   in-memory batches (no I/O), so the gap between them and ``ours`` is geosound's overhead and
   the gap between them and ``matmul`` is the network's own inefficiency on this CPU.
3. **Re-query vs full recompute** — ``query_layers`` for 3 new texts on the cached region
   (after ``embed_region``'s resume check, as ``geosound map`` does) against a fresh cache +
   the same kind of query; plus the cold ``geosound map`` CLI re-query, for the record.
4. **Dask, 1 vs 2 workers** — ``embed_region(workers=N)`` (a LocalCluster per call) on fresh
   caches of the same raster. Cluster start-up is timed on its own (a LocalCluster with the
   same arguments, started and closed) and chunk completion times give the steady state.
5. **Peak RSS** — ``embed_region`` with a bbox covering a band of grid rows across the full
   width of a 20,000 × 20,000 raster, and of a 4,000 px raster with about as many tiles: peak
   RSS (``getrusage``) of each fresh subprocess, and the peak during ``embed_region`` alone;
   plus the time and memory of the big raster's whole tile grid.

Before them, **0. where the time goes**: a torch profiler table (top ops by self CPU time) of
the image encoder at batch 64, before issue 12 and as shipped. After them, **6. busy
machine**: encoder+head at batch 64 with one busy-loop process per core running beside it.

Variants run next to "as shipped" (the torch backend: batch norm folded, channels-last) in
sections 1, 2 and 6: ``before`` (the wheel's network in torch eager, as geosound ran it
before issue 12: the baseline of every "vs before" ratio), ``onnx`` and ``openvino`` (the
other encoder backends, where installed), ``PASSIVE`` (a process started with
``OMP_WAIT_POLICY=PASSIVE``: torch's OpenMP threads sleep at a barrier instead of spinning,
which matters when other work shares the cores); and Dask ``no-trim`` in section 4 (without
the ``MALLOC_TRIM_THRESHOLD_=65536`` Dask sets in its workers). ``--quick`` runs everything in
one process: no environment variants (before and onnx only) and no CLI re-query.

Run ``python benchmarks/bench_map.py --help``; benchmarks/README.md explains the numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import _common

MB = 1e6
TILE = 64
BANDS = 3
PRESET = "rgb8"
MALLOC_TRIM = "MALLOC_TRIM_THRESHOLD_"
FIRST_TEXTS = ("birds chirping in trees", "a stream flowing over rocks", "wind in tall grass")
NEW_TEXTS = ("waves crashing on a beach", "traffic on a busy road", "rain falling on leaves")

TABLE_HEADER = (
    f"{'method':<44} {'tiles':>6} {'seconds':>8} {'tiles/s':>8} {'GFLOP/s':>8} "
    f"{'vs matmul':>9} {'peak RSS MB':>11}"
)


def _tiling() -> ModuleType:
    """benchmarks/bench_tiling.py, for its synthetic raster writer and process helpers."""
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    return importlib.import_module("bench_tiling")


# --------------------------------------------------------------------------- child helpers


def _rss_now() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux ≥ 4.0); False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _peak_rss_since_reset() -> int | None:
    """VmHWM (peak RSS since start or since :func:`_reset_peak_rss`), bytes; None if unknown."""
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


class RssSampler:
    """Samples this process's RSS every ``interval`` s in a thread (a fallback for VmHWM)."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_now())
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_now())


def _load_space(backend: str = "torch") -> tuple[Any, float]:
    """The shipped SharedSpace through geosound's per-process cache, warmed; and load seconds.

    Its image encoder runs on ``backend`` (see :func:`_use_backend`); an ONNX export, built
    on first use, is in the load seconds, as it is a one-off per machine.
    """
    import numpy as np

    from geosound.space.shared import load_shared_space

    start = time.perf_counter()
    space = load_shared_space(None)
    _use_backend(space, backend)
    space.embed_images(np.zeros((1, BANDS, TILE, TILE), np.float32))  # loads EfficientNet
    seconds = time.perf_counter() - start
    space.embed_images(np.zeros((2, BANDS, TILE, TILE), np.float32))  # first-call allocations
    return space, seconds


def _use_backend(space: Any, backend: str) -> None:
    """Run the space's image encoder on ``backend`` from now on, in this process.

    ``wheel`` is the encoder as it was before issue 12: the ``efficientnet_lite_pytorch``
    network's own ``extract_features`` in torch eager (separate batch norms, a pad before every
    convolution, contiguous memory), the baseline every "vs before" ratio divides by.
    """
    encoder = space.encoders["image"]
    model = encoder.model  # loaded before the runners change
    with encoder._lock:
        encoder._runners.clear()
        if backend == "wheel":
            encoder.backend = "torch"
            encoder._runners[(0, 0, 0)] = model.extract_features
        else:
            encoder.backend = backend


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


def _best_rate(
    work: Callable[[], int], rounds: int, min_seconds: float
) -> tuple[float, int, float]:
    """Best (items/s, items, seconds) of ``rounds`` rounds, each repeating ``work`` ≥ min_seconds.

    ``work`` returns the items it processed. Best-of, as a shared machine only ever adds time.
    """
    best = (0.0, 0, 0.0)
    for _ in range(rounds):
        items, start = 0, time.perf_counter()
        while True:
            items += work()
            seconds = time.perf_counter() - start
            if seconds >= min_seconds:
                break
        if items / seconds > best[0]:
            best = (items / seconds, items, seconds)
    return best


def run_compute(opts: dict[str, Any]) -> dict[str, Any]:
    """FLOPs per tile, encoder+head throughput without I/O, and the matmul limit.

    Rounds of matmul and of the encoder are interleaved, so drift on a shared machine hits
    both alike; the best round of each is kept.
    """
    import numpy as np
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    space, load_seconds = _load_space(opts.get("backend", "torch"))
    default_threads = torch.get_num_threads()
    encoder = space.encoders["image"]
    one = np.random.default_rng(0).uniform(size=(1, BANDS, TILE, TILE)).astype(np.float32)
    with FlopCounterMode(display=False) as counter:
        encoding = encoder.encode(one)
    encoder_flops = int(counter.get_total_flops())
    encoder_ops = {str(k): int(v) for k, v in counter.get_flop_counts()["Global"].items()}
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        space.model.encode_image(encoding.tokens, encoding.mask)
    head_flops = int(counter.get_total_flops())
    head_ops = {str(k): int(v) for k, v in counter.get_flop_counts()["Global"].items()}

    n = int(opts["matmul_n"])
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    out = torch.empty(n, n)
    batch = np.random.default_rng(1).uniform(size=(64, BANDS, TILE, TILE)).astype(np.float32)

    def matmul() -> int:
        torch.matmul(a, b, out=out)
        return 1

    def encode(size: int) -> Callable[[], int]:
        def work() -> int:
            space.embed_images(batch[:size])
            return size

        return work

    rounds, seconds = int(opts["rounds"]), float(opts["round_seconds"])
    results: dict[str, list[tuple[float, int, float]]] = {}
    for _ in range(rounds):
        for threads in sorted({default_threads, 1}, reverse=True):
            torch.set_num_threads(threads)
            matmul()  # warm this thread count
            for name, work in (
                (f"matmul_t{threads}", matmul),
                (f"enc64_t{threads}", encode(64)),
                (f"enc1_t{threads}", encode(1)),
            ):
                results.setdefault(name, []).append(_best_rate(work, 1, seconds))
    torch.set_num_threads(default_threads)
    best = {name: max(runs) for name, runs in results.items()}
    return {
        "model_load_seconds": load_seconds,
        "torch_threads": default_threads,
        "torch": torch.__version__,
        "encoder_flops_per_tile": encoder_flops,
        "head_flops_per_tile": head_flops,
        "encoder_flop_ops": encoder_ops,
        "head_flop_ops": head_ops,
        "tokens_per_tile": int(encoding.tokens.shape[1]),
        "matmul_n": n,
        "rates": {name: {"per_s": r, "items": i, "seconds": s} for name, (r, i, s) in best.items()},
        "all_rates": {name: [r for r, _, _ in runs] for name, runs in results.items()},
    }


def run_profile(opts: dict[str, Any]) -> dict[str, Any]:
    """Where the encoder's time goes: torch profiler ops by self CPU time, batch 64 (no I/O)."""
    import numpy as np
    from torch.profiler import ProfilerActivity, profile

    space, _ = _load_space(opts["backend"])
    encoder = space.encoders["image"]
    batch = np.random.default_rng(1).uniform(size=(64, BANDS, TILE, TILE)).astype(np.float32)
    encoder.encode(batch)
    batches = int(opts["batches"])
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(batches):
            encoder.encode(batch)
    events = sorted(profiler.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return {
        "backend": opts["backend"],
        "batches": batches,
        "total_self_cpu_us": total,
        "ops": [
            {"name": e.key, "self_cpu_us": e.self_cpu_time_total, "calls": e.count}
            for e in events[: int(opts["top"])]
        ],
    }


def run_loaded(opts: dict[str, Any]) -> dict[str, Any]:
    """encoder+head batch 64 at each thread count, best of rounds: the busy-machine rows."""
    import numpy as np
    import torch

    space, _ = _load_space(opts.get("backend", "torch"))
    default_threads = torch.get_num_threads()
    batch = np.random.default_rng(1).uniform(size=(64, BANDS, TILE, TILE)).astype(np.float32)

    def work() -> int:
        space.embed_images(batch)
        return 64

    rates: dict[str, list[float]] = {}
    for _ in range(int(opts["rounds"])):
        for threads in _thread_counts(default_threads):
            torch.set_num_threads(threads)
            work()  # a session for this thread count (exported backends)
            rates.setdefault(f"enc64_t{threads}", []).append(
                _best_rate(work, 1, float(opts["round_seconds"]))[0]
            )
    torch.set_num_threads(default_threads)
    return {"torch_threads": default_threads, "rates": {k: max(v) for k, v in rates.items()}}


def run_ours(opts: dict[str, Any]) -> dict[str, Any]:
    """embed_region on a fresh cache (timed), then the first query, then a re-query."""
    import torch

    from geosound.mapping.products import query_layers
    from geosound.mapping.region import embed_region

    space, load_seconds = _load_space(opts.get("backend", "torch"))
    space.embed_texts(["warm up the text encoder"])
    cache_path = _fresh(Path(opts["cache"]))
    baseline = _rss_now()

    start = time.perf_counter()
    cache = embed_region(cache_path, opts["path"], tile_size=TILE, chunk_rows=opts["chunk_rows"])
    embed_seconds = time.perf_counter() - start
    tiles = int(cache.dataset()["valid"].size)
    valid = int(cache.dataset()["valid"].values.sum())

    start = time.perf_counter()
    query_layers(cache, space, FIRST_TEXTS)
    first_query_seconds = time.perf_counter() - start

    start = time.perf_counter()
    cached = embed_region(cache_path, opts["path"], tile_size=TILE, chunk_rows=opts["chunk_rows"])
    resume_seconds = time.perf_counter() - start
    layers = query_layers(cached, space, NEW_TEXTS)
    requery_seconds = time.perf_counter() - start
    return {
        "model_load_seconds": load_seconds,
        "torch_threads": torch.get_num_threads(),
        "baseline_rss": baseline,
        "tiles": tiles,
        "valid_tiles": valid,
        "chunks": len(cache.chunks()),
        "seconds": embed_seconds,
        "first_query_seconds": first_query_seconds,
        "resume_check_seconds": resume_seconds,
        "requery_seconds": requery_seconds,
        "requery_bands": len(layers["band"]),
    }


def run_naive(opts: dict[str, Any]) -> dict[str, Any]:
    """One tile at a time: boundless masked rasterio read, to_rgb, embed_images of one tile.

    Tiles in grid order from the top, until ``naive_tiles`` tiles or ``naive_seconds``.
    """
    import numpy as np
    import rasterio
    import torch
    from rasterio.windows import Window

    from geosound.geo import get_preset, to_rgb

    space, load_seconds = _load_space(opts.get("backend", "torch"))
    preset = get_preset(PRESET)
    baseline = _rss_now()
    tiles, checksum = 0, 0.0
    start = time.perf_counter()
    with rasterio.open(opts["path"]) as dataset:
        cols = range(0, dataset.width, TILE)
        offsets = ((r, c) for r in range(0, dataset.height, TILE) for c in cols)
        for row_off, col_off in offsets:
            window = Window(col_off, row_off, TILE, TILE)
            pixels = dataset.read(window=window, boundless=True, masked=True)
            rgb = to_rgb(pixels, preset)
            checksum += float(space.embed_images(rgb[None]).embedding.numpy()[0, 0])
            tiles += 1
            if tiles >= opts["naive_tiles"] or time.perf_counter() - start >= opts["naive_seconds"]:
                break
    seconds = time.perf_counter() - start
    return {
        "model_load_seconds": load_seconds,
        "torch_threads": torch.get_num_threads(),
        "baseline_rss": baseline,
        "tiles": tiles,
        "seconds": seconds,
        "checksum": float(np.float32(checksum)),
    }


def run_dask(opts: dict[str, Any]) -> dict[str, Any]:
    """Cluster start-up on its own, then embed_region(workers=N) with chunk completion times.

    With ``opts["malloc_trim"]`` False, Dask's worker setting ``MALLOC_TRIM_THRESHOLD_=65536``
    (``distributed.nanny.pre-spawn-environ``) is removed for this process's clusters: the
    variant that shows what that setting costs the encoder.
    """
    import dask

    workers = int(opts["workers"])
    if opts.get("malloc_trim", True):
        return _run_dask(workers, opts)
    saved = os.environ.pop(MALLOC_TRIM, None)  # an earlier cluster here may have leaked it
    try:
        with dask.config.set({f"distributed.nanny.pre-spawn-environ.{MALLOC_TRIM}": None}):
            return _run_dask(workers, opts)
    finally:
        if saved is not None:
            os.environ[MALLOC_TRIM] = saved


def _run_dask(workers: int, opts: dict[str, Any]) -> dict[str, Any]:
    import warnings

    from geosound.mapping.region import embed_region

    _, load_seconds = _load_space()  # the parent process loads it too in `geosound map`
    warnings.simplefilter("ignore")
    cluster_facts = _probe_cluster(workers)

    cache_path = _fresh(Path(opts["cache"]))
    stamps: list[tuple[float, str]] = []
    start = time.perf_counter()

    def progress(fraction: float, message: str) -> None:
        stamps.append((time.perf_counter() - start, message))

    cache = embed_region(
        cache_path,
        opts["path"],
        tile_size=TILE,
        chunk_rows=opts["chunk_rows"],
        workers=workers,
        progress=progress,
    )
    total_seconds = time.perf_counter() - start
    done_times = [t for t, message in stamps if message.startswith("embedded chunk")]
    return {
        "model_load_seconds": load_seconds,
        "workers": workers,
        "worker_torch_threads": cluster_facts["worker_torch_threads"],
        "worker_malloc_trim": cluster_facts["worker_malloc_trim"],
        "malloc_trim": bool(opts.get("malloc_trim", True)),
        "startup_seconds": cluster_facts["startup_seconds"],
        "close_seconds": cluster_facts["close_seconds"],
        "seconds": total_seconds,
        "chunk_done_seconds": done_times,
        "tiles": int(cache.dataset()["valid"].size),
        "chunks": len(cache.chunks()),
        "chunk_rows": int(opts["chunk_rows"]),
    }


def _probe_cluster(workers: int) -> dict[str, Any]:
    """Start and close a LocalCluster like embed_region's: its start-up time and worker settings.

    Timed on its own because embed_region's total hides how much of it is start-up; the
    workers' torch threads and malloc-trim setting are what their speed depends on.
    """
    from dask.distributed import Client, LocalCluster

    start = time.perf_counter()
    # The same arguments as geosound.mapping.region.run_chunks.
    cluster = LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = Client(cluster)
    client.wait_for_workers(workers)
    startup_seconds = time.perf_counter() - start

    # Nested, so cloudpickle sends them to the workers by value, not as imports of this script.
    def torch_threads() -> int:
        import torch

        return torch.get_num_threads()

    def trim_setting() -> str:
        return os.environ.get(MALLOC_TRIM, "unset")

    worker_threads = sorted(client.run(torch_threads).values())
    worker_trim = sorted(set(client.run(trim_setting).values()))
    start = time.perf_counter()
    client.close()
    cluster.close()
    return {
        "startup_seconds": startup_seconds,
        "worker_torch_threads": worker_threads,
        "worker_malloc_trim": worker_trim,
        "close_seconds": time.perf_counter() - start,
    }


def run_grid(opts: dict[str, Any]) -> dict[str, Any]:
    """Time and memory of the tile grid of a *whole* raster (in a fresh process).

    ``compute_chunk`` rebuilds the grid of the whole region in every chunk and then keeps its
    own rows, so when the region is the whole raster this is paid once per chunk and held
    while the chunk is embedded.
    """
    from geosound.geo import RasterSource, tile_grid

    with RasterSource(opts["path"]) as source:
        before = _rss_now()
        start = time.perf_counter()
        grid = tile_grid(source, TILE)
        seconds = time.perf_counter() - start
        held = _rss_now() - before
    return {"tiles": len(grid), "seconds": seconds, "rss_held": held}


def run_rss(opts: dict[str, Any]) -> dict[str, Any]:
    """embed_region over a bbox band; RSS after imports + model, at each chunk, and peaks."""
    import torch

    from geosound.mapping.region import embed_region

    _, load_seconds = _load_space()
    cache_path = _fresh(Path(opts["cache"]))
    baseline = _rss_now()
    reset = _reset_peak_rss()
    chunk_rss: list[int] = []

    def progress(fraction: float, message: str) -> None:
        if message.startswith("embedded chunk"):
            chunk_rss.append(_rss_now())

    start = time.perf_counter()
    with RssSampler() as sampler:
        cache = embed_region(
            cache_path,
            opts["path"],
            tile_size=TILE,
            bounds=opts["bounds"],
            chunk_rows=opts["chunk_rows"],
            progress=progress,
        )
    seconds = time.perf_counter() - start
    peak_embed = _peak_rss_since_reset() if reset else None
    ds = cache.dataset()
    return {
        "model_load_seconds": load_seconds,
        "torch_threads": torch.get_num_threads(),
        "baseline_rss": baseline,
        "peak_embed_rss": peak_embed if peak_embed is not None else sampler.peak,
        "peak_embed_source": "VmHWM" if peak_embed is not None else "sampled every 50 ms",
        "chunk_rss": chunk_rss,
        "tiles": int(ds["valid"].size),
        "grid_rows": int(ds.sizes["row"]),
        "grid_cols": int(ds.sizes["col"]),
        "chunks": len(cache.chunks()),
        "seconds": seconds,
    }


RUNNERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "compute": run_compute,
    "profile": run_profile,
    "loaded": run_loaded,
    "ours": run_ours,
    "naive": run_naive,
    "dask": run_dask,
    "rss": run_rss,
    "grid": run_grid,
}


def child_main(name: str, opts: dict[str, Any]) -> int:
    """Run one measurement and print it as one JSON line (the parent parses the last line)."""
    result = RUNNERS[name](opts)
    result["peak_rss"] = _tiling().peak_rss_bytes()
    print(json.dumps(result))
    return 0


# --------------------------------------------------------------------------- parent


def run_child(
    name: str, opts: dict[str, Any], env: dict[str, str] | None = None, in_process: bool = False
) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter, so its memory and threads are its own.

    ``env`` is added to the child's environment (read by OpenMP when torch loads).
    ``in_process`` (``--quick``) runs it here instead: a smoke test, whose peak RSS is this
    process's so far.
    """
    if in_process:
        if env:
            raise ValueError("an environment needs a fresh process")
        result = RUNNERS[name](json.loads(json.dumps(opts)))
        result["peak_rss"] = _tiling().peak_rss_bytes()
        return result
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        name,
        "--child-opts",
        json.dumps(opts),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})}
    )
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"{name}: benchmark child failed with exit code {done.returncode}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def run_cli_requery(raster: Path, cache: Path, out: Path, chunk_rows: int) -> float:
    """``geosound map`` re-querying a cached region in a fresh process; wall seconds."""
    command = [
        sys.executable, "-m", "geosound", "map", str(raster), "--out", str(out),
        "--cache", str(cache), "--chunk-rows", str(chunk_rows), "--progress", "none",
    ]  # fmt: skip
    for text in NEW_TEXTS:
        command += ["--text", text]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"geosound map re-query failed with exit code {done.returncode}")
    return seconds


def grid_len(extent: int) -> int:
    """Tiles along one axis of a ``tile_grid(stride=tile, partial="pad")``."""
    return len(range(0, extent, TILE))


def band_bounds(path: Path, first_row: int, rows: int) -> tuple[float, float, float, float]:
    """Bounds of grid rows [first_row, first_row + rows) across the raster's full width.

    Inset by a hundredth of a pixel, so the band selects exactly those grid rows.
    """
    import rasterio

    with rasterio.open(path) as dataset:
        transform = dataset.transform
        top, bottom = first_row * TILE, min((first_row + rows) * TILE, dataset.height)
        x0, y0 = transform * (0, top)
        x1, y1 = transform * (dataset.width, bottom)
    inset = 0.01 * abs(transform.a)
    return (min(x0, x1) + inset, min(y0, y1) + inset, max(x0, x1) - inset, max(y0, y1) - inset)


load_average = _common.load_average
ratio = _common.ratio


def rate(run: dict[str, Any]) -> float:
    """Tiles per second of a run."""
    return ratio(run["tiles"], run["seconds"])


@dataclass
class Row:
    """One row of the throughput table."""

    method: str
    tiles: int | None
    seconds: float | None
    tiles_per_s: float | None
    gflops: float
    peak_rss_mb: float | None = None

    def text(self, limit_gflops: float) -> str:
        """The table row; ``vs matmul`` is this row's GFLOP/s over the matmul limit's."""

        def num(value: float | None, spec: str, width: int) -> str:
            return f"{'-':>{width}}" if value is None else f"{value:>{width}{spec}}"

        return (
            f"{self.method:<44} {num(self.tiles, 'd', 6)} {num(self.seconds, '.2f', 8)} "
            f"{num(self.tiles_per_s, '.1f', 8)} {self.gflops:>8.2f} "
            f"{ratio(self.gflops, limit_gflops):>9.1%} {num(self.peak_rss_mb, '.0f', 11)}"
        )

    def as_dict(self, limit_gflops: float) -> dict[str, Any]:
        """The row as JSON-ready values."""
        return {
            "method": self.method,
            "tiles": self.tiles,
            "seconds": self.seconds,
            "tiles_per_s": self.tiles_per_s,
            "gflops": self.gflops,
            "vs_matmul": ratio(self.gflops, limit_gflops),
            "peak_rss_mb": self.peak_rss_mb,
        }


def machine_info() -> dict[str, Any]:
    """bench_tiling's machine description plus torch and dask versions."""
    import dask
    import torch

    info = dict(_tiling().machine_info())
    info.update({"torch": torch.__version__, "dask": dask.__version__})
    return info


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line; ``--child``/``--child-opts`` are internal (one measurement per process)."""
    parser = argparse.ArgumentParser(
        description="geosound map's embedding step: vs a naive loop, vs matmul, re-query, "
        "Dask 1 vs 2 workers, peak RSS on a 20,000 px raster.",
    )
    parser.add_argument(
        "--size",
        type=int,
        default=None,
        help="raster side for 1-4 (3072: 6 chunks, an even number, so 2 workers finish together)",
    )
    parser.add_argument(
        "--big-size", type=int, default=None, help="large raster side for 5 (20000)"
    )
    parser.add_argument(
        "--small-size", type=int, default=None, help="small raster side for 5 (4000)"
    )
    parser.add_argument(
        "--rss-rows",
        type=int,
        default=None,
        help="grid rows of the large raster embedded in 5, across its full width (12)",
    )
    parser.add_argument(
        "--chunk-rows", type=int, default=None, help="embed_region chunk_rows (8, geosound's)"
    )
    parser.add_argument(
        "--naive-tiles", type=int, default=None, help="most tiles the naive loop embeds (300)"
    )
    parser.add_argument(
        "--naive-seconds", type=float, default=None, help="most seconds the naive loop runs (15)"
    )
    parser.add_argument(
        "--repeat", type=int, default=None, help="fresh runs of ours and naive; best kept (2)"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="rasters and caches go here")
    parser.add_argument("--keep", action="store_true", help="keep the default temp dir")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: small sizes, every measurement in this process, no PASSIVE variant, "
        "no CLI re-query",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated sections not to run: dask (4), rss (5), busy (6); e.g. to "
        "measure the encoder alone on a shared machine without writing the 20,000 px raster",
    )
    parser.add_argument("--child", choices=tuple(RUNNERS), help=argparse.SUPPRESS)
    parser.add_argument("--child-opts", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    _apply_defaults(args)
    sizes = (args.size, args.big_size, args.small_size)
    if min(*sizes, args.rss_rows, args.chunk_rows, args.repeat, args.naive_tiles) < 1:
        parser.error("sizes, --rss-rows, --chunk-rows, --repeat, --naive-tiles must be positive")
    if min(sizes) < TILE:
        parser.error(f"rasters must be at least {TILE} px")
    return args


def _apply_defaults(args: argparse.Namespace) -> None:
    """Fill the options not given with the --quick or the full run's value (in place)."""
    defaults = {
        "size": (512, 3072),
        "big_size": (2048, 20000),
        "small_size": (512, 4000),
        "rss_rows": (2, 12),
        "chunk_rows": (2, 8),
        "naive_tiles": (8, 300),
        "naive_seconds": (5.0, 15.0),
        "repeat": (1, 2),
    }
    for name, (quick, full) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    args.matmul_n = 1024 if args.quick else 2048
    args.rounds = 1 if args.quick else 3
    args.round_seconds = 0.3 if args.quick else 1.0


def main(argv: list[str] | None = None) -> int:
    """Write (or reuse) the rasters, run every measurement, print the report."""
    args = parse_args(argv)
    if args.child:
        return child_main(args.child, json.loads(args.child_opts))
    with _common.workdir(args.workdir, args.keep, "geosound-bench-map-") as workdir:
        return _report(args, workdir)


#: The one environment variant: OpenMP threads sleep at once at a barrier instead of spinning.
PASSIVE = {"OMP_WAIT_POLICY": "PASSIVE"}


@dataclass(frozen=True)
class Variant:
    """One way of running the same measurements: a process environment and an encoder backend.

    ``backend`` is a geosound encoder backend, or ``wheel``: the encoder as it was before
    issue 12 (see :func:`_use_backend`).
    """

    env: dict[str, str] | None = None
    backend: str = "torch"


#: What each variant label means, printed under the table.
VARIANT_NOTES = {
    ", before": "the image encoder as before issue 12 (the wheel's network in torch eager: "
    "separate batch norms, a pad before every convolution)",
    ", onnx": "the image encoder on ONNX Runtime (--encoder-backend onnx)",
    ", openvino": "the image encoder on OpenVINO (--encoder-backend openvino)",
    ", PASSIVE": "a process started with OMP_WAIT_POLICY=PASSIVE (OpenMP threads sleep at "
    "once at a barrier instead of spinning)",
}


def _variants(inproc: bool) -> dict[str, Variant]:
    """As shipped (torch, first), before, the other installed backends, and PASSIVE."""
    import importlib.util

    variants = {"": Variant(), ", before": Variant(backend="wheel")}
    for backend, package in (("onnx", "onnxruntime"), ("openvino", "openvino")):
        if importlib.util.find_spec(package) is not None and not (inproc and backend != "onnx"):
            variants[f", {backend}"] = Variant(backend=backend)
    if not inproc:  # an environment needs a fresh process
        variants[", PASSIVE"] = Variant(env=PASSIVE)
    return variants


@dataclass
class _Setup:
    """What every section needs: the options, the rasters and where caches go."""

    args: argparse.Namespace
    workdir: Path
    rasters: dict[int, Path]
    caches: Path
    inproc: bool
    variants: dict[str, Variant]

    @property
    def raster(self) -> Path:
        """The raster of sections 1-4."""
        return self.rasters[self.args.size]

    @property
    def base(self) -> dict[str, Any]:
        """Options every embed_region run of sections 1-4 shares."""
        return {"path": str(self.raster), "chunk_rows": self.args.chunk_rows}


@dataclass
class _Throughput:
    """Sections 1 + 2 as measured: every run, the best of each, and the shipped compute run."""

    compute: dict[str, dict[str, Any]]
    ours_runs: dict[str, list[dict[str, Any]]]
    naive_runs: dict[str, list[dict[str, Any]]]
    ours: dict[str, dict[str, Any]]
    naive: dict[str, dict[str, Any]]
    shipped: dict[str, Any]
    threads: int
    flops: float


def _report(args: argparse.Namespace, workdir: Path) -> int:
    tiling = _tiling()
    trim_at_start = os.environ.get(MALLOC_TRIM, "unset")  # a Dask cluster here would set it
    machine = machine_info()
    started = time.perf_counter()
    load_start = load_average()
    _print_machine(machine, load_start)
    setup = _prepare(args, workdir, tiling)
    profiles = _profiles(setup)
    measured = _measure_throughput(setup)
    rows, limit = _throughput_rows(measured, args.matmul_n)
    _print_throughput(setup, measured, rows, limit)
    requery = _requery(setup, measured)
    skip = set(filter(None, args.skip.split(",")))
    dask_runs, steady = _dask(setup, measured, trim_at_start) if "dask" not in skip else ([], {})
    rss_runs, probe = (_rss(setup), _whole_grid(setup)) if "rss" not in skip else ([], {})
    busy = _busy(setup) if "busy" not in skip else {}
    load_end = load_average()
    elapsed = time.perf_counter() - started
    print(f"load average (1/5/15 min) at end {load_end}; whole run {elapsed:.0f} s")

    if args.json is not None:
        params = (
            "size", "big_size", "small_size", "rss_rows", "chunk_rows", "naive_tiles",
            "naive_seconds", "repeat", "matmul_n", "rounds", "round_seconds", "quick",
        )  # fmt: skip
        payload = {
            "machine": machine,
            "load_average": {"start": load_start, "end": load_end},
            "params": {k: getattr(args, k) for k in params},
            "flops_per_tile": measured.flops,
            "limit_gflops": limit,
            "rows": [row.as_dict(limit) for row in rows],
            "compute": measured.compute,
            "ours": measured.ours_runs,
            "naive": measured.naive_runs,
            "requery": requery,
            "dask": dask_runs,
            "dask_steady_tiles_per_s": {str(k): v for k, v in steady.items()},
            "rss": rss_runs,
            "whole_grid": probe,
            "profiles": profiles,
            "busy": busy,
            "seconds": elapsed,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


def _print_machine(machine: dict[str, Any], load_start: object) -> None:
    """The report's first lines: what ran it, since only ratios compare across machines."""
    print("geosound map benchmark")
    print(
        f"machine: {machine['cpu']}, nproc {machine['nproc']} "
        f"(usable {machine['usable_cpus']}), RAM {machine['ram_gb']} GB; "
        f"device {machine['device']}; "
        f"load average (1/5/15 min) at start {load_start}"
    )
    print(
        f"software: Python {machine['python']}, torch {machine['torch']}, numpy "
        f"{machine['numpy']}, rasterio {machine['rasterio']}, GDAL {machine['gdal']}, "
        f"dask {machine['dask']}"
    )


def _prepare(args: argparse.Namespace, workdir: Path, tiling: ModuleType) -> _Setup:
    """Write (or reuse) the rasters, make the cache folder, pick the variants; say so."""
    rasters = _ensure_rasters(args, workdir, tiling)
    caches = workdir / "caches"
    caches.mkdir(exist_ok=True)
    inproc = args.quick
    where = (
        "all in this process (--quick: a smoke test; RSS figures are not separate)"
        if inproc
        else "each in a fresh subprocess"
    )
    print(
        f"tile {TILE} px, stride {TILE}, chunk_rows {args.chunk_rows}; measurements {where}; "
        "model loading is timed apart and is in no tiles/s"
    )
    return _Setup(args, workdir, rasters, caches, inproc, _variants(inproc))


def _ensure_rasters(args: argparse.Namespace, workdir: Path, tiling: ModuleType) -> dict[int, Path]:
    """Each raster size once, in the page cache, so no section times a cold disk."""
    rasters: dict[int, Path] = {}
    sizes = {args.size} if "rss" in args.skip.split(",") else set()
    for size in sorted(sizes or {args.size, args.big_size, args.small_size}):
        start = time.perf_counter()
        path, reused = tiling.ensure_synthetic(workdir, size, BANDS)
        how = "reused" if reused else f"written in {time.perf_counter() - start:.1f} s"
        print(
            f"raster: {size} x {size} px, {BANDS} bands uint8 (preset {PRESET}), "
            f"{tiling.BLOCK}x{tiling.BLOCK} deflate blocks, {path.stat().st_size / MB:.0f} MB "
            f"on disk ({how}): {path}"
        )
        tiling.warm_page_cache(path)
        rasters[size] = path
    return rasters


# --------------------------------------------------------------------------- 1 + 2: throughput


def _measure_throughput(setup: _Setup) -> _Throughput:
    """Sections 1 + 2: the compute limit per variant, then ours and naive interleaved.

    Interleaving the repeats spreads any change in the machine's load over both methods; the
    best of each is kept, as a shared machine only ever adds time.
    """
    args, inproc, variants = setup.args, setup.inproc, setup.variants
    base = setup.base
    compute_opts = {
        "matmul_n": args.matmul_n,
        "rounds": args.rounds,
        "round_seconds": args.round_seconds,
    }
    naive_opts = {**base, "naive_tiles": args.naive_tiles, "naive_seconds": args.naive_seconds}
    compute: dict[str, dict[str, Any]] = {}
    ours_runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    naive_runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for variant, how in variants.items():
        opts = {**compute_opts, "backend": how.backend}
        compute[variant] = run_child("compute", opts, how.env, inproc)
    for i in range(args.repeat):
        for k, (variant, how) in enumerate(variants.items()):
            cache = str(setup.caches / f"ours{k}_{i}.zarr")
            opts = {**base, "cache": cache, "backend": how.backend}
            ours_runs[variant].append(run_child("ours", opts, how.env, inproc))
            opts = {**naive_opts, "backend": how.backend}
            naive_runs[variant].append(run_child("naive", opts, how.env, inproc))
    ours = {v: min(runs, key=lambda r: r["seconds"]) for v, runs in ours_runs.items()}
    naive = {v: max(runs, key=rate) for v, runs in naive_runs.items()}
    shipped = compute[""]
    return _Throughput(
        compute=compute,
        ours_runs=ours_runs,
        naive_runs=naive_runs,
        ours=ours,
        naive=naive,
        shipped=shipped,
        threads=shipped["torch_threads"],
        flops=shipped["encoder_flops_per_tile"] + shipped["head_flops_per_tile"],
    )


def _tile_row(name: str, run: dict[str, Any], flops: float) -> Row:
    """A table row for a run that embedded tiles (ours, naive)."""
    per_s = rate(run)
    return Row(name, run["tiles"], run["seconds"], per_s, per_s * flops / 1e9, run["peak_rss"] / MB)


def _thread_counts(threads: int) -> list[int]:
    """The shipped torch thread count, then 1 (once, when they are the same)."""
    return sorted({threads, 1}, reverse=True)


def _thread_note(t: int, threads: int) -> str:
    """Names a thread count in a row's label only when it is not the shipped one."""
    return "" if t == threads else f", {t} thr"


def _throughput_rows(measured: _Throughput, matmul_n: int) -> tuple[list[Row], float]:
    """The table rows (ours, naive, encoder-only, matmul) and the matmul limit in GFLOP/s."""
    variants = list(measured.ours)
    rows: list[Row] = []
    for variant in variants:
        rows.append(
            _tile_row(f"ours: embed_region{variant}", measured.ours[variant], measured.flops)
        )
    for variant in variants:
        rows.append(
            _tile_row(f"naive: tile by tile{variant}", measured.naive[variant], measured.flops)
        )
    limits: list[Row] = []
    for variant in variants:
        rows += _encoder_rows(measured, variant)
        limits += _matmul_rows(measured, variant, matmul_n)
    limit = max(row.gflops for row in limits)
    rows += limits
    return rows, limit


def _encoder_rows(measured: _Throughput, variant: str) -> list[Row]:
    """encoder+head rows of one variant: batch 64 and batch 1, at each thread count."""
    rates = measured.compute[variant]["rates"]
    threads, flops = measured.threads, measured.flops
    rows: list[Row] = []
    for key, label in (("enc64", "batch 64"), ("enc1", "batch 1")):
        for t in _thread_counts(threads):
            thr = _thread_note(t, threads)
            r = rates[f"{key}_t{t}"]
            rows.append(
                Row(
                    f"encoder+head only, {label}{thr}{variant}",
                    r["items"], r["seconds"], r["per_s"], r["per_s"] * flops / 1e9,
                )
            )  # fmt: skip
    return rows


def _matmul_rows(measured: _Throughput, variant: str, matmul_n: int) -> list[Row]:
    """matmul rows of one variant, at each thread count: the compute limit."""
    rates = measured.compute[variant]["rates"]
    threads = measured.threads
    matmul_flops = 2 * matmul_n**3
    limits: list[Row] = []
    for t in _thread_counts(threads):
        r = rates[f"matmul_t{t}"]
        thr = _thread_note(t, threads)
        limits.append(
            Row(
                f"matmul {matmul_n}^2 f32{thr}{variant}",
                None, r["seconds"], None, r["per_s"] * matmul_flops / 1e9,
            )
        )  # fmt: skip
    return limits


def _print_throughput(setup: _Setup, measured: _Throughput, rows: list[Row], limit: float) -> None:
    """Sections 1 + 2 printed: the table, what a tile costs, the runs and the ratios."""
    shipped, threads = measured.shipped, measured.threads
    print()
    print(
        f"1+2. embedding throughput, tile {TILE} px, {threads} torch threads unless 'thr' says "
        "otherwise; vs matmul = GFLOP/s over the best matmul row's"
    )
    for variant in setup.variants:
        if variant:
            print(f"{variant[2:]}: the same with {VARIANT_NOTES[variant]}")
    print("rows without a variant: as shipped (torch backend: batch norm folded, channels-last)")
    print(TABLE_HEADER)
    for row in rows:
        print(row.text(limit))
    print(
        f"FLOPs per {TILE}-px tile (FlopCounterMode, 2 per multiply-add): encoder "
        f"{shipped['encoder_flops_per_tile'] / 1e6:.1f} M (convolutions, "
        f"{shipped['tokens_per_tile']} tokens out), head "
        f"{shipped['head_flops_per_tile'] / 1e6:.1f} M; batch norm, activations, padding not "
        "counted"
    )
    model_load = max(shipped["model_load_seconds"], measured.ours[""]["model_load_seconds"])
    for variant in setup.variants:
        runs = measured.ours_runs[variant]
        print(
            f"ours{variant}: {runs[0]['tiles']} tiles ({runs[0]['valid_tiles']} embedded, "
            f"{runs[0]['chunks']} chunks), runs: "
            + " ".join(f"{r['seconds']:.2f}" for r in runs)
            + " s; naive runs: "
            + " ".join(f"{rate(r):.1f}" for r in measured.naive_runs[variant])
            + f" tiles/s over the first {measured.naive[variant]['tiles']} tiles in grid order"
        )
    print(
        f"naive stops at {setup.args.naive_tiles} tiles or {setup.args.naive_seconds:.0f} s; "
        f"model load (SharedSpace + EfficientNet, in no tiles/s): {model_load:.1f} s"
    )
    _print_throughput_ratios(setup, measured, limit)


def _print_throughput_ratios(setup: _Setup, measured: _Throughput, limit: float) -> None:
    """Ours against naive, the encoder alone and the matmul limit: the numbers that compare."""
    threads, flops, compute = measured.threads, measured.flops, measured.compute
    before = rate(measured.ours[", before"])
    key = f"enc64_t{threads}"
    for variant in setup.variants:
        ours_rate = rate(measured.ours[variant])
        print(
            f"ratios{variant or ' (as shipped)'}: ours/naive = "
            f"{ratio(ours_rate, rate(measured.naive[variant])):.2f}x, "
            f"ours/before = {ratio(ours_rate, before):.2f}x, "
            f"ours/encoder-only(batch 64) = "
            f"{ratio(ours_rate, compute[variant]['rates'][key]['per_s']):.2f}x, "
            f"ours vs matmul limit = {ratio(ours_rate * flops / 1e9, limit):.1%}"
        )
    for variant in setup.variants:
        enc64 = compute[variant]["rates"][key]["per_s"]
        print(
            f"encoder-only batch 64 ({threads} thr{variant or ', as shipped'}) vs matmul limit = "
            f"{ratio(enc64 * flops / 1e9, limit):.1%}, vs before = "
            f"{ratio(enc64, compute[', before']['rates'][key]['per_s']):.2f}x"
        )


# --------------------------------------------------------------------------- 0: profile


def _profiles(setup: _Setup) -> list[dict[str, Any]]:
    """Section 0: where the encoder's time goes, before and as shipped (torch profiler)."""
    top = 8 if setup.inproc else 12
    opts = {"batches": 2 if setup.inproc else 5, "top": top}
    profiles = [
        run_child("profile", {**opts, "backend": backend}, None, setup.inproc)
        for backend in ("wheel", "torch")
    ]
    print()
    print(
        f"0. where the image encoder's time goes: torch profiler, {opts['batches']} batches of 64 "
        f"tiles ({TILE} px), encoder only, top {top} ops by self CPU time"
    )
    labels = ("before (wheel network, eager)", "as shipped (torch)")
    for label, profile in zip(labels, profiles, strict=True):
        total = profile["total_self_cpu_us"]
        print(f"{label}: {total / 1e6:.2f} s self CPU in all")
        print(f"  {'op':<36} {'self CPU ms':>11} {'share':>6} {'calls':>6}")
        for op in profile["ops"]:
            print(
                f"  {op['name'][:36]:<36} {op['self_cpu_us'] / 1e3:>11.1f} "
                f"{ratio(op['self_cpu_us'], total):>6.1%} {op['calls']:>6}"
            )
    return profiles


# --------------------------------------------------------------------------- 3: re-query


def _requery(setup: _Setup, measured: _Throughput) -> dict[str, Any]:
    """Section 3: re-query of the cached region vs full recompute; its JSON record."""
    shipped_ours = measured.ours_runs[""][-1]
    full = shipped_ours["seconds"] + shipped_ours["first_query_seconds"]
    requery = shipped_ours["requery_seconds"]
    print()
    print(f"3. re-query a cached region ({shipped_ours['tiles']} tiles) vs full recompute, 3 texts")
    print(f"{'step':<68} {'seconds':>8}")
    print(f"{'full recompute: embed_region (fresh cache) + query_layers':<68} {full:>8.2f}")
    print(f"{'re-query: embed_region (cached: resume check) + query_layers':<68} {requery:>8.2f}")
    print(f"{'  of which the resume check':<68} {shipped_ours['resume_check_seconds']:>8.2f}")
    cli_seconds = None
    if not setup.inproc:
        args = setup.args
        last_cache = setup.caches / f"ours0_{args.repeat - 1}.zarr"
        cli_seconds = run_cli_requery(
            setup.raster, last_cache, setup.workdir / "map_out", args.chunk_rows
        )
        label = "re-query, cold: `geosound map` CLI (imports, model loads, writes)"
        print(f"{label:<68} {cli_seconds:>8.2f}")
    print(
        f"ratio full recompute / re-query = {ratio(full, requery):.0f}x "
        "(same process, models loaded, the last as-shipped run)"
    )
    return {
        "full_seconds": full,
        "requery_seconds": requery,
        "cli_requery_seconds": cli_seconds,
        "ratio": ratio(full, requery),
    }


# --------------------------------------------------------------------------- 4: Dask


def _dask_label(run: dict[str, Any]) -> str:
    """``1``, ``2``, ``1 no-trim``, …: a Dask run's name in the table and the JSON."""
    return f"{run['workers']}{'' if run['malloc_trim'] else ' no-trim'}"


def _dask(
    setup: _Setup, measured: _Throughput, trim_at_start: str
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Section 4: Dask, 1 vs 2 workers (and without Dask's malloc trim); runs, steady rates."""
    trims = [True] if setup.inproc else [True, False]
    dask_runs = []
    for trim in trims:
        for n in (1, 2):
            opts = {**setup.base, "workers": n, "malloc_trim": trim}
            opts["cache"] = str(setup.caches / f"dask{n}{'' if trim else '_notrim'}.zarr")
            dask_runs.append(run_child("dask", opts, None, setup.inproc))
    print()
    print(
        f"4. Dask LocalCluster, fresh caches, {dask_runs[0]['tiles']} tiles in "
        f"{dask_runs[0]['chunks']} chunks of {setup.args.chunk_rows} grid rows"
    )
    print(
        f"{'workers':<12} {'start-up s':>10} {'total s':>8} {'1st round s':>11} "
        f"{'steady tiles/s':>14} {'overall tiles/s':>15} {'torch thr':>9}  {MALLOC_TRIM}"
    )
    for variant in setup.variants:
        label = f"0{variant[1:]}" if variant else "0 (in-proc)"
        run = measured.ours[variant]
        print(
            f"{label:<12} {0.0:>10.2f} {run['seconds']:>8.2f} {'-':>11} "
            f"{'-':>14} {rate(run):>15.1f} {run['torch_threads']:>9}  "
            f"{trim_at_start}"
        )
    steady = {_dask_label(run): _print_dask_run(run) for run in dask_runs}
    _print_dask_notes(len(trims))
    _print_dask_ratios(dask_runs, steady, len(trims), measured.ours[""])
    return dask_runs, steady


def _print_dask_run(run: dict[str, Any]) -> float:
    """One Dask row; returns its steady tiles/s (NaN when no chunk came after the first round).

    The first round carries start-up, imports and a model load per worker, so only the chunks
    after it say how fast the workers go once running.
    """
    workers, done = run["workers"], run["chunk_done_seconds"]
    per_chunk = run["tiles"] / run["chunks"]
    first_round = done[min(workers, len(done)) - 1]
    later = len(done) - workers
    span = done[-1] - first_round
    steady = later * per_chunk / span if later > 0 and span > 0 else float("nan")
    threads_text = ",".join(str(t) for t in run["worker_torch_threads"])
    print(
        f"{_dask_label(run):<12} {run['startup_seconds']:>10.2f} {run['seconds']:>8.2f} "
        f"{first_round:>11.2f} {steady:>14.1f} {rate(run):>15.1f} "
        f"{threads_text:>9}  {','.join(run['worker_malloc_trim'])}"
    )
    return steady


def _print_dask_notes(n_trims: int) -> None:
    """What the Dask columns mean (and the no-trim rows, when they ran)."""
    print(
        "start-up: LocalCluster(n, threads_per_worker=1, processes=True) until all workers are "
        "up, timed on its own (embed_region starts an identical one, so total includes it); "
        "1st round: from the call until the first n chunks are done (start-up, imports and "
        "model load in each worker, one chunk each); steady: the other chunks' tiles over "
        "their time"
        + (
            f"; no-trim: Dask's worker setting {MALLOC_TRIM}=65536 removed (dask.config "
            "distributed.nanny.pre-spawn-environ), all else as shipped"
            if n_trims > 1
            else ""
        )
    )


def _print_dask_ratios(
    dask_runs: list[dict[str, Any]],
    steady: dict[str, float],
    n_trims: int,
    in_proc: dict[str, Any],
) -> None:
    """2 workers vs 1, vs in-process, and Dask's malloc trim vs none."""
    by_label = {_dask_label(r): r for r in dask_runs}
    for suffix in ("", " no-trim")[:n_trims]:
        one, two = by_label[f"1{suffix}"], by_label[f"2{suffix}"]
        print(
            f"ratios 2 workers / 1 worker{suffix}: steady tiles/s "
            f"{ratio(steady[f'2{suffix}'], steady[f'1{suffix}']):.2f}x, total time "
            f"{ratio(one['seconds'], two['seconds']):.2f}x; 2 workers vs in-process as shipped "
            f"(total time) {ratio(in_proc['seconds'], two['seconds']):.2f}x"
        )
    if n_trims > 1:
        print(
            f"{MALLOC_TRIM} unset vs Dask's 65536 (steady tiles/s): 1 worker "
            f"{ratio(steady['1 no-trim'], steady['1']):.2f}x, 2 workers "
            f"{ratio(steady['2 no-trim'], steady['2']):.2f}x"
        )


# --------------------------------------------------------------------------- 5: RSS


def _rss(setup: _Setup) -> list[dict[str, Any]]:
    """Section 5: peak RSS on a band of the big raster and on the small one, ~same tiles.

    Equal tile counts on rasters of very different sizes show whether memory follows the
    tiles embedded (it should) or the raster's size.
    """
    args, rasters = setup.args, setup.rasters
    big, small = args.big_size, args.small_size
    big_rows = min(args.rss_rows, grid_len(big))
    small_rows = min(max(1, round(big_rows * grid_len(big) / grid_len(small))), grid_len(small))
    rss_runs = []
    for size, band_rows in ((big, big_rows), (small, small_rows)):
        first = (grid_len(size) - band_rows) // 2
        opts = {
            "path": str(rasters[size]),
            "bounds": list(band_bounds(rasters[size], first, band_rows)),
            "chunk_rows": args.chunk_rows,
            "cache": str(setup.caches / f"rss{size}.zarr"),
        }
        rss_runs.append(run_child("rss", opts, None, setup.inproc))
    _print_rss(args, rss_runs)
    return rss_runs


def _print_rss(args: argparse.Namespace, rss_runs: list[dict[str, Any]]) -> None:
    """Section 5's table and the big-vs-small comparison."""
    big, small = args.big_size, args.small_size
    print()
    print(
        f"5. peak RSS of embed_region on a full-width bbox band of grid rows (as shipped, "
        f"chunk_rows {args.chunk_rows}, {rss_runs[0]['torch_threads']} torch threads)"
    )
    print(
        f"{'raster':<10} {'band rows':>9} {'cols':>5} {'tiles':>6} {'chunks':>6} {'seconds':>8} "
        f"{'baseline MB':>11} {'peak embed MB':>13} {'peak RSS MB':>11}  RSS after each chunk MB"
    )
    for size, run in zip((big, small), rss_runs, strict=True):
        after = " ".join(f"{v / MB:.0f}" for v in run["chunk_rss"])
        print(
            f"{f'{size} px':<10} {run['grid_rows']:>9} {run['grid_cols']:>5} {run['tiles']:>6} "
            f"{run['chunks']:>6} {run['seconds']:>8.1f} {run['baseline_rss'] / MB:>11.0f} "
            f"{run['peak_embed_rss'] / MB:>13.0f} {run['peak_rss'] / MB:>11.0f}  {after}"
        )
    big_run, small_run = rss_runs
    print(
        "baseline = RSS after imports + model load; peak embed = peak during embed_region "
        f"({big_run['peak_embed_source']}); peak RSS = getrusage ru_maxrss of the whole process"
    )
    grow_big = (big_run["peak_embed_rss"] - big_run["baseline_rss"]) / MB
    grow_small = (small_run["peak_embed_rss"] - small_run["baseline_rss"]) / MB
    print(
        f"RSS: {big} px vs {small} px ({ratio(big * big, small * small):.0f}x the pixels), "
        f"~same tiles: peak RSS {big_run['peak_rss'] / MB:.0f} vs {small_run['peak_rss'] / MB:.0f}"
        f" MB ({ratio(big_run['peak_rss'], small_run['peak_rss']):.2f}x); embed_region's own "
        f"growth {grow_big:.0f} vs {grow_small:.0f} MB"
    )


def _whole_grid(setup: _Setup) -> dict[str, Any]:
    """Time and memory of the big raster's whole tile grid (compute_chunk rebuilds it)."""
    big = setup.args.big_size
    probe = run_child("grid", {"path": str(setup.rasters[big])}, None, setup.inproc)
    print(
        f"whole-raster tile grid of the {big} px raster, {'this' if setup.inproc else 'fresh'} "
        "process (compute_chunk rebuilds "
        f"the whole region's grid in every chunk): {probe['tiles']} tiles, "
        f"{probe['seconds']:.2f} s, {probe['rss_held'] / MB:.0f} MB held"
    )
    return probe


# --------------------------------------------------------------------------- 6: busy machine


@contextlib.contextmanager
def busy_loops(count: int) -> Any:
    """``count`` processes that spin on a CPU each: a machine whose cores other work wants."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(0.5)  # let them get onto the cores
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def _busy(setup: _Setup) -> dict[str, Any]:
    """Section 6: encoder+head at batch 64 with one busy loop per core, per variant.

    What OpenMP's spin-wait does to torch when other work shares the cores (item 5 of
    issue 12), next to PASSIVE and the exported backends; the quiet figures are section 1's.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    count = int(cores or 1)
    opts = {"rounds": 1 if setup.inproc else 2, "round_seconds": 0.3 if setup.inproc else 1.0}
    results: dict[str, dict[str, Any]] = {}
    for variant, how in setup.variants.items():
        with busy_loops(count):
            results[variant] = run_child(
                "loaded", {**opts, "backend": how.backend}, how.env, setup.inproc
            )
    threads = results[""]["torch_threads"]
    print()
    print(
        f"6. busy machine: encoder+head only, batch 64, with {count} busy-loop processes "
        f"(one per usable core) running beside it; tiles/s, best of {opts['rounds']} rounds"
    )
    print(f"{'variant':<14} " + " ".join(f"{f'{t} thr':>9}" for t in _thread_counts(threads)))
    for variant, result in results.items():
        rates = result["rates"]
        print(
            f"{variant[2:] or 'as shipped':<14} "
            + " ".join(f"{rates[f'enc64_t{t}']:>9.1f}" for t in _thread_counts(threads))
        )
    return {"busy_loops": count, "results": results}


if __name__ == "__main__":
    sys.exit(main())
