"""The zero-shot evaluation of ``geosound evaluate``: which tiles and clips, encoded once, scored.

Which items (:func:`eval_items`), from the training run's own pair manifest
    * Sentinel-2 tiles (``eurosat_ms_geotiff``, true colour): the split each tile has in the
      manifest; a tile in no pair was never trained on and counts as eval.
    * RGB tiles (``eurosat_rgb_jpg_5class``): the same where the manifest pairs them. A model
      trained without them has never seen any; they are then split with the run's seed and
      eval fraction (:func:`~geosound.data.splits.split_by_tile_and_clip`), so that the linear
      probe has training tiles, and every method is scored on the eval part only.
    * ESC-50 clips: the clip split rebuilt from the run's seed and eval fraction; a clip of
      its eval side that any *training* pair's mix contains is left out (and counted), so
      "unseen" is checked against what training actually heard, whatever split made it.

Encoding (:func:`encode_items`)
    The checkpoint's frozen encoders run once per item (clips through the feature cache);
    each method then only applies its heads or maps, so adding a checkpoint costs seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from geosound.data.concepts import CLIP_CAPTIONS
from geosound.data.devsets import (
    ESC50_FOLDER,
    EUROSAT_CLASSES,
    EUROSAT_MS_FOLDER,
    EUROSAT_RGB_FOLDER,
    load_esc50,
    load_eurosat_rgb,
    load_eurosat_tiles,
)
from geosound.data.recipe import MixRecipe, is_recipe
from geosound.data.splits import split_by_tile_and_clip
from geosound.encoders import Encoder, pad_tokens
from geosound.errors import DataError
from geosound.evaluation.zero_shot import (
    Classification,
    Encoded,
    Method,
    classification,
    linear_probe,
    nearest,
    oracle_landcover_ranking,
    plausible,
    precision_at_k,
    precision_chance,
)
from geosound.progress import Progress
from geosound.space.prompts import SOUND_TEMPLATES, ensemble_vectors, landcover_sound_prompts

__all__ = [
    "EvalItems",
    "SuiteResult",
    "encode_items",
    "eval_items",
    "format_suite",
    "run_suite",
]

RGB_CLASSES: tuple[str, ...] = ("Forest", "Industrial", "Pasture", "Residential", "River")
TOP_K = 10


@dataclass
class EvalItems:
    """Paths, labels and train/eval sides of the items the suite scores."""

    ms_tiles: pd.DataFrame
    """``path``, ``label``, ``split`` of the Sentinel-2 tiles."""
    rgb_tiles: pd.DataFrame
    """``path``, ``label``, ``split`` of the RGB tiles."""
    clips: pd.DataFrame
    """``path``, ``label``, ``split`` of the ESC-50 clips (``split`` is ``excluded`` for an
    eval-side clip a training mix contains)."""
    notes: list[str] = field(default_factory=list)


def _key(path: object) -> str:
    """Compare files by folder and name: manifests hold absolute paths from another checkout."""
    p = Path(str(path))
    return f"{p.parent.name}/{p.name}"


def _manifest_sides(manifest: pd.DataFrame) -> tuple[dict[str, str], set[str]]:
    """Tile → split in the manifest, and every clip a training pair's audio contains."""
    tile_split: dict[str, str] = {}
    for image, split in zip(manifest["image"], manifest["split"], strict=True):
        key = _key(str(image).split("#")[0])
        # A tile trained on in any pair is a training tile.
        tile_split[key] = "train" if tile_split.get(key) == "train" else str(split)
    heard: set[str] = set()
    for audio in manifest.loc[manifest["split"] == "train", "audio"]:
        spec = str(audio)
        sources = MixRecipe.from_json(spec).sources if is_recipe(spec) else [{"path": spec}]
        heard.update(_key(s["path"]) for s in sources)
    return tile_split, heard


