"""Benchmark: tile a large synthetic GeoTIFF with geosound, next to the naive way and the
machine's limit, and check that peak memory stays bounded.

Why this exists: the issue asks that tiling a 20,000 × 20,000 raster reports tiles/s and keeps
peak RSS under 1.5 GB, and the project rule is that speed is measured side by side in one run
and printed as ratios (ours vs the naive way, vs the machine's measured limit), because
absolute numbers mean nothing across machines.

What it does:

1. Writes a synthetic GeoTIFF (uint8, EPSG:32632, 10 m pixels, 256 × 256 deflate blocks) one
   block row at a time, so writing never holds the raster in memory. It is reused when the
   work folder already holds one made with the same parameters (a tag records them).
2. Reads the file once, so every method below reads from the OS page cache, not the disk.
3. Runs each method in a fresh subprocess, so each peak RSS is that method's own:

   * ``ours``  — :func:`geosound.geo.tiles.tile_grid` + :func:`~geosound.geo.tiles.read_tiles`
     over the whole raster;
   * ``naive`` — a plain rasterio loop, one ``read(window, boundless=True, masked=True)`` per
     tile (a sample of grid rows, as it is slow);
   * ``limit`` — the fastest raw decode of the same file: every block in the file's own order
     (``block_windows``), no grid, no masks, under a small GDAL block cache (each block is
     read once, so caching gains nothing, and filling GDAL's default cache — 5 % of RAM —
     measurably slows the decode). Its tiles/s is the grid's tile count over the time to
     decode the whole raster: no tiler can beat it on one thread.

   Every method consumes its pixels the same way (a sum of ``.data``), so no work is skipped
   and the checksums of ``ours`` and ``limit`` must agree.

Run ``python benchmarks/bench_tiling.py --help``; benchmarks/README.md explains the numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import _common

if TYPE_CHECKING:
    import numpy as np

#: The issue's bound on peak RSS for ``ours`` (decimal megabytes: 1.5 GB = 1500 MB).
RSS_LIMIT_MB = 1500.0
#: Bump when the synthetic content changes, so stale files in a reused --workdir are rewritten.
SYNTHETIC_VERSION = 1
SYNTHETIC_TAG = "GEOSOUND_BENCH_TILING"
SEED = 20261123
#: GDAL block cache for the ``limit`` run, in bytes (an int in rasterio.Env is bytes).
LIMIT_CACHE_BYTES = 16 << 20
BLOCK = 256
MB = 1e6
METHODS = ("ours", "naive", "limit")
TABLE_HEADER = (
    f"{'method':<7} {'tiles':>7} {'seconds':>9} {'tiles/s':>9} {'MB/s':>8} "
    f"{'peak RSS MB':>12} {'baseline MB':>12}"
)


# --------------------------------------------------------------------------- synthetic raster


def synthetic_params(size: int, bands: int) -> dict[str, Any]:
    """The parameters a synthetic file is identified by (stored in its tags for reuse)."""
    return {
        "version": SYNTHETIC_VERSION,
        "size": size,
        "bands": bands,
        "seed": SEED,
        "block": BLOCK,
    }


def synthetic_strip(row_off: int, height: int, width: int, bands: int, seed: int) -> np.ndarray:
    """Pixels of rows [row_off, row_off + height) of the synthetic raster, (bands, h, w) uint8.

    A few slanted sine waves per band (smooth, so deflate has something to find) plus uniform
    noise seeded by the strip's position (so the file compresses only partly, and is the same
    whatever order strips are made in). Each wave is built from 1-D sines and cosines
    (sin(a + b) = sin a cos b + cos a sin b), so a strip costs a few outer products.
    """
    import numpy as np

    waves = np.random.default_rng(seed).uniform(size=(bands, 3, 4))
    noise_rng = np.random.default_rng([seed, row_off])
    xs = np.arange(width, dtype=np.float64)
    ys = np.arange(row_off, row_off + height, dtype=np.float64)
    out = np.empty((bands, height, width), dtype=np.uint8)
    for band in range(bands):
        value = np.full((height, width), 128.0, dtype=np.float32)
        for u_len, u_angle, u_phase, u_amp in waves[band]:
            wavelength = 300.0 + 4000.0 * u_len  # pixels
            angle = np.pi * u_angle
            kx = 2 * np.pi * np.cos(angle) / wavelength
            ky = 2 * np.pi * np.sin(angle) / wavelength
            amplitude = np.float32(15.0 + 30.0 * u_amp)
            phase = 2 * np.pi * u_phase
            sx = np.sin(kx * xs + phase).astype(np.float32)
            cx = np.cos(kx * xs + phase).astype(np.float32)
            sy = np.sin(ky * ys).astype(np.float32)
            cy = np.cos(ky * ys).astype(np.float32)
            value += amplitude * (np.outer(cy, sx) + np.outer(sy, cx))
        value += noise_rng.integers(-8, 9, size=(height, width), dtype=np.int8)
        np.clip(value, 0, 255, out=value)
        out[band] = value.astype(np.uint8)
    return out


def ensure_synthetic(workdir: Path, size: int, bands: int) -> tuple[Path, bool]:
    """Write the synthetic GeoTIFF into ``workdir`` unless an identical one is there.

    Written one 256-row block row at a time under a small GDAL cache, to a ``.partial`` name
    renamed at the end, so an interrupted run never leaves a file that looks reusable.

    Returns:
        The path and whether it was reused.
    """
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    params = synthetic_params(size, bands)
    path = workdir / f"synthetic_{size}px_{bands}b.tif"
    if path.exists():
        with contextlib.suppress(Exception), rasterio.open(path) as existing:
            if json.loads(existing.tags().get(SYNTHETIC_TAG, "null")) == params:
                return path, True
    partial = path.with_suffix(".tif.partial")
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": bands,
        "dtype": "uint8",
        "crs": "EPSG:32632",
        "transform": from_origin(400_000.0, 5_400_000.0, 10.0, 10.0),
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "compress": "deflate",
        "interleave": "pixel",
        "bigtiff": "if_safer",
        "num_threads": "all_cpus",  # compression only; reading is timed single-threaded
    }
    # An int GDAL_CACHEMAX in rasterio.Env is bytes (the environment variable is MB).
    with rasterio.Env(GDAL_CACHEMAX=128 << 20), rasterio.open(partial, "w", **profile) as dst:
        for row_off in range(0, size, BLOCK):
            height = min(BLOCK, size - row_off)
            strip = synthetic_strip(row_off, height, size, bands, SEED)
            dst.write(strip, window=Window(0, row_off, size, height))
        dst.update_tags(**{SYNTHETIC_TAG: json.dumps(params)})
    os.replace(partial, path)
    return path, False


def warm_page_cache(path: Path) -> float:
    """Read the file once so every method reads from the OS page cache; returns seconds."""
    start = time.perf_counter()
    with path.open("rb") as handle:
        while handle.read(16 << 20):
            pass
    return time.perf_counter() - start


# --------------------------------------------------------------------------- child: one method


def peak_rss_bytes() -> int:
    """This process's peak RSS (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def current_rss_bytes() -> int:
    """This process's current RSS."""
    import psutil

    return int(psutil.Process().memory_info().rss)


