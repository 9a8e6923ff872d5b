"""Smoke test of benchmarks/bench_separate.py, so the benchmark cannot rot between runs.

The quick run times 4 synthetic clips: the report must have the three paths, each with a
rate and its ratio to the plain embedding. Tests never assert on time.
"""

from __future__ import annotations


def test_bench_separate_quick_run(run_benchmark) -> None:
    lines, payload = run_benchmark("bench_separate", timeout=300)
    assert any(line.split() == ["path", "recordings/s", "vs", "embed"] for line in lines)
    paths = [row["path"] for row in payload["rows"]]
    assert paths == ["embed", "embed + separate", "separator alone (batch 64)"]
    assert all(row["recordings_per_s"] > 0 for row in payload["rows"])
    assert payload["rows"][0]["vs_embed"] == 1.0
    assert "seeded noise" in payload["clips"]
