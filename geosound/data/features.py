"""Frozen-encoder features of a pair manifest, computed once and kept in memory for training.

For every pair we keep token-level outputs — image feature-map cells, audio blocks, caption
word pieces — because Sat2Sound's codebook max-pools over tokens. Encoders run through the
on-disk :class:`~geosound.data.feature_cache.FeatureCache`, so a second ``geosound train`` (or
a resumed one) re-encodes nothing. The result is a :class:`PairFeatures` bundle of padded
arrays and masks, saved as one ``.npz``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import torch

from geosound.atomic import atomic_path
from geosound.audio import load_audio
from geosound.data.feature_cache import FeatureCache, content_key
from geosound.data.recipe import MixRecipe, is_recipe
from geosound.encoders import DEFAULT_ENCODERS, Encoder, get_encoder, pad_tokens
from geosound.errors import DataError
from geosound.geo.images import read_image_ref
from geosound.progress import Progress

TOKEN_FIELDS = ("image", "audio", "audio_caption", "image_caption")


@dataclass
class PairFeatures:
    """Padded token arrays of N pairs, one ``<name>_tokens``/``<name>_mask`` per modality.

    ``lon``/``lat`` are each pair's place; ``month``/``hour`` its time where the manifest has
    one (NaN where unknown), which a Sat2Sound built with metadata is trained and evaluated on.
    """

    ids: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    image_tokens: np.ndarray
    image_mask: np.ndarray
    audio_tokens: np.ndarray
    audio_mask: np.ndarray
    audio_caption_tokens: np.ndarray | None
    audio_caption_mask: np.ndarray | None
    image_caption_tokens: np.ndarray | None
    image_caption_mask: np.ndarray | None
    month: np.ndarray | None = None
    hour: np.ndarray | None = None
    encoder_ids: dict[str, str] = field(default_factory=dict)

    def modalities(self) -> list[str]:
        """The token fields present (captions are absent when a manifest has none)."""
        return [name for name in TOKEN_FIELDS if getattr(self, f"{name}_tokens") is not None]

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, keep: np.ndarray) -> PairFeatures:
        """The pairs where ``keep`` is True (or at the given indices)."""
        values: dict[str, Any] = {  # field by field, through getattr
            f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[keep]
            for f in fields(self)
            if f.name != "encoder_ids"
        }
        return dataclasses.replace(self, **values, encoder_ids=dict(self.encoder_ids))

    def split(self, name: str) -> PairFeatures:
        """The pairs of one split (``"train"`` or ``"eval"``)."""
        keep = self.splits == name
        if not keep.any():
            raise DataError(f"no pairs in split {name!r} (splits: {sorted(set(self.splits))})")
        return self.subset(keep)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write one compressed ``.npz`` atomically."""
        arrays = {
            # ids, labels and splits come from pandas as object arrays, which np.load refuses
            # without pickle: store them as plain strings.
            f.name: _unpickled(getattr(self, f.name))
            for f in fields(self)
            if f.name != "encoder_ids" and getattr(self, f.name) is not None
        }
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, encoder_ids=np.array(json.dumps(self.encoder_ids)), **arrays)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PairFeatures:
        """Read a bundle written by :meth:`save`."""
        try:
            with np.load(path, allow_pickle=False) as data:
                values: dict[str, Any] = {  # np.load's arrays are untyped
                    f.name: data[f.name] if f.name in data.files else None
                    for f in fields(cls)
                    if f.name != "encoder_ids"
                }
                encoder_ids = json.loads(str(data["encoder_ids"]))
        except (OSError, KeyError, ValueError) as error:
            raise DataError(f"not a geosound feature bundle ({error})", path) from None
        return cls(**values, encoder_ids=encoder_ids)


def _unpickled(array: np.ndarray) -> np.ndarray:
    return array.astype(str) if array.dtype == object else array


