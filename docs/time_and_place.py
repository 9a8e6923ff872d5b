"""Time of day, shown on a real 24-hour field recording: a small Sat2Sound trained with metadata.

The sonified EuroSAT pairs that train the default model have no time, so it cannot learn one.
The 24-hour recording (``maad_soundscape_24h_16k``: one recorder, a 10-s clip every 15 min on
2019-05-22) has: each clip is a real (place, hour, sound) triple. This script

1. encodes the 96 clips (aiSFX tokens) and some EuroSAT RGB Forest tiles (the "site" images;
   the recorder's habitat and location are not recorded, see below);
2. trains a tiny Sat2Sound with ``use_metadata`` (location and hour fused into the image side,
   metadata dropped for half the samples as METHODS.md §1 says) on the clips at :00 and :30,
   each paired with a random training tile at that clip's hour;
3. queries the held-out clips (:15 and :45) with held-out tiles at every hour and reports what
   comes back: the clips' own hours, and their share of energy in the 2-8 kHz bird band (the
   dawn chorus, measured on the recordings themselves, not a label);
4. writes the checkpoint, so ``geosound map --checkpoint WORK/timeplace.pt --hour 5 --hour 23``
   and ``geosound synthesize ... --hour 5`` can be run on it.

What it can and cannot show: one recorder, one day, one place. The images carry no
information here (any forest tile stands for the site), so everything the model learns comes
from the hour; location is one constant point, so nothing about place is learnt. It shows that
the metadata path works end to end and picks up a real diurnal pattern, not that the model
knows what a place sounds like at an hour in general.

Run (a few minutes on 2 CPU cores; the encodings are cached in WORK):
    .venv/bin/python docs/time_and_place.py --work /tmp/geosound-timeplace
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from PIL import Image
from scipy.signal import welch

from geosound.data import load_eurosat_rgb, load_soundscape_24h
from geosound.encoders.base import encoder_from_id
from geosound.models import build_sat2sound, clip_loss, metadata_features
from geosound.models.checkpoint import save_checkpoint

ENCODERS = {"image": "efficientnet-lite0@1", "audio": "aisfx@1", "text": "minilm-l6@1"}
SITE_LON, SITE_LAT = 6.0, 46.5
"""An assumed site: the recorder's location is not in the data. With one site it is a constant."""
MONTH = 5  # the recording's date, 2019-05-22
BIRD_BAND = (2000.0, 8000.0)


def bird_share(path: str) -> float:
    """Share of a clip's power in the 2-8 kHz band, where the dawn chorus sits."""
    samples, rate = sf.read(path)
    freqs, power = welch(samples, rate, nperseg=1024)
    band = (freqs >= BIRD_BAND[0]) & (freqs < BIRD_BAND[1])
    return float(power[band].sum() / max(power.sum(), 1e-20))


def encode(work: Path, n_images: int, seed: int) -> dict[str, np.ndarray]:
    """aiSFX tokens of the 96 clips and EfficientNet tokens of Forest tiles, cached in ``work``."""
    cached = work / "features.npz"
    if cached.is_file():
        return dict(np.load(cached))
    clips = load_soundscape_24h()
    audio = encoder_from_id(ENCODERS["audio"]).encode(list(clips["path"]))
    forest = load_eurosat_rgb(classes=["Forest"]).sample(n_images, random_state=seed)
    rgb = np.stack(
        [np.asarray(Image.open(p).convert("RGB"), np.float32).transpose(2, 0, 1) / 255.0
         for p in forest["path"]]
    )  # fmt: skip
    image = encoder_from_id(ENCODERS["image"]).encode(rgb)
    hours = (clips["timestamp"].dt.hour + clips["timestamp"].dt.minute / 60).to_numpy()
    features = {
        "audio_tokens": audio.tokens.numpy(),
        "audio_mask": audio.mask.numpy(),
        "image_tokens": image.tokens.numpy(),
        "hours": hours.astype(np.float64),
        "minutes": clips["timestamp"].dt.minute.to_numpy(),
        "bird_share": np.array([bird_share(p) for p in clips["path"]]),
        "paths": np.array(list(clips["path"])),
    }
    np.savez(cached, **features)
    return features


