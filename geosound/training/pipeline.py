"""``geosound train`` and ``geosound evaluate``: from the dev data to a shipped checkpoint.

One deterministic pipeline, so that the checkpoint in the package can be remade by anyone
with the dev data:

1. sonify the EuroSAT dev tiles with the ESC-50 dev clips (Seeing Sound, METHODS §3), tiles
   and clips split disjointly into train and eval;
2. encode every pair with the frozen encoders, through the feature cache;
3. train Sat2Sound, and the no-codebook variant beside it;
4. evaluate both against chance and the untrained-encoder linear map on the eval split;
5. write the checkpoint (with its metrics and config) and the table.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np

from geosound.atomic import atomic_path
from geosound.config import dev_data_dir
from geosound.data.features import PairFeatures, prepare_features
from geosound.data.manifest import read_manifest, write_manifest
from geosound.data.sonify import sonify_dev_sets
from geosound.errors import InputError
from geosound.evaluation.retrieval import RetrievalReport
from geosound.evaluation.sat2sound_eval import (
    both_directions,
    chance_rows,
    embed_pairs,
    format_table,
    linear_map_baseline,
)
from geosound.geo.images import chip_ground_m
from geosound.models import Sat2Sound
from geosound.models.checkpoint import save_checkpoint
from geosound.progress import Progress, stage
from geosound.sidecar import write_sidecar
from geosound.training.augment import ImageViews, encode_image_views
from geosound.training.config import TrainConfig
from geosound.training.data_module import place_of
from geosound.training.fit import fit_sat2sound
from geosound.version import __version__

TABLE_TITLE = "Sat2Sound retrieval on the dev eval split (dev figures)"

EUROSAT_TILE_M = 640.0
"""Ground size of the dev training tiles: EuroSAT's 64 px at 10 m. Recorded in the checkpoint
as ``info["tile_m"]``, which maps take as their default tile size in metres; a run on a pair
manifest records its chips' median ground size instead, where their rasters have a CRS."""


Metrics = dict[str, dict[str, dict[str, float | str | int]]]
"""Method → direction → metric → value, as checkpoints and ``metrics.json`` record them."""


def _manifest_tile_m(manifest_path: Path) -> float | None:
    """The ground size of a manifest's chips (None for photos and chips without a CRS)."""
    return chip_ground_m(read_manifest(manifest_path)["image"].astype(str))


@dataclass
class TrainOutcome:
    """What a training run produced."""

    checkpoint: Path
    model_id: str
    table: str
    metrics: Metrics


def build_pairs(
    data_dir: Path,
    config: TrainConfig,
    out_dir: Path,
    progress: Progress | None = None,
    manifest: Path | None = None,
) -> gpd.GeoDataFrame:
    """The run's pairs: a given manifest (real pairs), or the dev tiles sonified.

    Sonified train tiles get ``variants`` mixes each, eval tiles one.
    """
    manifest_path = out_dir / "pairs.parquet"
    if manifest_path.exists():
        return read_manifest(manifest_path)
    if manifest is not None:
        pairs = ensure_eval_split(read_manifest(manifest), config)
        write_manifest(pairs, manifest_path)
        return pairs
    pairs, _ = sonify_dev_sets(
        data_dir,
        variants=config.variants,
        seed=config.seed,
        eval_fraction=config.eval_fraction,
        progress=progress,
        imagery=config.imagery,
        sounds=config.sounds,
        mix_bank=config.mix_bank or None,
    )
    # One mix per eval tile: the gallery should hold each held-out place once.
    is_extra_eval = (pairs["split"] == "eval") & ~pairs["id"].str.endswith("-v0")
    pairs = pairs[~is_extra_eval].reset_index(drop=True)
    write_manifest(pairs, manifest_path)
    return pairs


def ensure_eval_split(pairs: gpd.GeoDataFrame, config: TrainConfig) -> gpd.GeoDataFrame:
    """Keep a manifest's own train/eval split; without eval rows, hold out places at random.

    Places (not pairs) are held out, with the run's seed and ``eval_fraction``, so that no
    place is on both sides.
    """
    if (pairs["split"] == "eval").any() and (pairs["split"] == "train").any():
        return pairs
    places = pairs["id"].astype(str).map(place_of)
    unique = np.array(sorted(set(places)))
    rng = np.random.default_rng(config.seed)
    held_out = set(rng.choice(unique, max(1, round(config.eval_fraction * len(unique))), False))
    if len(held_out) == len(unique):
        raise InputError("too few places to hold any out for evaluation", None)
    pairs = pairs.copy()
    pairs["split"] = np.where(places.isin(held_out), "eval", "train")
    return pairs


def load_features(
    data_dir: Path,
    config: TrainConfig,
    out_dir: Path,
    cache_root: Path | None = None,
    progress: Progress | None = None,
    manifest: Path | None = None,
) -> PairFeatures:
    """Pairs and their encoder features for a config (cached on disk after the first run)."""
    manifest = build_pairs(data_dir, config, out_dir, stage(progress, 0.0, 0.3), manifest)
    return prepare_features(manifest, cache_root=cache_root, progress=stage(progress, 0.3, 1.0))


