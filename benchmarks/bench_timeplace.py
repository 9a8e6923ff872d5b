"""Maps at many hours: cache the time-free part and fuse per hour, vs an hour in the cache key.

A region cache of a model trained with metadata could key its embeddings by month and hour
(the naive way: every hour is a new cache, so every hour runs the image encoder again over
every tile), or keep the image head's projected tokens, which do not depend on time, and fuse
each hour when a product asks (geosound's way, geosound/mapping/timeplace.py). This runs both
on the same tiles, side by side, and prints the ratio.

    .venv/bin/python benchmarks/bench_timeplace.py            # demo scene, 24 hours
    .venv/bin/python benchmarks/bench_timeplace.py --quick    # a smoke run (seconds)

The model is a tiny Sat2Sound with metadata and random weights: speed does not depend on the
weights. Options: ``--tile`` (64), ``--hours`` (24), ``--naive-hours`` (hours the naive way
really runs; its per-hour time is the mean of those, 3), ``--json PATH``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_average, machine_info, ratio

from geosound.config import assets_dir
from geosound.encoders.base import encoder_from_id
from geosound.geo import RasterSource, read_tiles, resolve_preset, tile_grid, to_rgb
from geosound.models import build_sat2sound, metadata_features


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raster", type=Path, default=assets_dir() / "demo_naip_nd_2020.tif")
    parser.add_argument("--tile", type=int, default=64)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--naive-hours", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a few tiles and hours")
    parser.add_argument("--workdir", type=Path, help="unused; accepted like the other benches")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    hours = 3 if args.quick else args.hours
    naive_hours = 1 if args.quick else min(args.naive_hours, hours)

    with RasterSource(args.raster) as source:
        grid = tile_grid(source, args.tile)
        if args.quick:
            grid = grid.iloc[:16]
        preset = resolve_preset(source, None)
        percentiles = source.band_percentiles(preset.bands) if preset.needs_stretch else None
        rgb = np.concatenate([
            to_rgb(batch.pixels, preset, percentiles)
            for batch in read_tiles(source, grid, preset.bands, batch_size=64)
        ])  # fmt: skip
        centres = grid.geometry.centroid
        from geosound.geo.ground import lonlat

        lon, lat = lonlat(centres.x.to_numpy(), centres.y.to_numpy(), grid.crs)
    torch.manual_seed(0)
    model = build_sat2sound("tiny", use_metadata=True).eval()
    encoder = encoder_from_id("efficientnet-lite0@1")
    n = len(rgb)

    def metadata(hour: float) -> torch.Tensor:
        return metadata_features(lat, lon, [5] * n, [hour] * n)

    def project() -> tuple[torch.Tensor, torch.Tensor]:
        encoding = encoder.encode(rgb)
        with torch.inference_mode():
            return model.project_image(encoding.tokens, encoding.mask)

    def fuse(queries: torch.Tensor, mask: torch.Tensor, hour: float) -> np.ndarray:
        with torch.inference_mode():
            return model.encode_projected(queries, mask, metadata(hour)).embedding.numpy()

    project()  # warm-up: first-call allocations and thread pools
    started = time.perf_counter()
    naive = []
    for hour in range(naive_hours):
        queries, mask = project()
        naive.append(fuse(queries, mask, float(hour)))
    naive_per_hour = (time.perf_counter() - started) / naive_hours

    started = time.perf_counter()
    queries, mask = project()
    once = time.perf_counter() - started
    started = time.perf_counter()
    ours = [fuse(queries, mask, float(hour)) for hour in range(hours)]
    fuse_per_hour = (time.perf_counter() - started) / hours
    agree = all(np.allclose(a, b, atol=1e-5) for a, b in zip(naive, ours, strict=False))

    result = {
        "machine": machine_info(torch=torch.__version__),
        "load_average": load_average(),
        "raster": str(args.raster),
        "tiles": n,
        "tile_px": args.tile,
        "tokens_per_tile": int(queries.shape[1]),
        "hours": hours,
        "naive_s_per_hour": naive_per_hour,
        "ours_encode_once_s": once,
        "ours_fuse_s_per_hour": fuse_per_hour,
        "per_hour_ratio_naive_over_ours": ratio(naive_per_hour, fuse_per_hour),
        "day_naive_s": naive_per_hour * hours,
        "day_ours_s": once + fuse_per_hour * hours,
        "day_ratio_naive_over_ours": ratio(naive_per_hour * hours, once + fuse_per_hour * hours),
        "cache_bytes_per_tile_extra": int(queries.shape[1] * queries.shape[2] * 4 + 16),
        "cache_bytes_per_tile_embedding": int(queries.shape[2] * 4),
        "same_embeddings": agree,
    }
    print(f"{n} tiles of {args.tile} px from {args.raster.name}; load {result['load_average']}")
    print(f"naive (hour in the cache key): {naive_per_hour:.3f} s per hour")
    print(f"ours: encode once {once:.3f} s, then {fuse_per_hour:.4f} s per hour "
          f"(x{result['per_hour_ratio_naive_over_ours']:.0f} per hour)")  # fmt: skip
    print(
        f"a day of {hours} hours: naive {result['day_naive_s']:.2f} s, ours "
        f"{result['day_ours_s']:.2f} s (x{result['day_ratio_naive_over_ours']:.1f})"
    )
    print(f"extra cache per tile: {result['cache_bytes_per_tile_extra']} B "
          f"(the embedding: {result['cache_bytes_per_tile_embedding']} B); "
          f"same embeddings: {agree}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
