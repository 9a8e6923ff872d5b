"""Seconds per generated 64×64 picture, beside the DiT's FLOPs and the machine's matmul limit.

A picture is DDIM steps of SounDiT with classifier-free guidance (three conditions batched
into one forward pass: sound + scene, sound dropped, both dropped) and one decode of the
latent by the autoencoder. This times whole pictures for 10, 25 and 50 steps at batch 1 and
batch 16, and a 2048² float32 matmul in the same run, so every row reads as a share of what
this CPU can do:

    .venv/bin/python benchmarks/bench_generate.py              # the shipped generator
    .venv/bin/python benchmarks/bench_generate.py --quick      # a smoke run (seconds)
    .venv/bin/python benchmarks/bench_generate.py --model runs/soundit/soundit.pt

``GFLOP/s`` is the DiT's counted FLOPs (``count_flops``: a multiply-add is two) × 3 passes ×
steps × batch over the picture's time; the autoencoder's decode is timed but not counted,
so the ratio is a lower bound of the machine's use. Without a trained checkpoint (none
shipped and no ``--model``), and always with ``--quick``, a fresh ``tiny`` model and
autoencoder are timed and the report says so: speed does not depend on the weights.
Options: ``--steps`` (10 25 50), ``--batches`` (1 16), ``--repeat`` (best of, 3),
``--json PATH``.

Like the ``geosound`` CLI, it sets ``OMP_WAIT_POLICY=PASSIVE`` unless it is set: on a shared
2-core machine spinning OpenMP threads made a picture 6.6 s instead of 0.73 s (2026-12-03).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Before torch loads OpenMP, which reads the policy once (geosound/runtime.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
from diffusers.schedulers.scheduling_ddim import DDIMScheduler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_average, machine_info, ratio

from geosound.generation.sampling import GuidanceScales, ddim_scheduler, sample_latents
from geosound.models.autoencoder import LatentCodec, autoencoder_config, build_autoencoder
from geosound.models.soundit import (
    SceneCondition,
    SoundCondition,
    SounDiT,
    build_soundit,
    count_flops,
)

SOUND_TOKENS = 11
"""Sound tokens of a 5-s clip: 3 audio blocks and 8 concept tokens, as the shipped model hears."""


def load_parts(model_path: Path | None) -> tuple[SounDiT, LatentCodec, str]:
    """The denoiser, its codec and where they came from."""
    if model_path is not None:
        from geosound.models.soundit_checkpoint import load_generator

        loaded = load_generator(model_path)
        return loaded.model, loaded.codec, f"{loaded.model_id} ({model_path})"
    torch.manual_seed(0)
    config = autoencoder_config("tiny")
    codec = LatentCodec(build_autoencoder(config), 1.0, config).eval()
    return build_soundit("tiny").eval(), codec, "a fresh tiny model (untrained: speed only)"


def conditions(model: SounDiT, batch: int) -> tuple[SoundCondition, SceneCondition]:
    """Random sound and scene conditions of ``batch`` rows, shaped like real ones."""
    config = model.config
    generator = torch.Generator().manual_seed(1)
    sound = SoundCondition(
        torch.randn(batch, SOUND_TOKENS, config.sound_dim, generator=generator),
        torch.ones(batch, SOUND_TOKENS, dtype=torch.bool),
        torch.nn.functional.normalize(torch.randn(batch, config.sound_dim, generator=generator)),
    )
    scene = SceneCondition.from_pooled(torch.randn(batch, config.scene_dim, generator=generator))
    return sound, scene


def draw(
    model: SounDiT,
    codec: LatentCodec,
    scheduler: DDIMScheduler,
    sound: SoundCondition,
    scene: SceneCondition,
    steps: int,
) -> None:
    """Pictures for a batch of conditions, as ``geosound generate`` draws them (without RAG)."""
    latents = sample_latents(
        model, scheduler, sound.embedding.shape[0], sound, scene, steps=steps,
        scales=GuidanceScales(), generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    codec.decode(latents)


def best_of(function: Callable[[], Any], repeat: int) -> float:
    """The fastest of ``repeat`` runs, in seconds (the least disturbed by other work)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a soundit.pt (default: the shipped one)")
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 25, 50])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 steps, batch 1 and 2, once")
    parser.add_argument("--workdir", type=Path, help="unused; accepted like the other benches")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    steps_list = [2] if args.quick else args.steps
    batches = [1, 2] if args.quick else args.batches
    repeat = 1 if args.quick else args.repeat
    model_path = args.model
    if model_path is None and not args.quick:
        from geosound.config import assets_dir
        from geosound.generation.default import DEFAULT_GENERATOR

        shipped = assets_dir() / DEFAULT_GENERATOR
        model_path = shipped if shipped.is_file() else None
    model, codec, source = load_parts(model_path)
    scheduler = ddim_scheduler(model.config.num_train_timesteps)
    gflop_per_pass = count_flops(model, sound_tokens=SOUND_TOKENS) / 1e9

    a, b = torch.rand(2048, 2048), torch.rand(2048, 2048)
    product = torch.empty(2048, 2048)
    matmul_s = best_of(lambda: torch.matmul(a, b, out=product), max(repeat, 3))
    matmul_gflops = 2 * 2048**3 / matmul_s / 1e9

    rows = []
    with torch.inference_mode():
        for batch in batches:
            sound, scene = conditions(model, batch)
            for steps in steps_list:
                seconds = best_of(
                    functools.partial(draw, model, codec, scheduler, sound, scene, steps), repeat
                )
                gflops = 3 * gflop_per_pass * steps * batch / seconds
                rows.append({
                    "batch": batch,
                    "steps": steps,
                    "seconds_per_image": seconds / batch,
                    "gflops": gflops,
                    "vs_matmul": ratio(gflops, matmul_gflops),
                })  # fmt: skip
    result = {
        "machine": machine_info(torch=torch.__version__),
        "load_average_end": load_average(),
        "model": source,
        "threads": torch.get_num_threads(),
        "dit_gflop_per_pass": gflop_per_pass,
        "matmul_gflops": matmul_gflops,
        "rows": rows,
    }
    print(f"SounDiT pictures: {source}; {torch.get_num_threads()} torch threads")
    print(f"DiT forward: {gflop_per_pass:.3f} GFLOP per image per pass (3 passes a step)")
    print(f"{'batch':>5} {'steps':>5} {'s/image':>8} {'GFLOP/s':>8} {'vs matmul':>9}")
    for row in rows:
        print(
            f"{row['batch']:5d} {row['steps']:5d} {row['seconds_per_image']:8.3f} "
            f"{row['gflops']:8.1f} {row['vs_matmul']:9.2f}"
        )
    print(f"matmul 2048² float32: {matmul_gflops:.1f} GFLOP/s (the measured limit)")
    machine = result["machine"]
    print(
        f"machine: {machine['cpu']}, device {machine['device']}, "
        f"load at end {result['load_average_end']}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