def gdal_cache_bytes() -> tuple[int | None, int | None]:
    """GDAL's block cache (max, in use), read from the libgdal that rasterio loaded.

    The block cache is the one thing in a reader whose size does not follow the window: by
    default it may grow to 5 % of physical RAM, so it is reported next to peak RSS.
    """
    try:
        with open("/proc/self/maps") as maps:
            libs = sorted({line.split()[-1] for line in maps if "libgdal" in line})
        lib = ctypes.CDLL(libs[0])
        get_max, get_used = lib.GDALGetCacheMax64, lib.GDALGetCacheUsed64
        get_max.restype = get_used.restype = ctypes.c_int64
        return int(get_max()), int(get_used())
    except (OSError, IndexError, AttributeError):
        return None, None


def grid_offsets(extent: int, tile: int) -> list[int]:
    """Tile origins along one axis, as ``tile_grid(stride=tile, partial="pad")`` lays them."""
    return list(range(0, extent, tile))


def inside_bytes(row_off: int, col_off: int, tile: int, width: int, height: int, bands: int) -> int:
    """Bytes of a tile that lie inside the raster (uint8): what was really read from the file."""
    return bands * max(0, min(tile, height - row_off)) * max(0, min(tile, width - col_off))


def run_ours(path: str, tile: int, batch: int) -> dict[str, Any]:
    """geosound's way: one grid, then batches streamed strip by strip."""
    import numpy as np

    from geosound.geo.raster import RasterSource
    from geosound.geo.tiles import read_tiles, tile_grid

    baseline = current_rss_bytes()
    checksum = 0
    start = time.perf_counter()
    with RasterSource(path) as source:
        grid = tile_grid(source, tile)
        grid_seconds = time.perf_counter() - start
        tiles = 0
        for tile_batch in read_tiles(source, grid, batch_size=batch):
            checksum += int(np.ma.getdata(tile_batch.pixels).sum(dtype=np.uint64))
            tiles += len(tile_batch.tile_ids)
        width, height, bands = source.width, source.height, source.count
        cache = gdal_cache_bytes()
    seconds = time.perf_counter() - start
    return {
        "tiles": tiles,
        "seconds": seconds,
        "bytes_read": width * height * bands,
        "checksum": checksum,
        "baseline_rss": baseline,
        "grid_seconds": grid_seconds,
        "gdal_cache": cache,
    }