def prepare_features(
    manifest: gpd.GeoDataFrame,
    cache_root: Path | None = None,
    encoders: dict[str, Encoder] | None = None,
    progress: Progress | None = None,
) -> PairFeatures:
    """Encode every pair of a manifest (images, audio, both captions) through the cache.

    Args:
        manifest: A pair manifest (see :mod:`geosound.data.manifest`).
        cache_root: Feature cache folder (default: the user cache).
        encoders: ``{"image": ..., "audio": ..., "text": ...}`` (default: the offline defaults).
        progress: Called with (fraction, message) per modality.
    """
    encoders = encoders or {m: get_encoder(n) for m, n in DEFAULT_ENCODERS.items()}
    caches = {modality: FeatureCache(cache_root, e) for modality, e in encoders.items()}

    def report(step: int, message: str) -> None:
        if progress:
            progress(step / 4, message)

    report(0, f"encoding {len(manifest)} images")
    images = [read_image_ref(ref) for ref in manifest["image"]]
    image = caches["image"].encode(images)
    report(1, f"encoding {len(manifest)} recordings")
    audio_specs = [str(spec) for spec in manifest["audio"]]
    audio = caches["audio"].encode(
        audio_specs, keys=[audio_key(spec) for spec in audio_specs], prepare=load_audio_spec
    )
    report(2, "encoding captions")
    encoded = {"image": image, "audio": audio}
    for name in ("audio_caption", "image_caption"):
        captions = manifest[name].fillna("").astype(str).str.strip()
        # A caption modality is used only when every pair has one: the contrastive terms
        # need a partner for each row, and an empty string is no description.
        if (captions != "").all():
            encoded[name] = caches["text"].encode(list(captions))
    report(4, "features ready")

    padded = {name: _pad([f.tokens for f in feats]) for name, feats in encoded.items()}
    no_captions: tuple[None, None] = (None, None)
    audio_caption = padded.get("audio_caption", no_captions)
    image_caption = padded.get("image_caption", no_captions)
    return PairFeatures(
        ids=manifest["id"].astype(str).to_numpy(),
        labels=manifest["label"].astype(str).to_numpy(),
        splits=manifest["split"].astype(str).to_numpy(),
        lon=manifest["lon"].to_numpy(dtype=np.float32),
        lat=manifest["lat"].to_numpy(dtype=np.float32),
        image_tokens=padded["image"][0],
        image_mask=padded["image"][1],
        audio_tokens=padded["audio"][0],
        audio_mask=padded["audio"][1],
        audio_caption_tokens=audio_caption[0],
        audio_caption_mask=audio_caption[1],
        image_caption_tokens=image_caption[0],
        image_caption_mask=image_caption[1],
        month=_optional_numbers(manifest, "month"),
        hour=_optional_numbers(manifest, "hour"),
        encoder_ids={m: e.id for m, e in encoders.items()},
    )


def _optional_numbers(manifest: gpd.GeoDataFrame, column: str) -> np.ndarray:
    """A manifest's optional numeric column as float32, NaN where a row (or all) has none."""
    if column not in manifest:
        return np.full(len(manifest), np.nan, dtype=np.float32)
    return manifest[column].astype(float).to_numpy(dtype=np.float32)


def load_audio_spec(spec: str) -> object:
    """The recording a manifest ``audio`` entry names: a file, or a sonified mix rendered."""
    if is_recipe(spec):
        return MixRecipe.from_json(spec).render()
    return load_audio(spec, sample_rate=None)


def audio_key(spec: str) -> str:
    """Cache key of an ``audio`` entry: the recipe itself for a mix, the file's bytes otherwise.

    A recipe fully determines its rendering, so keying by recipe lets a warm cache skip the
    rendering too.
    """
    if is_recipe(spec):
        return content_key(MixRecipe.from_json(spec).to_dict())
    return content_key(Path(spec))


def _pad(sequences: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    tokens, mask = pad_tokens([torch.from_numpy(np.asarray(seq)) for seq in sequences])
    return tokens.numpy().astype(np.float32, copy=False), mask.numpy()