def train_image_views(
    out_dir: Path,
    features: PairFeatures,
    config: TrainConfig,
    cache_root: Path | None = None,
    progress: Progress | None = None,
) -> ImageViews | None:
    """The cached augmented views of the training pairs' images; None with one view.

    The views are drawn from the run's manifest (``pairs.parquet``) in the order of
    ``features.split("train")``, with the image encoder the features came from.
    """
    if config.image_views <= 1:
        return None
    from geosound.encoders.base import encoder_from_id

    manifest = read_manifest(out_dir / "pairs.parquet")
    train = manifest[manifest["split"].astype(str) == "train"]
    if list(train["id"].astype(str)) != list(features.split("train").ids):
        raise InputError("the run's manifest and its features disagree; remove the run folder")
    return encode_image_views(
        list(train["image"].astype(str)),
        config.image_views,
        config.image_augment,
        config.seed,
        encoder_from_id(features.encoder_ids["image"]),
        cache_root,
        progress,
    )


def evaluation_rows(
    features: PairFeatures, models: dict[str, Sat2Sound]
) -> list[tuple[str, RetrievalReport]]:
    """Chance, the untrained-encoder baseline and each model, both directions."""
    train, evaluation = features.split("train"), features.split("eval")
    rows = chance_rows(evaluation.labels)
    rows += both_directions(
        linear_map_baseline(train, evaluation), evaluation.labels, "linear map (untrained encoders)"
    )
    for name, model in models.items():
        rows += both_directions(embed_pairs(model, evaluation), evaluation.labels, name)
    return rows


def rows_to_metrics(rows: list[tuple[str, RetrievalReport]]) -> Metrics:
    """Rows as a nested dict: method → direction → metric → value (for JSON and checkpoints)."""
    metrics: Metrics = {}
    for name, report in rows:
        metrics.setdefault(name, {})[report.direction] = report.as_row()
    return metrics


def run_training(
    out_dir: str | os.PathLike[str],
    config: TrainConfig,
    data_dir: Path | None = None,
    cache_root: Path | None = None,
    progress: Progress | None = None,
    progress_bar: bool = True,
    manifest: Path | None = None,
) -> TrainOutcome:
    """The whole pipeline; see the module docstring. Resumes from ``out_dir`` when rerun."""
    config.validate()  # epochs < 1 and friends fail here, not after the features are built
    if config.model.get("use_metadata") and manifest is None:
        raise InputError(
            "model.use_metadata needs real pairs with their place and time: give --manifest "
            "(the sonified dev pairs have no time, and the RGB dev tiles no place)"
        )
    started, cpu_started = time.monotonic(), time.process_time()
    out = Path(out_dir)
    data_dir = Path(data_dir) if data_dir else dev_data_dir()
    config.to_yaml(out / "train_config.yaml")
    features = load_features(data_dir, config, out, cache_root, stage(progress, 0.0, 0.3), manifest)
    # Before training, so that imagery gone since its features were cached fails in seconds.
    tile_m = EUROSAT_TILE_M if manifest is None else _manifest_tile_m(out / "pairs.parquet")
    views = train_image_views(out, features, config, cache_root, stage(progress, 0.3, 0.4))
    model = fit_sat2sound(
        features,
        out / "runs" / "codebook",
        config,
        None,
        progress_bar,
        stage(progress, 0.4, 0.7),
        views,
    )
    variant = fit_sat2sound(
        features,
        out / "runs" / "no_codebook",
        config,
        {"use_codebook": False},
        progress_bar,
        stage(progress, 0.7, 1.0),
        views,
    )
    rows = evaluation_rows(features, {"no codebook": variant, "Sat2Sound": model})
    table = format_table(rows, TABLE_TITLE)
    metrics = rows_to_metrics(rows)
    info = {
        "geosound_version": __version__,
        "train_config": config.to_dict(),
        "metrics": metrics,
        "data": {
            "pairs_train": int((features.splits == "train").sum()),
            "pairs_eval": int((features.splits == "eval").sum()),
            "source": str(manifest)
            if manifest
            else f"EuroSAT dev tiles ({', '.join(config.imagery)}) sonified with "
            f"{', '.join(config.sounds)} dev clips (Seeing Sound)",
        },
        "train_seconds": round(time.monotonic() - started, 1),
        "train_cpu_seconds": round(time.process_time() - cpu_started, 1),
    }
    if tile_m is not None:
        info["tile_m"] = round(tile_m, 3)
    checkpoint = out / "sat2sound.pt"
    model_id = save_checkpoint(checkpoint, model, features.encoder_ids, info)
    save_checkpoint(out / "sat2sound_no_codebook.pt", variant, features.encoder_ids, info)
    write_sidecar(out / "metrics.json", "Sat2Sound training run", model_id=model_id, **info)
    with atomic_path(out / "metrics.md") as tmp:
        tmp.write_text(table + "\n")
    return TrainOutcome(checkpoint, model_id, table, metrics)