def eval_items(
    manifest: pd.DataFrame, data_dir: Path, eval_fraction: float, seed: int
) -> EvalItems:
    """The dev tiles and clips, each with the side of the training run it is on (module doc).

    Args:
        manifest: The run's pair manifest (``image``, ``audio``, ``split``).
        data_dir: The dev data folder.
        eval_fraction: The run's share held out (for sides the manifest cannot say).
        seed: The run's seed.
    """
    tile_split, heard = _manifest_sides(manifest)
    clips = load_esc50(data_dir / ESC50_FOLDER)[["path", "label", "freesound_id"]]
    notes = []

    def sides(tiles: pd.DataFrame, name: str) -> pd.DataFrame:
        keys = tiles["path"].map(_key)
        known = keys.isin(tile_split)
        if known.any():
            split = keys.map(tile_split).where(known, "eval")
            notes.append(f"{name}: sides from the run's manifest ({int(known.sum())} tiles paired)")
        else:
            split = split_by_tile_and_clip(tiles, clips, eval_fraction, seed)[0]
            notes.append(f"{name}: never trained on; split with seed {seed} for the probe")
        return tiles[["path", "label"]].assign(split=split.to_numpy()).reset_index(drop=True)

    ms = sides(load_eurosat_tiles(data_dir / EUROSAT_MS_FOLDER), "Sentinel-2 tiles")
    rgb = sides(load_eurosat_rgb(data_dir / EUROSAT_RGB_FOLDER), "RGB tiles")
    _, clip_split = split_by_tile_and_clip(ms, clips, eval_fraction, seed)
    clip_split = clip_split.to_numpy().astype(object)
    leaked = (clip_split == "eval") & clips["path"].map(_key).isin(heard).to_numpy()
    clip_split[leaked] = "excluded"
    if leaked.any():
        notes.append(f"{int(leaked.sum())} eval-side clips are in training mixes: left out")
    return EvalItems(
        ms, rgb, clips[["path", "label"]].assign(split=clip_split).reset_index(drop=True), notes
    )


# --------------------------------------------------------------------------- encoding


@dataclass
class EncodedItems:
    """Every item of :class:`EvalItems` through the frozen encoders, split by side."""

    ms: dict[str, Encoded]
    rgb: dict[str, Encoded]
    clips: dict[str, Encoded]
    encode_texts: Callable[[Sequence[str]], Encoded]


def _encoded(pooled: np.ndarray, tokens: list[np.ndarray], labels: Sequence[str]) -> Encoded:
    padded, mask = pad_tokens([torch.from_numpy(np.asarray(t, np.float32)) for t in tokens])
    return Encoded(
        np.asarray(pooled, np.float32), padded.numpy(), mask.numpy().astype(bool),
        np.asarray([str(x) for x in labels]),
    )  # fmt: skip


def _encode_images(encoder: Encoder, paths: Sequence[str], labels: Sequence[str]) -> Encoded:
    """Tiles through the image encoder in batches of equal shape (fast at 64 px: no cache)."""
    from geosound.geo.images import read_image_ref

    images = [read_image_ref(str(p)) for p in paths]
    pooled: list[np.ndarray] = [np.empty(0)] * len(images)
    tokens: list[np.ndarray] = [np.empty(0)] * len(images)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
        by_shape.setdefault(image.shape, []).append(i)
    for members in by_shape.values():
        for start in range(0, len(members), 256):
            chunk = members[start : start + 256]
            encoding = encoder.encode(np.stack([images[i] for i in chunk]).astype(np.float32))
            for row, i in enumerate(chunk):
                pooled[i] = encoding.pooled[row].numpy()
                tokens[i] = encoding.tokens[row][encoding.mask[row]].numpy()
    return _encoded(np.stack(pooled), tokens, labels)


def encode_items(
    items: EvalItems,
    encoders: Mapping[str, Encoder],
    cache_root: Path | None = None,
    progress: Progress | None = None,
) -> EncodedItems:
    """Encode every tile and clip once with the checkpoint's frozen encoders."""
    from geosound.audio import load_audio
    from geosound.data.feature_cache import FeatureCache

    def by_side(frame: pd.DataFrame, encode: Callable[[pd.DataFrame], Encoded]) -> dict:
        return {side: encode(frame[frame["split"] == side]) for side in ("train", "eval")}

    def images(frame: pd.DataFrame) -> Encoded:
        return _encode_images(encoders["image"], list(frame["path"]), list(frame["label"]))

    cache = FeatureCache(cache_root, encoders["audio"])

    def clips(frame: pd.DataFrame) -> Encoded:
        features = cache.encode(
            list(frame["path"]), prepare=lambda p: load_audio(p, sample_rate=None)
        )
        return _encoded(
            np.stack([f.pooled for f in features]), [f.tokens for f in features],
            list(frame["label"]),
        )  # fmt: skip

    def texts(prompts: Sequence[str]) -> Encoded:
        encoding = encoders["text"].encode(list(prompts))
        return Encoded(
            encoding.pooled.numpy(), encoding.tokens.numpy(),
            encoding.mask.numpy().astype(bool), np.asarray(list(prompts)),
        )  # fmt: skip

    report = progress or (lambda fraction, message: None)
    report(0.0, "encoding Sentinel-2 tiles")
    ms = by_side(items.ms_tiles, images)
    report(0.2, "encoding RGB tiles")
    rgb = by_side(items.rgb_tiles, images)
    report(0.5, "encoding clips")
    encoded_clips = by_side(items.clips, clips)
    report(1.0, "encoded")
    return EncodedItems(ms, rgb, encoded_clips, texts)


