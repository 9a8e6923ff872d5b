"""Benchmark: embedding recordings with aiSFX, next to a naive loop and the machine's limit.

Why this exists: embedding recordings is the slowest step of indexing a collection, of every
map with ``--audio`` and of training. The project rule is that speed is measured side by side
in one run and printed as ratios. One run measures, on the same five-second clips (the ESC-50
dev clips, or seeded synthetic ones when the dev data is missing — then every row says so):

1. **Where the time goes** — each stage alone over all clips: decode (``load_audio`` at the
   file's rate), resample 16 → 44.1 kHz (soxr HQ), the mel front end (librosa per clip as
   aiSFX does it, and ours: one batched ``torch.stft``), and the network on ready blocks.
2. **Clips per second, side by side** — in interleaved rounds (best of ``--repeat`` kept, so
   drift on a shared machine hits all rows alike):

   * ``ours``: ``AisfxAudioEncoder().encode(paths)`` — files in, vectors out: a worker thread
     decodes and resamples ahead, batched torch mel, the network (batch norm folded,
     channels-last) on batches of 48 blocks (``NETWORK_BATCH_BLOCKS``);
   * ``naive``: per clip, ``load_audio``, soxr, librosa's melspectrogram, blocks, and the
     network as aiSFX ships it (contiguous layout, batch norm apart) on that clip's 3 blocks;
   * ``previous``: what ``geosound audio embed`` ran before this benchmark existed: batches
     of 16 clips loaded in the main thread, librosa per clip, the network (contiguous) on all
     48 blocks of a batch at once;
   * ``network alone``: ours on ready blocks (no decoding, no mel), as clips/s and blocks/s;
     ``network, batch N`` the same with N blocks per forward pass (``--network-batches``);
   * ``matmul``: ``torch.matmul`` of two 2048² float32 matrices, the same torch threads.

   FLOPs per block come from :class:`torch.utils.flop_counter.FlopCounterMode` (the CNN's
   convolutions; batch norm, ReLU and pooling are memory-bound and not counted). GFLOP/s of a
   row = blocks/s × FLOPs per block, ``vs matmul`` divides by the matmul row.
3. **Peak RSS of a long recording** — ``geosound audio embed`` in a fresh process on a 1-hour
   16 kHz recording made in the work folder by concatenating the 10-second clips of the 24-hour
   field recording (``maad_soundscape_24h_16k``; seeded noise and tones without dev data), next
   to the same command on one 5-second clip: peak RSS, seconds and their ratios.

``--quick`` (for ``tests/test_bench_audio.py``): 6 clips, one round, a 40-second "long"
recording. Exit code 0 unless it crashes: there is no pass/fail bound (the targets are printed
beside the figures).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common
import numpy as np

CLIP_SECONDS = 5.0
RATE = 16_000
TARGET_CLIPS_PER_S = 50.0
TARGET_VS_NAIVE = 8.0
PEAK_RSS = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "if done.returncode:\n"
    "    sys.exit(done.stderr)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def dev_data() -> Path:
    """``$GEOSOUND_DEV_DATA`` or ``../shared/data`` next to the repository."""
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return Path(os.environ.get("GEOSOUND_DEV_DATA", default))


def clip_paths(count: int, work: Path) -> tuple[list[Path], str]:
    """The first ``count`` five-second ESC-50 dev clips, or seeded synthetic ones (and which)."""
    folder = dev_data() / "esc50_outdoor_16k" / "audio"
    real = sorted(folder.glob("*.flac"))[:count] if folder.is_dir() else []
    if len(real) == count:
        return real, f"ESC-50 dev clips ({folder})"
    import soundfile as sf

    rng = np.random.default_rng(0)
    t = np.arange(int(CLIP_SECONDS * RATE)) / RATE
    paths = []
    for i in range(count):
        tone = 0.3 * np.sin(2 * np.pi * (200 + 37 * i) * t) * (1 + np.sin(2 * np.pi * 0.5 * t))
        samples = (tone / 2 + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
        path = work / f"synthetic_{i:03d}.flac"
        sf.write(path, samples, RATE)
        paths.append(path)
    return paths, "SYNTHETIC clips (dev data missing): seeded tones + noise"


def long_recording(path: Path, seconds: float) -> tuple[Path, str]:
    """A ``seconds``-long 16 kHz WAV: the field recording's clips end to end, written in parts."""
    import soundfile as sf

    folder = dev_data() / "maad_soundscape_24h_16k" / "audio"
    parts = sorted(folder.glob("*.flac")) if folder.is_dir() else []
    total = int(seconds * RATE)
    written = 0
    with sf.SoundFile(path, "w", RATE, 1, subtype="PCM_16") as out:
        if parts:
            while written < total:
                for part in parts:
                    samples = sf.read(part, dtype="float32")[0][: total - written]
                    out.write(samples)
                    written += samples.size
                    if written >= total:
                        break
            return path, f"{len(parts)} clips of {folder} end to end, repeated"
        rng = np.random.default_rng(0)
        while written < total:
            n = min(RATE * 60, total - written)
            t = (written + np.arange(n)) / RATE
            tone = 0.2 * np.sin(2 * np.pi * (300 + 100 * (t // 5 % 7)) * t)
            out.write((tone + 0.05 * rng.standard_normal(n)).astype(np.float32))
            written += n
    return path, "SYNTHETIC recording (dev data missing): seeded tones + noise"


# --------------------------------------------------------------------------- the methods


def naive_network() -> Any:
    """The aiSFX CNN as the package ships it: contiguous (NCHW) layout, eval mode."""
    import torch

    from geosound.encoders import get_encoder

    return get_encoder("aisfx")._load().to(memory_format=torch.contiguous_format)


def librosa_log_mel(wave: np.ndarray) -> np.ndarray:
    """aiSFX's log-mel frames of a prepared 44.1 kHz waveform as the package computes them."""
    import librosa

    from geosound.encoders import audio_aisfx as aisfx

    mel = librosa.feature.melspectrogram(
        y=wave, sr=aisfx.SAMPLE_RATE, n_fft=aisfx.N_FFT, hop_length=aisfx.HOP_LENGTH,
        center=True, n_mels=aisfx.N_MELS, fmin=0.0, fmax=aisfx.SAMPLE_RATE / 2, htk=True,
        norm=1.0, power=2.0,
    )  # fmt: skip
    return (np.log10(mel * 10000.0 + 1.0).T - aisfx.SPEC_MIN) / (aisfx.SPEC_MAX - aisfx.SPEC_MIN)


def librosa_blocks(samples: np.ndarray, rate: int) -> np.ndarray:
    """aiSFX's front end the way geosound computed it before: soxr, peak, librosa, numpy."""
    from geosound.audio import resample
    from geosound.encoders import audio_aisfx as aisfx

    wave = resample(samples, rate, aisfx.SAMPLE_RATE)
    peak = float(np.max(np.abs(wave)))
    spec = librosa_log_mel(wave / peak if peak > 0 else wave)
    n_blocks = max(1, (spec.shape[0] - aisfx.BLOCK_FRAMES) // aisfx.BLOCK_HOP + 1)
    length = max(spec.shape[0], (n_blocks - 1) * aisfx.BLOCK_HOP + aisfx.BLOCK_FRAMES)
    padded = np.zeros((length, aisfx.N_MELS))
    padded[: spec.shape[0]] = spec
    starts = np.arange(n_blocks) * aisfx.BLOCK_HOP
    return np.stack([padded[s : s + aisfx.BLOCK_FRAMES] for s in starts]).astype(np.float32)


def run_naive(paths: list[Path], network: Any) -> np.ndarray:
    """One clip at a time: load, resample, librosa mel, the shipped network on its blocks."""
    import torch

    from geosound.audio import load_audio

    pooled = []
    with torch.inference_mode():
        for path in paths:
            clip = load_audio(path, sample_rate=None)
            blocks = torch.from_numpy(librosa_blocks(clip.samples, clip.sample_rate))
            pooled.append(network(blocks).mean(dim=0).numpy())
    return np.stack(pooled)


def run_previous(paths: list[Path], network: Any, batch: int = 16) -> np.ndarray:
    """Batches of 16 clips loaded in the main thread, librosa, all 48 blocks in one pass."""
    import torch

    from geosound.audio import load_audio

    pooled = []
    with torch.inference_mode():
        for start in range(0, len(paths), batch):
            clips = [load_audio(p, sample_rate=None) for p in paths[start : start + batch]]
            blocks = [librosa_blocks(c.samples, c.sample_rate) for c in clips]
            embedded = network(torch.from_numpy(np.concatenate(blocks)))
            for part in torch.split(embedded, [len(b) for b in blocks]):
                pooled.append(part.mean(dim=0).numpy())
    return np.stack(pooled)


def best_of(function: Callable[[], object], repeat: int) -> tuple[float, list[float], object]:
    """(best seconds, all seconds, last result) of ``repeat`` calls."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), times, result


def stage_profile(paths: list[Path], encoder: Any, naive: Any) -> dict[str, float]:
    """Seconds of each stage alone over all clips (one pass each, after a warm-up)."""
    import torch

    from geosound.audio import load_audio, resample
    from geosound.encoders import audio_aisfx as aisfx

    def timed(function: Callable[[], Any]) -> tuple[float, Any]:
        start = time.perf_counter()
        value = function()
        return time.perf_counter() - start, value

    decode_s, clips = timed(lambda: [load_audio(p, sample_rate=None) for p in paths])
    resample_s, waves = timed(
        lambda: [resample(c.samples, c.sample_rate, aisfx.SAMPLE_RATE) for c in clips]
    )
    prepared = [aisfx.prepare_waveform(c) for c in clips]
    aisfx.clip_blocks(prepared[:1])  # warm-up: mel basis, FFT plans
    torch_mel_s, blocks = timed(lambda: aisfx.clip_blocks(prepared))
    librosa_mel_s, _ = timed(lambda: [librosa_log_mel(w) for w in prepared])
    ready = torch.cat(blocks)
    with torch.inference_mode():
        network_s, _ = timed(lambda: encoder.embed_blocks(ready))
        naive_network_s, _ = timed(lambda: [naive(b) for b in blocks])
    del waves
    return {
        "decode": decode_s,
        "resample_to_44k": resample_s,
        "mel_librosa_per_clip": librosa_mel_s,
        "mel_torch_batched": torch_mel_s,
        "network_ours": network_s,
        "network_per_clip_contiguous": naive_network_s,
    }


def peak_rss(command: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of ``command`` run in a child of a fresh process."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, *command], capture_output=True, text=True, check=True
    )
    return int(done.stdout.strip().splitlines()[-1]) / 1024, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=64, help="five-second clips (64)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--long-minutes", type=float, default=60.0, help="long recording (60)")
    parser.add_argument(
        "--network-batches", type=int, nargs="*", default=[3, 12],
        help="other blocks-per-pass of the network alone, beside ours (3 12)",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="6 clips, 1 round, 40 s long")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.clips, args.repeat, args.long_minutes = 6, 1, 40 / 60

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from geosound.encoders import get_encoder

    result: dict[str, Any] = {
        "machine": _common.machine_info(torch=torch.__version__),
        "torch_threads": torch.get_num_threads(),
        "load_before": _common.load_average(),
    }
    print(f"machine: {result['machine']}")
    print(f"torch threads: {result['torch_threads']}; load average: {result['load_before']}")
    with _common.workdir(args.workdir, args.keep, "geosound-bench-audio-") as work:
        paths, source = clip_paths(args.clips, work)
        result["clips"] = {"count": len(paths), "source": source}
        print(f"clips: {len(paths)} x {CLIP_SECONDS:g} s, {source}")

        encoder = get_encoder("aisfx")
        load_start = time.perf_counter()
        encoder.model  # noqa: B018 - loads the weights, timed apart from every row
        result["model_load_s"] = time.perf_counter() - load_start
        naive = naive_network()
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            encoder.model(torch.zeros(1, 100, 96))
        flops_per_block = int(counter.get_total_flops())
        result["flops_per_block"] = flops_per_block

        print("\n1. where the time goes (each stage alone, all clips, seconds)")
        encoder.encode(paths[:2])  # warm-up of every path: threads, FFT plans, oneDNN kernels
        run_naive(paths[:1], naive)
        profile = stage_profile(paths, encoder, naive)
        result["profile_s"] = profile
        for name, seconds in profile.items():
            print(f"  {name:<30} {seconds:8.3f} s  {1000 * seconds / len(paths):7.2f} ms/clip")

        clip_blocks = _blocks_of(paths)
        counts = [len(b) for b in clip_blocks]
        blocks = torch.cat(clip_blocks)
        n_blocks = int(blocks.shape[0])
        a, b = torch.rand(2048, 2048), torch.rand(2048, 2048)
        product = torch.empty(2048, 2048)
        runs: dict[str, list[float]] = {}
        outputs: dict[str, Any] = {}
        methods: dict[str, Callable[[], Any]] = {
            "matmul": lambda: torch.matmul(a, b, out=product),
            "ours": lambda: encoder.encode(paths).pooled.numpy(),
            "network alone": lambda: _network_alone(encoder, blocks, counts),
            **{
                f"network, batch {size}": _network_batch(encoder, blocks, counts, size)
                for size in args.network_batches
                if size != encoder.network_batch
            },
            "naive": lambda: run_naive(paths, naive),
            "previous": lambda: run_previous(paths, naive),
        }
        for _ in range(args.repeat):
            for name, function in methods.items():
                _best, times, value = best_of(function, 1)
                runs.setdefault(name, []).extend(times)
                outputs[name] = value
        matmul_gflops = 2 * 2048**3 / min(runs["matmul"]) / 1e9
        result["matmul_gflops"] = matmul_gflops
        reference = outputs["naive"]
        rows = []
        for name in [m for m in methods if m != "matmul"]:
            seconds = min(runs[name])
            gflops = n_blocks * flops_per_block / seconds / 1e9
            differs = float(np.max(np.abs(outputs[name] - reference)))
            rows.append(
                {
                    "method": name,
                    "seconds": seconds,
                    "all_seconds": runs[name],
                    "clips_per_s": len(paths) / seconds,
                    "blocks_per_s": n_blocks / seconds,
                    "gflops": gflops,
                    "vs_matmul": gflops / matmul_gflops,
                    "max_abs_diff_vs_naive": differs,
                }
            )
        result["rows"] = rows
        result["blocks"] = n_blocks
        print(
            f"\n2. clips/s, best of {args.repeat} interleaved rounds ({len(paths)} clips, "
            f"{n_blocks} blocks, {flops_per_block / 1e9:.2f} GFLOP per block)"
        )
        print(
            f"{'method':<20} {'seconds':>8} {'clips/s':>8} {'blocks/s':>9} {'GFLOP/s':>8} "
            f"{'vs matmul':>9} {'max |diff| vs naive':>20}"
        )
        for row in rows:
            print(
                f"{row['method']:<20} {row['seconds']:8.2f} {row['clips_per_s']:8.1f} "
                f"{row['blocks_per_s']:9.1f} {row['gflops']:8.1f} {row['vs_matmul']:9.2f} "
                f"{row['max_abs_diff_vs_naive']:20.2e}"
            )
        print(
            f"{'matmul 2048²':<20} {min(runs['matmul']):8.3f} {'':>8} {'':>9} "
            f"{matmul_gflops:8.1f} {1.0:9.2f}"
        )
        by_name = {row["method"]: row for row in rows}
        vs_naive = _common.ratio(by_name["ours"]["clips_per_s"], by_name["naive"]["clips_per_s"])
        vs_previous = _common.ratio(
            by_name["ours"]["clips_per_s"], by_name["previous"]["clips_per_s"]
        )
        vs_network = _common.ratio(
            by_name["ours"]["clips_per_s"], by_name["network alone"]["clips_per_s"]
        )
        limit_clips = matmul_gflops * 1e9 / (flops_per_block * n_blocks / len(paths))
        result["ratios"] = {
            "ours_vs_naive": vs_naive,
            "ours_vs_previous": vs_previous,
            "ours_vs_network_alone": vs_network,
            "clips_per_s_at_matmul_limit": limit_clips,
        }
        ours_rate = by_name["ours"]["clips_per_s"]
        print(
            f"ratios (clips/s): ours/naive {vs_naive:.2f}x (target >= {TARGET_VS_NAIVE:g}x), "
            f"ours/previous {vs_previous:.2f}x, ours/network alone {vs_network:.2f}"
        )
        print(
            f"ours: {ours_rate:.1f} clips/s (target >= {TARGET_CLIPS_PER_S:g}); "
            f"a network running at the matmul rate would do {limit_clips:.1f} clips/s"
        )
        print(
            "all runs (s): "
            + "; ".join(f"{k} " + ", ".join(f"{t:.2f}" for t in v) for k, v in runs.items())
        )

        print(f"\n3. peak RSS, geosound audio embed in a fresh process ({source.split(' ')[0]})")
        long_path, long_source = long_recording(
            work / f"long_{args.long_minutes:.3g}min.wav", 60 * args.long_minutes
        )
        rss_rows = []
        for label, path in (
            ("one 5 s clip", paths[0]),
            (f"{args.long_minutes:.3g} min", long_path),
        ):
            command = [sys.executable, "-m", "geosound", "audio", "embed", str(path),
                       "-o", str(work / f"{path.stem}.npz"), "--progress", "none"]  # fmt: skip
            rss, seconds = peak_rss(command)
            rss_rows.append({"recording": label, "peak_rss_mb": rss, "seconds": seconds})
        result["long_recording"] = {"source": long_source, "rows": rss_rows}
        print(f"long recording: {long_source}")
        print(f"{'recording':<14} {'peak RSS MB':>12} {'seconds':>8}")
        for row in rss_rows:
            print(f"{row['recording']:<14} {row['peak_rss_mb']:12.0f} {row['seconds']:8.1f}")
        growth = _common.ratio(rss_rows[1]["peak_rss_mb"], rss_rows[0]["peak_rss_mb"])
        result["rss_ratio_long_vs_clip"] = growth
        print(
            f"ratio peak RSS long / one clip: {growth:.2f} "
            f"(the recording is {60 * args.long_minutes / CLIP_SECONDS:.0f}x longer)"
        )

    result["load_after"] = _common.load_average()
    print(f"\nload average after: {result['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


def _blocks_of(paths: list[Path]) -> list[Any]:
    """Ready aiSFX blocks of every clip (the network-alone row's input)."""
    from geosound.encoders import audio_aisfx as aisfx

    return aisfx.clip_blocks([aisfx.prepare_waveform(p) for p in paths])


def _network_batch(
    encoder: Any, blocks: Any, counts: list[int], size: int
) -> Callable[[], np.ndarray]:
    """The network-alone row with another number of blocks per forward pass."""

    def run() -> np.ndarray:
        default, encoder.network_batch = encoder.network_batch, size
        try:
            return _network_alone(encoder, blocks, counts)
        finally:
            encoder.network_batch = default

    return run


def _network_alone(encoder: Any, blocks: Any, counts: list[int]) -> np.ndarray:
    """The encoder's network on ready blocks, pooled per clip like ``ours``."""
    import torch

    with torch.inference_mode():
        embedded = encoder.embed_blocks(blocks)
    return torch.stack([part.mean(dim=0) for part in torch.split(embedded, counts)]).numpy()


if __name__ == "__main__":
    main()