def circular_hours(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| on the 24-h circle."""
    d = np.abs(a - b) % 24
    return np.minimum(d, 24 - d)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for caches and outputs")
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument("--images", type=int, default=60, help="Forest tiles (2/3 train)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (tiny model: 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    f = encode(args.work, args.images, args.seed)
    encoded_s = time.monotonic() - started

    train = np.isin(f["minutes"], (0, 30))
    held = ~train
    n_train_images = 2 * args.images // 3
    image_tokens = torch.from_numpy(f["image_tokens"])
    audio_tokens, audio_mask = (
        torch.from_numpy(f["audio_tokens"]),
        torch.from_numpy(f["audio_mask"]),
    )

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = build_sat2sound("tiny", use_metadata=True)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.2, betas=(0.9, 0.98))
    train_idx = np.flatnonzero(train)
    started = time.monotonic()
    for _ in range(args.epochs):
        model.train()
        images = image_tokens[rng.integers(0, n_train_images, len(train_idx))]
        n = len(train_idx)
        meta = metadata_features([SITE_LAT] * n, [SITE_LON] * n, [MONTH] * n, f["hours"][train_idx])
        # audio augmentation: a random run of 4 of the clip's aiSFX blocks (about 5 s)
        start = int(rng.integers(0, max(1, audio_tokens.shape[1] - 4)))
        tokens = audio_tokens[train_idx, start : start + 4]
        mask = audio_mask[train_idx, start : start + 4]
        image_out = model.encode_image(images, metadata=meta)
        audio_out = model.encode_audio(tokens, mask)
        loss = clip_loss(image_out.embedding, audio_out.embedding, model.clamped_logit_scale())
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        optimiser.step()
    train_s = time.monotonic() - started
    model.eval()

    held_idx = np.flatnonzero(held)
    with torch.inference_mode():
        audio = model.encode_audio(audio_tokens[held_idx], audio_mask[held_idx]).embedding
        eval_images = image_tokens[n_train_images:]

        def query(hour: float | None) -> tuple[torch.Tensor, torch.Tensor]:
            n = len(eval_images)
            meta = metadata_features([SITE_LAT] * n, [SITE_LON] * n, [MONTH] * n,
                                     None if hour is None else [hour] * n)  # fmt: skip
            out = model.encode_image(eval_images, metadata=meta)
            assert out.weights is not None
            return out.embedding, out.weights

        rows = []
        for hour in [*range(24), None]:
            embedding, weights = query(None if hour is None else float(hour))
            scores = embedding @ audio.T  # (images, held clips)
            top = scores.topk(5, dim=1).indices.numpy()
            hours = f["hours"][held_idx][top]
            rows.append({
                "hour": hour,
                "top1_error_h": float(circular_hours(hours[:, 0], hour or 0).mean())
                if hour is not None else None,
                "top5_error_h": float(circular_hours(hours, hour or 0).mean())
                if hour is not None else None,
                "top5_bird_share": float(f["bird_share"][held_idx][top].mean()),
                "top5_hours_first_image": [round(float(h), 2) for h in hours[0]],
                "top_hours": hours,
                "weights": weights.mean(0).numpy(),
            })  # fmt: skip
    no_hour = rows[-1]
    # chance: a random held-out clip, for every query hour
    held_hours = f["hours"][held_idx]
    chance = float(np.mean([circular_hours(held_hours, h).mean() for h in range(24)]))
    # without an hour the ranking is the same for every hour: its error against each of them
    no_hour_hours = no_hour["top_hours"]
    no_hour_error = float(np.mean([circular_hours(no_hour_hours, h).mean() for h in range(24)]))
    by_hour = {r["hour"]: r for r in rows[:-1]}

    def top_concepts(w: np.ndarray, k: int = 3) -> list[tuple[int, float]]:
        order = np.argsort(-w)[:k]
        return [(int(i), round(float(w[i]), 3)) for i in order]

    dawn, night = by_hour[5], by_hour[23]
    result = {
        "clips_train": int(train.sum()), "clips_held_out": int(held.sum()),
        "images_train": n_train_images, "images_held_out": len(eval_images),
        "epochs": args.epochs, "encode_s": round(encoded_s, 1), "train_s": round(train_s, 1),
        "mean_top1_error_h": float(np.mean([r["top1_error_h"] for r in rows[:-1]])),
        "mean_top5_error_h": float(np.mean([r["top5_error_h"] for r in rows[:-1]])),
        "no_hour_top5_error_h": no_hour_error,
        "chance_error_h": chance,
        "bird_share_all_held_out": float(f["bird_share"][held_idx].mean()),
        "hour_5": {"top5_hours": dawn["top5_hours_first_image"],
                   "top5_bird_share": dawn["top5_bird_share"],
                   "top_concepts": top_concepts(dawn["weights"])},
        "hour_23": {"top5_hours": night["top5_hours_first_image"],
                    "top5_bird_share": night["top5_bird_share"],
                    "top_concepts": top_concepts(night["weights"])},
        "no_hour": {"top5_hours": no_hour["top5_hours_first_image"],
                    "top5_bird_share": no_hour["top5_bird_share"],
                    "top_concepts": top_concepts(no_hour["weights"])},
        "concept_weight_l1_5_vs_23": float(np.abs(dawn["weights"] - night["weights"]).sum()),
        "per_hour": [
            {k: v for k, v in r.items() if k not in ("weights", "top_hours")} for r in rows[:-1]
        ],
    }  # fmt: skip
    checkpoint = args.work / "timeplace.pt"
    model_id = save_checkpoint(checkpoint, model, ENCODERS, {
        "tile_m": 640.0,
        "data": {"source": "maad_soundscape_24h_16k (24 h, one recorder) with EuroSAT RGB "
                           "Forest tiles standing in for the site; docs/time_and_place.py"},
        "site_assumed": {"lon": SITE_LON, "lat": SITE_LAT, "month": MONTH},
        "metrics": {k: result[k] for k in ("mean_top5_error_h", "chance_error_h")},
    })  # fmt: skip
    result["checkpoint"], result["model_id"] = str(checkpoint), model_id
    (args.work / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "per_hour"}, indent=2))
    for r in result["per_hour"]:
        print(f"{r['hour']:>4} top-5 error {r['top5_error_h']:.2f} h  "
              f"bird share {r['top5_bird_share']:.3f}")  # fmt: skip
    assert math.isfinite(result["mean_top5_error_h"])


if __name__ == "__main__":
    main()
