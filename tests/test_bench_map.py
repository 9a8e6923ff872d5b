"""Smoke test of benchmarks/bench_map.py, so the benchmark cannot rot between runs.

It runs the real script with ``--quick`` (small rasters, every measurement in one process, a
real Dask LocalCluster with 1 and 2 workers, the before and onnx encoder variants) and checks
the report's shape, its exit code and the counts that must hold on any machine (tiles, tokens,
FLOPs adding up). Tests never assert on time. Slow: a minute or two (ten on a busy machine).
"""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_bench_map_quick_run(run_benchmark) -> None:
    lines, payload = run_benchmark("bench_map", timeout=600)
    header = ["method", "tiles", "seconds", "tiles/s", "GFLOP/s", "vs", "matmul"]
    assert any(line.split()[:7] == header for line in lines), lines
    for start in ("ours: embed_region", "naive: tile by tile", "matmul "):
        assert any(line.startswith(start) for line in lines), start
    for start in ("ours: embed_region, before", "encoder+head only, batch 64, onnx"):
        assert any(line.startswith(start) for line in lines), start  # backends side by side
    sections = ("0. where the image encoder", "3. re-query", "4. Dask LocalCluster",
                "5. peak RSS", "6. busy machine")  # fmt: skip
    for section in sections:
        assert any(line.startswith(section) for line in lines), section
    assert "ratio full recompute / re-query" in "\n".join(lines)
    assert "ratios 2 workers / 1 worker" in "\n".join(lines)

    shipped = payload["compute"][""]
    assert shipped["tokens_per_tile"] == 4  # a 64-px tile is a 2 × 2 feature map
    assert shipped["encoder_flops_per_tile"] > shipped["head_flops_per_tile"] > 0
    flops = shipped["encoder_flops_per_tile"] + shipped["head_flops_per_tile"]
    assert payload["flops_per_tile"] == flops
    assert payload["limit_gflops"] > 0
    assert payload["ours"][""][0]["tiles"] == 64  # 512 px / 64 = 8 x 8 tiles
    assert [run["workers"] for run in payload["dask"]] == [1, 2]
    assert all(run["tiles"] == 64 for run in payload["dask"])
    before, shipped_profile = payload["profiles"]
    # The profile accounts for the time: the before network's own batch norms are in it,
    # the folded one has none (they are inside its convolutions' weights).
    assert any("batch_norm" in op["name"] for op in before["ops"])
    assert not any("batch_norm" in op["name"] for op in shipped_profile["ops"])
    assert set(payload["busy"]["results"]) == {"", ", before", ", onnx"}
    # Folding moves batch norm into the weights, so the convolution FLOPs do not change.
    wheel = payload["compute"][", before"]
    assert wheel["encoder_flops_per_tile"] == shipped["encoder_flops_per_tile"]
    big, small = payload["rss"]
    assert big["tiles"] == small["tiles"] == 64  # 2 rows x 32 cols vs 8 rows x 8 cols
