"""Smoke test of benchmarks/bench_tiling.py, so the benchmark cannot rot between runs.

It runs the real script (subprocesses and all) on a 1024-pixel raster and checks the report's
shape, its exit code, and that the three readers (ours, the naive per-tile reads, the block
decoder) saw exactly the same tiles and pixels. Tests never assert on time.
"""

from __future__ import annotations

METHODS = ("ours", "naive", "limit")


def test_bench_tiling_quick_run(run_benchmark) -> None:
    lines, payload = run_benchmark("bench_tiling", "--size", "1024", timeout=120)
    assert any(line.split()[:4] == ["method", "tiles", "seconds", "tiles/s"] for line in lines)
    for method in ("ours", "naive", "limit"):
        assert any(line.startswith(method + " ") for line in lines), method
    assert any(line.startswith("RSS: peak RSS of ours") and "PASS" in line for line in lines)
    assert "checksum ours == limit: yes" in "\n".join(lines)

    assert payload["rss_pass"] is True
    results = payload["results"]
    assert {m: results[m]["tiles"] for m in results} == dict.fromkeys(METHODS, 16)  # 4 × 4
    assert {m: results[m]["bytes_read"] for m in results} == dict.fromkeys(METHODS, 1024**2 * 3)
    # Same pixels, read three ways: one checksum (the script exits 1 if ours != limit).
    assert len({results[m]["checksum"] for m in METHODS}) == 1
    assert payload["checksums_match"] is True
