"""Recordings per second separated into sources, beside the plain audio embedding, in one run.

``geosound separate`` hears a recording with the audio encoder (aiSFX blocks), runs the
separator on its tokens and lifts each slot into the shared space through the Sat2Sound audio
head. The plain embedding every ``map --audio`` query gets is the encoder and the head alone.
This times, on the same 5-second clips and in the same process:

* **embed** — encoder + Sat2Sound audio side, one vector per recording (``embed_recordings``
  without its cache);
* **embed + separate** — the same encoding, then the separator and the lift of its slots;
* **separator alone** — the separator on ready tokens, batches of 64 (what separation adds).

    .venv/bin/python benchmarks/bench_separate.py             # 32 dev clips, the shipped models
    .venv/bin/python benchmarks/bench_separate.py --quick     # 4 synthetic clips (seconds)

Without a shipped separator (or ``--model``) a fresh untrained one is timed and the report
says so: speed does not depend on the weights. Options: ``--clips N``, ``--repeat``,
``--json PATH``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_average, machine_info, ratio

from geosound.audio import Clip


def clips(count: int, quick: bool) -> tuple[list[Clip], str]:
    """``count`` 5-s recordings: dev ESC-50 clips where there are, else seeded noise bursts."""
    from geosound.audio import load_audio
    from geosound.config import dev_data_dir

    folder = dev_data_dir() / "esc50_outdoor_16k" / "audio"
    paths = sorted(folder.glob("*.flac"))[:count] if folder.is_dir() and not quick else []
    if len(paths) == count:
        return [load_audio(p, sample_rate=None) for p in paths], f"{count} ESC-50 dev clips"
    rng = np.random.default_rng(0)
    noise = [
        Clip((0.1 * rng.standard_normal(80000)).astype(np.float32), 16000) for _ in range(count)
    ]
    return noise, f"{count} seeded noise clips of 5 s"


def separator(path: Path | None) -> tuple[Any, str]:
    """The separator to time and where it came from."""
    from geosound.models.separator import build_separator

    if path is None:
        from geosound.config import assets_dir
        from geosound.separation.default import DEFAULT_SEPARATOR

        shipped = assets_dir() / DEFAULT_SEPARATOR
        path = shipped if shipped.is_file() else None
    if path is not None:
        from geosound.models.separator_checkpoint import load_separator

        loaded = load_separator(path)
        return loaded.model, f"{loaded.model_id} ({path})"
    torch.manual_seed(0)
    return build_separator("tiny").eval(), "a fresh tiny separator (untrained: speed only)"


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
    parser.add_argument("--model", type=Path, help="a separator.pt (default: the shipped one)")
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="4 synthetic clips, once")
    parser.add_argument("--workdir", type=Path, help="unused; accepted like the other benches")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    count = 4 if args.quick else args.clips
    repeat = 1 if args.quick else args.repeat
    from geosound.encoders import pad_tokens
    from geosound.encoders.base import encoder_from_id
    from geosound.models.default import load_default_model

    recordings, what = clips(count, args.quick)
    shipped = load_default_model()
    sat2sound = shipped.model.eval()
    encoder = encoder_from_id(shipped.encoders["audio"])
    model, source = separator(args.model)

    def encode() -> Any:
        return encoder.encode(recordings)

    def embed() -> None:
        encoding = encode()
        sat2sound.encode_audio(encoding.tokens, encoding.mask)

    def separate_tokens(tokens: torch.Tensor, mask: torch.Tensor) -> None:
        output = model(tokens, mask)
        slots = output.embeddings.reshape(-1, 1, output.embeddings.shape[-1])
        sat2sound.encode_audio(slots, torch.ones(slots.shape[:2], dtype=torch.bool))

    def embed_and_separate() -> None:
        encoding = encode()
        sat2sound.encode_audio(encoding.tokens, encoding.mask)
        separate_tokens(encoding.tokens, encoding.mask)

    with torch.inference_mode():
        encode()  # loads the network once, outside the timings
        ready = encode()
        tokens, mask = pad_tokens([ready.tokens[i][ready.mask[i]] for i in range(count)])
        batch_tokens = tokens.repeat((64 + count - 1) // count, 1, 1)[:64]
        batch_mask = mask.repeat((64 + count - 1) // count, 1)[:64]
        embed_s = best_of(embed, repeat)
        both_s = best_of(embed_and_separate, repeat)
        alone_s = best_of(lambda: separate_tokens(batch_tokens, batch_mask), max(repeat, 3))
    rows = [
        {"path": "embed", "recordings_per_s": count / embed_s},
        {"path": "embed + separate", "recordings_per_s": count / both_s},
        {"path": "separator alone (batch 64)", "recordings_per_s": 64 / alone_s},
    ]
    for row in rows:
        row["vs_embed"] = ratio(row["recordings_per_s"], rows[0]["recordings_per_s"])
    result = {
        "machine": machine_info(torch=torch.__version__),
        "load_average_end": load_average(),
        "clips": what,
        "separator": source,
        "threads": torch.get_num_threads(),
        "rows": rows,
    }
    print(f"separation throughput: {what}; separator {source}; {torch.get_num_threads()} threads")
    print(f"{'path':<28} {'recordings/s':>12} {'vs embed':>9}")
    for row in rows:
        print(f"{row['path']:<28} {row['recordings_per_s']:12.2f} {row['vs_embed']:9.2f}")
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