# --------------------------------------------------------------------------- scoring


@dataclass
class SuiteResult:
    """Every figure of the suite, by table and row (method name) → column → value."""

    landcover: dict[str, dict[str, float]] = field(default_factory=dict)
    image_audio: dict[str, dict[str, float]] = field(default_factory=dict)
    audio_text: dict[str, dict[str, float]] = field(default_factory=dict)
    confusions: dict[str, dict[str, Classification]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _landcover_sets(encoded: EncodedItems) -> dict[str, tuple[Encoded, Encoded, tuple[str, ...]]]:
    return {
        "10-class Sentinel-2": (encoded.ms["train"], encoded.ms["eval"], EUROSAT_CLASSES),
        "5-class RGB": (encoded.rgb["train"], encoded.rgb["eval"], RGB_CLASSES),
    }


def _sound_classes(encoded: EncodedItems) -> list[str]:
    return sorted(set(encoded.clips["eval"].labels) | set(encoded.clips["train"].labels))


def _caption_prompts(classes: Sequence[str]) -> dict[str, list[tuple[str, float]]]:
    return {c: [(CLIP_CAPTIONS.get(c, c.replace("_", " ")), 1.0)] for c in classes}


def run_suite(
    encoded: EncodedItems,
    methods: Sequence[Method],
    templates: Sequence[str] = SOUND_TEMPLATES,
    seed: int = 0,
) -> SuiteResult:
    """Score every method on the three zero-shot tasks, beside chance and the ceilings."""
    result = SuiteResult()
    clips_train, clips_eval = encoded.clips["train"], encoded.clips["eval"]
    prompts = landcover_sound_prompts()
    sound_classes = _sound_classes(encoded)
    captions = _caption_prompts(sound_classes)

    def embed(method: Method) -> Callable[[list[str]], np.ndarray]:
        return lambda texts: method.texts(encoded.encode_texts(texts))

    for name, (train, evaluation, classes) in _landcover_sets(encoded).items():
        result.counts[f"{name} eval tiles"] = len(evaluation)
        result.counts[f"{name} train tiles"] = len(train)
        chance = classification(evaluation.labels, evaluation.labels, classes)
        result.landcover.setdefault("chance (uniform guess)", {})[name] = 1.0 / len(classes)
        result.landcover.setdefault("majority class", {})[name] = chance.majority
        probe = classification(
            evaluation.labels, linear_probe(train.pooled, train.labels, evaluation.pooled, seed),
            classes,
        )  # fmt: skip
        _put(result, "linear probe, frozen image features (supervised ceiling)", name, probe)
        for method in methods:
            class_vectors = ensemble_vectors(embed(method), {c: prompts[c] for c in classes})
            predicted = [classes[i] for i in nearest(method.images(evaluation), class_vectors)]
            _put(result, method.name, name, classification(evaluation.labels, predicted, classes))

    for name, tiles in (("Sentinel-2 eval tiles", encoded.ms["eval"]),
                        ("RGB eval tiles", encoded.rgb["eval"])):  # fmt: skip
        relevant = plausible(tiles.labels, clips_eval.labels)
        rows = result.image_audio
        rows.setdefault("chance (random ranking)", {})[name] = precision_chance(relevant)
        oracle = oracle_landcover_ranking(
            tiles.labels, clips_train.pooled, clips_train.labels, clips_eval.pooled
        )
        rows.setdefault("perfect land-cover knowledge, frozen audio (ceiling)", {})[name] = (
            precision_at_k(oracle, relevant, TOP_K)
        )
        for method in methods:
            similarity = _unit(method.images(tiles)) @ _unit(method.audio(clips_eval)).T
            rows.setdefault(method.name, {})[name] = precision_at_k(similarity, relevant, TOP_K)
    result.counts["unseen clips (gallery)"] = len(clips_eval)

    column = f"top-1 over {len(sound_classes)} classes"
    rows = result.audio_text
    rows.setdefault("chance (uniform guess)", {})[column] = 1.0 / len(sound_classes)
    probe = classification(
        clips_eval.labels,
        linear_probe(clips_train.pooled, clips_train.labels, clips_eval.pooled, seed),
        sound_classes,
    )
    rows.setdefault("linear probe, frozen audio features (supervised ceiling)", {})[column] = (
        probe.top1
    )
    for method in methods:
        class_vectors = ensemble_vectors(embed(method), captions, templates)
        predicted = [sound_classes[i] for i in nearest(method.audio(clips_eval), class_vectors)]
        rows.setdefault(method.name, {})[column] = classification(
            clips_eval.labels, predicted, sound_classes
        ).top1
    return result


def _put(result: SuiteResult, row: str, column: str, scored: Classification) -> None:
    result.landcover.setdefault(row, {})[column] = scored.top1
    result.landcover[row][f"{column} balanced"] = scored.balanced
    result.confusions.setdefault(row, {})[column] = scored


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


# --------------------------------------------------------------------------- tables


def _table(rows: Mapping[str, Mapping[str, float]], first: str) -> list[str]:
    columns = list(dict.fromkeys(c for values in rows.values() for c in values))
    lines = [f"| {first} | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for name, values in rows.items():
        cells = [f"{values[c]:.3f}" if c in values else "—" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def format_suite(result: SuiteResult, title: str, confusion_of: str | None = None) -> str:
    """The three tables (Markdown, the same text for terminals and docs), then a confusion matrix.

    Args:
        result: :func:`run_suite`'s figures.
        title: Says "dev" and which model.
        confusion_of: The method whose per-class accuracy and confusion matrices to print
            (default: the last method row of the land-cover table).
    """
    counts = ", ".join(f"{v} {k}" for k, v in result.counts.items())
    noise = ", ".join(
        f"±{0.5 / np.sqrt(n):.3f} on {n}" for n in sorted({v for k, v in result.counts.items()
                                                         if "train" not in k})
    )  # fmt: skip
    lines = [title, "", f"Items: {counts}.", "",
             f"Noise: a share near 0.5 has a binomial standard error of {noise} items; read "
             "smaller differences as noise.", ""]  # fmt: skip
    lines += ["Zero-shot land cover from sound prompts (top-1; 'balanced' = mean per-class "
              "accuracy)", ""]  # fmt: skip
    lines += _table(result.landcover, "method")
    lines += ["", f"Image→audio class-level precision@{TOP_K} on unseen clips (a clip counts "
              "when its class is likely or possible for the tile's land cover)", ""]  # fmt: skip
    lines += _table(result.image_audio, "method")
    lines += ["", "Audio→text zero-shot on the ESC-50 classes (unseen clips, class-caption "
              "prompt ensembles)", ""]  # fmt: skip
    lines += _table(result.audio_text, "method")
    methods = list(result.confusions)
    which = confusion_of or (methods[-1] if methods else None)
    if which in result.confusions:
        for name, scored in result.confusions[which].items():
            lines += ["", f"Per-class accuracy and confusion matrix, {which}, {name} "
                      "(rows true, columns predicted)", ""]  # fmt: skip
            lines += _confusion_lines(scored)
    for note in result.notes:
        lines += ["", note]
    return "\n".join(lines)


def _confusion_lines(scored: Classification) -> list[str]:
    short = [c[:6] for c in scored.classes]
    lines = ["| true \\ predicted | " + " | ".join(short) + " | n | accuracy |",
             "|---|" + "---|" * (len(short) + 2)]  # fmt: skip
    accuracy = scored.per_class
    for i, name in enumerate(scored.classes):
        row = scored.confusion[i]
        if row.sum() == 0:
            continue
        cells = " | ".join(str(int(v)) for v in row)
        lines.append(f"| {name} | {cells} | {int(row.sum())} | {accuracy[name]:.2f} |")
    return lines


def check_items(items: EvalItems) -> None:
    """Refuse a set the suite cannot score (no eval or train side somewhere)."""
    for name, frame in (("Sentinel-2 tiles", items.ms_tiles), ("RGB tiles", items.rgb_tiles),
                        ("clips", items.clips)):  # fmt: skip
        for side in ("train", "eval"):
            if not (frame["split"] == side).any():
                raise DataError(f"the dev {name} have no {side!r} items for this run")
