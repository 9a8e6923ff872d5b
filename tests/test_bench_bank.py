"""Smoke test of benchmarks/bench_bank.py, so the benchmark cannot rot between runs.

It runs the real script in a subprocess on a 5,000-vector bank and checks the report's shape,
its exit code and what must hold whatever the machine: the exact searches agree, HNSW finds
nearly all of each query's true top 10 (the queries are drawn around the bank's own
sub-centres, so every one has planted near neighbours), and each bank's memory is measured by
a fresh process that loads it. 5,000 vectors are too few to train the IVF kinds, which are
reported as skipped (tests/test_retrieval_bank.py tests them). Tests never assert on time.
With the dev data it embeds 24 real clips (a few seconds); without, it exercises the labelled
synthetic fallback. Slow: about 10-15 s.
"""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_bench_bank_quick_run(run_benchmark) -> None:
    lines, payload = run_benchmark(
        "bench_bank", "--sizes", "5000", "--queries", "50", "--clips", "24"
    )
    header = ["N", "method", "build", "s", "search", "s", "queries/s", "vs", "numpy", "recall@10"]
    assert any(line.split()[:10] == header for line in lines), lines
    rows = {line.split()[1]: line for line in lines if line.split()[:1] == ["5000"]}
    assert set(rows) == {"numpy", "flat", "ivf", "hnsw", "ivfpq"}
    for kind in ("ivf", "ivfpq"):  # 5,000 is too few to train either
        assert "skipped: IVF-PQ needs at least" in rows[kind]
    assert any(line.startswith("limit: numpy float32 matmul") for line in lines)

    by_method = {row["method"]: row for row in payload["rows"]}
    assert by_method["flat"]["recall"] == 1.0
    assert by_method["numpy"]["recall"] > 0.99  # two exact searches agree (ties aside)
    # HNSW (M=16, ef=128) on 5,000 vectors: 1.000 in every run so far; 0.95 leaves room for
    # faiss's multi-threaded graph build, never for a broken index (chance is 10/5000).
    assert by_method["hnsw"]["recall"] >= 0.95
    assert by_method["flat"]["limit"] > 0
    # A loaded flat bank holds its float vectors (5,000 x 512 x 4 bytes = 10 MB) itself.
    assert by_method["flat"]["mem_mb"] > 8
    assert by_method["hnsw"]["mem_vs_flat"] is not None
