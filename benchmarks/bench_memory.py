"""Memory that must not follow the input: long recordings and previews of many queries.

Two measurements of issue 14, each side by side in one run, each command in its own process
so that its peak RSS is its own:

1. ``geosound audio embed`` on a 1-minute and a 10-minute WAV (16 kHz, seeded noise and
   tones): peak RSS and seconds of each, and their ratio. Streaming (aiSFX beyond 30 s) keeps
   the ratio near 1; the whole-file path grew ~6 MB per second of audio.
2. ``write_layers_preview`` of 12 and of 1000 query bands on a 64 × 64 layer grid: seconds and
   peak RSS. The contact sheet draws at most 12 panels, so 1000 bands cost about as much as 12.

Usage: ``python benchmarks/bench_memory.py [--minutes 1 10] [--workdir DIR] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from _common import load_average, machine_info, ratio, workdir

SAMPLE_RATE = 16_000
PEAK_RSS = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "if done.returncode:\n"
    "    sys.exit(done.stderr)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)
PREVIEW = (
    "import sys, numpy as np, xarray as xr\n"
    "from geosound.mapping.preview import write_layers_preview\n"
    "bands = int(sys.argv[2])\n"
    "values = np.random.default_rng(0).uniform(-1, 1, (bands, 64, 64)).astype('float32')\n"
    "layers = xr.DataArray(values, dims=('band', 'y', 'x'),\n"
    "                      coords={'band': [f'text: query {i}' for i in range(bands)]})\n"
    "write_layers_preview(sys.argv[1], layers, title='bench')\n"
)


def peak_rss_mb(command: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of ``command`` run in a child of a fresh process."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, *command], capture_output=True, text=True, check=True
    )
    return int(done.stdout.strip().splitlines()[-1]) / 1024, time.perf_counter() - start


def write_recording(path: Path, minutes: float) -> Path:
    """A seeded recording: pink-ish noise with a tone that changes every 5 seconds."""
    rng = np.random.default_rng(0)
    samples = int(minutes * 60 * SAMPLE_RATE)
    t = np.arange(samples) / SAMPLE_RATE
    tone = 0.2 * np.sin(2 * np.pi * (300 + 100 * (t // 5 % 7)) * t)
    noise = 0.05 * rng.standard_normal(samples)
    sf.write(path, (tone + noise).astype(np.float32), SAMPLE_RATE)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs=2, default=(1.0, 10.0))
    parser.add_argument("--bands", type=int, nargs=2, default=(12, 1000))
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result: dict[str, object] = {"machine": machine_info(), "load_before": load_average()}
    with workdir(args.workdir, False, "geosound-bench-memory-") as work:
        audio = []
        for minutes in args.minutes:
            clip = write_recording(work / f"rec_{minutes:g}min.wav", minutes)
            command = [sys.executable, "-m", "geosound", "audio", "embed", str(clip),
                       "-o", str(work / f"emb_{minutes:g}.npz"), "--progress", "none"]  # fmt: skip
            rss, seconds = peak_rss_mb(command)
            audio.append(
                {"minutes": minutes, "peak_rss_mb": round(rss), "seconds": round(seconds, 1)}
            )
        previews = []
        for bands in args.bands:
            command = [
                sys.executable,
                "-c",
                PREVIEW,
                str(work / f"preview_{bands}.png"),
                str(bands),
            ]
            rss, seconds = peak_rss_mb(command)
            previews.append(
                {"bands": bands, "peak_rss_mb": round(rss), "seconds": round(seconds, 1)}
            )
    result |= {"audio_embed": audio, "preview": previews, "load_after": load_average()}

    print(f"machine: {result['machine']}")
    print(f"load average before / after: {result['load_before']} / {result['load_after']}")
    print("1. geosound audio embed (one process each)")
    print(f"{'recording':>10} {'peak RSS MB':>12} {'seconds':>8}")
    for row in audio:
        print(f"{row['minutes']:>8g} m {row['peak_rss_mb']:>12} {row['seconds']:>8}")
    growth = ratio(audio[1]["peak_rss_mb"], audio[0]["peak_rss_mb"])
    print(f"ratio peak RSS long / short: {growth:.2f}")
    print("2. write_layers_preview (one process each, imports included)")
    print(f"{'bands':>10} {'peak RSS MB':>12} {'seconds':>8}")
    for row in previews:
        print(f"{row['bands']:>10} {row['peak_rss_mb']:>12} {row['seconds']:>8}")
    print(f"ratio seconds many / few: {ratio(previews[1]['seconds'], previews[0]['seconds']):.2f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
