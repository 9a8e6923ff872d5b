"""Smoke test of benchmarks/bench_audio.py, so the benchmark cannot rot between runs.

It runs the real script with ``--quick`` (6 five-second clips, one round, a 40-second "long"
recording through ``geosound audio embed``) and checks the report's shape and what must hold
on any machine: every method embeds the same clips to the same vectors (1e-4), the FLOP count
adds up, and the long recording was embedded. Tests never assert on time. With the dev data it
uses real ESC-50 clips; without, the labelled synthetic ones. Slow: about a minute.
"""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_bench_audio_quick_run(run_benchmark) -> None:
    lines, payload = run_benchmark("bench_audio", timeout=600)
    text = "\n".join(lines)
    for section in ("1. where the time goes", "2. clips/s", "3. peak RSS"):
        assert section in text, section
    header = ["method", "seconds", "clips/s", "blocks/s", "GFLOP/s", "vs", "matmul"]
    assert any(line.split()[:7] == header for line in lines), lines
    assert "ratios (clips/s): ours/naive" in text and "target >= 50" in text

    assert payload["clips"]["count"] == 6
    assert payload["blocks"] == 18  # 5 s at 44.1 kHz: 216 frames, 3 blocks of 100 at hop 50
    assert 3.0e9 < payload["flops_per_block"] < 5.0e9  # the CNN's convolutions, ~3.86 GFLOP
    methods = {row["method"]: row for row in payload["rows"]}
    assert {"ours", "network alone", "naive", "previous"} <= set(methods)
    assert {"network, batch 3", "network, batch 12"} <= set(methods)
    for row in methods.values():  # the fast paths give the per-clip loop's vectors
        assert row["max_abs_diff_vs_naive"] < 1e-4, row
        assert row["clips_per_s"] > 0 and row["gflops"] > 0
    assert set(payload["profile_s"]) >= {"decode", "resample_to_44k", "mel_torch_batched"}
    short, long = payload["long_recording"]["rows"]
    assert short["recording"] == "one 5 s clip" and long["recording"] == "0.667 min"
    assert long["peak_rss_mb"] > 0 and payload["rss_ratio_long_vs_clip"] > 0