def run_naive(path: str, tile: int, rows: int) -> dict[str, Any]:
    """The straightforward way: one boundless, masked rasterio read per tile.

    Only the first ``rows`` grid rows (0: all), to cap run time; tiles/s is what is compared.
    """
    import numpy as np
    import rasterio
    from rasterio.windows import Window

    baseline = current_rss_bytes()
    checksum = tiles = nbytes = 0
    start = time.perf_counter()
    with rasterio.open(path) as dataset:
        row_offsets = grid_offsets(dataset.height, tile)
        if rows > 0:
            row_offsets = row_offsets[:rows]
        for row_off in row_offsets:
            for col_off in grid_offsets(dataset.width, tile):
                window = Window(col_off, row_off, tile, tile)
                pixels = dataset.read(window=window, boundless=True, masked=True)
                checksum += int(np.ma.getdata(pixels).sum(dtype=np.uint64))
                tiles += 1
                nbytes += inside_bytes(
                    row_off, col_off, tile, dataset.width, dataset.height, dataset.count
                )
        cache = gdal_cache_bytes()
    seconds = time.perf_counter() - start
    return {
        "tiles": tiles,
        "seconds": seconds,
        "bytes_read": nbytes,
        "checksum": checksum,
        "baseline_rss": baseline,
        "grid_rows": len(row_offsets),
        "gdal_cache": cache,
    }


def run_limit(path: str, tile: int) -> dict[str, Any]:
    """The machine's limit: decode every block once, in file order, with nothing else.

    ``tiles`` is the grid's tile count, so tiles/s reads as "a tiler that cost nothing beyond
    decoding would deliver this many tiles per second". The block cache is kept small
    whatever ``--gdal-cachemax`` says: every block is read once, and a large cache only adds
    the cost of faulting in fresh memory for it.
    """
    import numpy as np
    import rasterio

    baseline = current_rss_bytes()
    checksum = blocks = 0
    start = time.perf_counter()
    with rasterio.Env(GDAL_CACHEMAX=LIMIT_CACHE_BYTES), rasterio.open(path) as dataset:
        for _, window in dataset.block_windows(1):
            pixels = dataset.read(window=window)
            checksum += int(pixels.sum(dtype=np.uint64))
            blocks += 1
        width, height, bands = dataset.width, dataset.height, dataset.count
        cache = gdal_cache_bytes()
    seconds = time.perf_counter() - start
    return {
        "tiles": len(grid_offsets(width, tile)) * len(grid_offsets(height, tile)),
        "seconds": seconds,
        "bytes_read": width * height * bands,
        "checksum": checksum,
        "baseline_rss": baseline,
        "blocks": blocks,
        "gdal_cache": cache,
    }


def child_main(args: argparse.Namespace) -> int:
    """Run one method and print its result as one JSON line (the parent parses the last line)."""
    if args.child == "ours":
        result = run_ours(args.path, args.tile, args.batch)
    elif args.child == "naive":
        result = run_naive(args.path, args.tile, args.naive_rows)
    else:
        result = run_limit(args.path, args.tile)
    result["peak_rss"] = peak_rss_bytes()
    print(json.dumps(result))
    return 0


# --------------------------------------------------------------------------- parent: report


@dataclass
class MethodResult:
    """One row of the table."""

    method: str
    tiles: int
    seconds: float
    bytes_read: int
    peak_rss_mb: float
    baseline_rss_mb: float
    checksum: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tiles_per_s(self) -> float:
        """Tiles delivered per second (for ``limit``: grid tiles per whole-raster decode)."""
        return self.tiles / self.seconds if self.seconds > 0 else float("inf")

    @property
    def mb_per_s(self) -> float:
        """Uncompressed raster megabytes read from the file per second (padding excluded)."""
        return self.bytes_read / MB / self.seconds if self.seconds > 0 else float("inf")

    def row(self) -> str:
        """The table row."""
        return (
            f"{self.method:<7} {self.tiles:>7d} {self.seconds:>9.2f} {self.tiles_per_s:>9.1f} "
            f"{self.mb_per_s:>8.1f} {self.peak_rss_mb:>12.0f} {self.baseline_rss_mb:>12.0f}"
        )


