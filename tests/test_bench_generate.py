"""Smoke test of benchmarks/bench_generate.py, so the benchmark cannot rot between runs.

The quick run times a fresh tiny SounDiT (2 DDIM steps, batch 1 and 2): the report must have
one row per batch and step count, the DiT's counted FLOPs and the matmul limit it divides by.
Tests never assert on time.
"""

from __future__ import annotations


def test_bench_generate_quick_run(run_benchmark) -> None:
    lines, payload = run_benchmark("bench_generate", timeout=300)
    assert any(line.split() == ["batch", "steps", "s/image", "GFLOP/s", "vs", "matmul"]
               for line in lines)  # fmt: skip
    assert [(row["batch"], row["steps"]) for row in payload["rows"]] == [(1, 2), (2, 2)]
    assert all(row["seconds_per_image"] > 0 for row in payload["rows"])
    # tiny preset: 0.19-0.21 GFLOP per image per pass (the docstring's table). The GFLOP/s
    # check below only guards the report against a units slip; it does not check the count.
    assert 0.15 < payload["dit_gflop_per_pass"] < 0.25
    assert payload["matmul_gflops"] > 0
    for row in payload["rows"]:
        expected = 3 * payload["dit_gflop_per_pass"] * row["steps"] * row["batch"]
        assert abs(row["gflops"] * row["seconds_per_image"] * row["batch"] - expected) < 1e-6