def run_child(method: str, path: Path, args: argparse.Namespace) -> MethodResult:
    """Run one method in a fresh interpreter, so its peak RSS is its own."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        method,
        "--path",
        str(path),
        "--tile",
        str(args.tile),
        "--batch",
        str(args.batch),
        "--naive-rows",
        str(args.naive_rows),
    ]
    env = dict(os.environ)
    if args.gdal_cachemax is not None:
        env["GDAL_CACHEMAX"] = str(args.gdal_cachemax)
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"{method}: benchmark child failed with exit code {done.returncode}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    keys = ("tiles", "seconds", "bytes_read", "peak_rss", "baseline_rss", "checksum")
    return MethodResult(
        method=method,
        tiles=int(data["tiles"]),
        seconds=float(data["seconds"]),
        bytes_read=int(data["bytes_read"]),
        peak_rss_mb=data["peak_rss"] / MB,
        baseline_rss_mb=data["baseline_rss"] / MB,
        checksum=int(data["checksum"]),
        extra={k: v for k, v in data.items() if k not in keys},
    )


def best_of(runs: list[MethodResult]) -> MethodResult:
    """The fastest run, with the highest peak RSS of all runs (memory is judged worst-case).

    Best-of-N because a shared machine only ever adds time; RSS does not improve by luck.
    """
    best = min(runs, key=lambda run: run.seconds)
    if len({run.checksum for run in runs}) != 1:
        raise SystemExit(f"{best.method}: checksums differ between repeats")
    return MethodResult(
        method=best.method,
        tiles=best.tiles,
        seconds=best.seconds,
        bytes_read=best.bytes_read,
        peak_rss_mb=max(run.peak_rss_mb for run in runs),
        baseline_rss_mb=best.baseline_rss_mb,
        checksum=best.checksum,
        extra={**best.extra, "all_seconds": [run.seconds for run in runs]},
    )


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on, printed with them."""
    import rasterio

    return _common.machine_info(rasterio=rasterio.__version__, gdal=rasterio.__gdal_version__)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line; ``--child``/``--path`` are internal (one method in a subprocess)."""
    parser = argparse.ArgumentParser(
        description="Tile a synthetic GeoTIFF: geosound vs a naive loop vs raw block decode.",
    )
    parser.add_argument("--size", type=int, default=None, help="raster side in pixels (20000)")
    parser.add_argument("--tile", type=int, default=256, help="tile side in pixels (256)")
    parser.add_argument("--bands", type=int, default=3, help="bands (3)")
    parser.add_argument("--batch", type=int, default=64, help="read_tiles batch size (64)")
    parser.add_argument(
        "--naive-rows",
        type=int,
        default=16,
        help="grid rows the naive loop reads, from the top (16; 0 = all)",
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where the GeoTIFF goes (default: temp dir)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="fresh runs per method, interleaved; best time, highest RSS kept (3; --quick: 1)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the default temp dir")
    parser.add_argument("--quick", action="store_true", help="smoke run: size 4000 unless --size")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument(
        "--gdal-cachemax",
        type=int,
        default=None,
        help="GDAL_CACHEMAX for ours and naive, MB (default: GDAL's, 5%% of RAM)",
    )
    parser.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.size is None:
        args.size = 4000 if args.quick else 20000
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if min(args.size, args.tile, args.bands, args.batch, args.repeat) < 1 or args.naive_rows < 0:
        parser.error(
            "--size, --tile, --bands, --batch and --repeat must be positive, --naive-rows >= 0"
        )
    return args


ratio = _common.ratio


def main(argv: list[str] | None = None) -> int:
    """Write (or reuse) the raster, time the three methods side by side, print the report.

    Returns 1 when peak RSS of ``ours`` is over the issue's bound (or the checksums disagree).
    """
    args = parse_args(argv)
    if args.child:
        return child_main(args)

    with _common.workdir(args.workdir, args.keep, "geosound-bench-tiling-") as workdir:
        return _report(args, workdir)


def _report(args: argparse.Namespace, workdir: Path) -> int:
    machine = machine_info()
    print("geosound tiling benchmark")
    print(
        f"machine: {machine['cpu']}, nproc {machine['nproc']} "
        f"(usable {machine['usable_cpus']}), RAM {machine['ram_gb']} GB; "
        f"device {machine['device']}"
    )
    print(
        f"software: Python {machine['python']}, numpy {machine['numpy']}, "
        f"rasterio {machine['rasterio']}, GDAL {machine['gdal']}"
    )

    start = time.perf_counter()
    path, reused = ensure_synthetic(workdir, args.size, args.bands)
    write_seconds = time.perf_counter() - start
    file_mb = path.stat().st_size / MB
    raw_mb = args.size * args.size * args.bands / MB
    print(
        f"raster: {args.size} x {args.size} px, {args.bands} band(s) uint8, EPSG:32632 10 m, "
        f"{BLOCK}x{BLOCK} deflate blocks; {raw_mb:.0f} MB raw, {file_mb:.0f} MB on disk "
        f"({'reused' if reused else f'written in {write_seconds:.1f} s'}): {path}"
    )
    warm_seconds = warm_page_cache(path)
    print(f"page cache warmed: file read once in {warm_seconds:.2f} s")
    cachemax = (
        "geosound default (GDAL_CACHEMAX=256 MB unless set)"
        if args.gdal_cachemax is None
        else f"{args.gdal_cachemax} MB"
    )
    print(
        f"grid: tile {args.tile}, stride {args.tile}, partial=pad; batch {args.batch}; "
        f"GDAL_CACHEMAX {cachemax}; a fresh subprocess per run, best of {args.repeat}"
    )

    runs: dict[str, list[MethodResult]] = {method: [] for method in METHODS}
    for _ in range(args.repeat):
        for method in ("limit", "ours", "naive"):  # interleaved, so drift hits all alike
            runs[method].append(run_child(method, path, args))
    results = {method: best_of(runs[method]) for method in METHODS}
    ours, naive, limit = results["ours"], results["naive"], results["limit"]

    print()
    print(TABLE_HEADER)
    for method in METHODS:
        print(results[method].row())
    print()
    if args.repeat > 1:
        spread = "; ".join(
            f"{m} " + " ".join(f"{t:.2f}" for t in results[m].extra["all_seconds"]) for m in METHODS
        )
        print(f"all runs (s): {spread}")
    naive_rows = naive.extra.get("grid_rows")
    print(f"naive: first {naive_rows} grid row(s) only ({naive.tiles} of {ours.tiles} tiles)")
    print(
        "limit: tiles = the grid's tiles, time = decoding every block once "
        f"(GDAL cache {LIMIT_CACHE_BYTES >> 20} MB)"
    )
    gdal_max, gdal_used = ours.extra.get("gdal_cache") or (None, None)
    if gdal_max is not None:
        print(
            f"GDAL block cache in ours: max {gdal_max / MB:.0f} MB, "
            f"in use at the end {gdal_used / MB:.0f} MB"
        )
    print(
        f"ratios (tiles/s): ours/naive = {ratio(ours.tiles_per_s, naive.tiles_per_s):.2f}x, "
        f"ours/limit = {ratio(ours.tiles_per_s, limit.tiles_per_s):.2f}x"
    )
    checksums_ok = ours.checksum == limit.checksum
    print(
        f"checksum ours == limit: {'yes' if checksums_ok else 'NO'} "
        f"({ours.checksum} vs {limit.checksum})"
    )
    rss_ok = ours.peak_rss_mb < RSS_LIMIT_MB
    print(
        f"RSS: peak RSS of ours {ours.peak_rss_mb:.0f} MB < {RSS_LIMIT_MB:.0f} MB: "
        f"{'PASS' if rss_ok else 'FAIL'}"
    )

    if args.json is not None:
        payload = {
            "machine": machine,
            "params": {
                **synthetic_params(args.size, args.bands),
                "tile": args.tile,
                "batch": args.batch,
                "naive_rows": args.naive_rows,
                "repeat": args.repeat,
                "gdal_cachemax": args.gdal_cachemax,
                "file_mb": file_mb,
                "raw_mb": raw_mb,
            },
            "results": {
                m: {**asdict(r), "tiles_per_s": r.tiles_per_s, "mb_per_s": r.mb_per_s}
                for m, r in results.items()
            },
            "ratios": {
                "ours_vs_naive": ratio(ours.tiles_per_s, naive.tiles_per_s),
                "ours_vs_limit": ratio(ours.tiles_per_s, limit.tiles_per_s),
            },
            "rss_limit_mb": RSS_LIMIT_MB,
            "rss_pass": rss_ok,
            "checksums_match": checksums_ok,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0 if rss_ok and checksums_ok else 1


if __name__ == "__main__":
    sys.exit(main())
