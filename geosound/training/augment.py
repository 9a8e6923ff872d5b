"""Training augmentations for the frozen-encoder setting: image views made once, cached, sampled.

Satellite and aerial imagery reaches geosound from many sensors and scales (NAIP at 0.6–5 m,
Sentinel-2 at 10 m, Landsat at 30 m), in colours that each sensor and each scaling differ in,
and with no "up". The training tiles are all EuroSAT (10 m, one colour scaling), so a model
trained on them alone learns that sensor. Four augmentations widen it:

* ``dihedral`` — one of the 8 rotations by 90° and flips: overhead imagery has no up.
* ``gsd`` — random resampling across ground sampling distances. Coarser (10 → up to 30 m):
  downsample by a factor in [1, 3] and upsample back, so the tile keeps its ground size and
  loses detail as a 30 m sensor would. Finer (crop-and-zoom): a window of 1/2 to 1 of the
  tile's side is cut and enlarged to the tile size, so the tile covers 320–640 m at an
  apparent 5–10 m, what a finer sensor tiled by pixels shows. Finer than ~5 m cannot be
  simulated from 10 m pixels (no detail to show); say so rather than pretend.
* ``colour`` — brightness and contrast (×0.7–1.3), gamma (0.8–1.25) and a per-band gain
  (×0.9–1.1): the spread between one sensor's scenes (season, sun, haze).
* ``sensor`` — what another sensor and another scaling do to the same ground: per-band gain
  (log-uniform ×0.7–1.4) and offset (±0.08, path radiance and dark-object differences),
  saturation ×0.4–1.6, and one view in ten grey. A float raster mapped with the per-raster
  2–98 % stretch, or an 8-bit orthophoto with its own white balance, is an affine change of
  each band — the same family — so the heads learn water, woods and roads from texture and
  layout as much as from EuroSAT's colours (a turbid Wadden Sea under a stretch is purple,
  a prairie lake in NAIP green).

The image encoder is frozen, so the standard trick applies: a fixed number of augmented
*views* per tile (view 0 is the tile itself) is drawn once from a generator seeded by (seed,
tile, view), encoded once through the feature cache, and a view is sampled per tile per epoch
(:class:`~geosound.training.data_module.PairDataset`). Views come out at the tile's own
size, so every view has the same number of encoder tokens.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from geosound.data.feature_cache import FeatureCache
from geosound.encoders import Encoder
from geosound.errors import InputError
from geosound.progress import Progress

__all__ = ["IMAGE_AUGMENTATIONS", "ImageViews", "augment_image", "encode_image_views"]

IMAGE_AUGMENTATIONS: tuple[str, ...] = ("dihedral", "gsd", "colour", "sensor")

COARSER_MAX = 3.0
"""Largest down-then-up factor: 10 m tiles made to look like 30 m."""
ZOOM_MAX = 2.0
"""Largest crop-and-zoom factor: 10 m tiles made to look like 5 m."""
GREY_CHANCE = 0.1
"""Share of ``sensor`` views shown in grey (single-band rasters, panchromatic scenes)."""

_CHUNK_IMAGES = 256
"""Distinct images whose views are drawn and encoded at a time (keeps memory flat)."""


def check_augmentations(names: Sequence[str]) -> tuple[str, ...]:
    """The names, checked against :data:`IMAGE_AUGMENTATIONS`.

    Raises:
        InputError: An unknown name.
    """
    unknown = sorted(set(names) - set(IMAGE_AUGMENTATIONS))
    if unknown:
        raise InputError(
            f"unknown image augmentation(s) {', '.join(unknown)}; known: "
            f"{', '.join(IMAGE_AUGMENTATIONS)}"
        )
    return tuple(names)


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(
        image[None], size=size, mode="bilinear", align_corners=False, antialias=True
    )[0]


def _dihedral(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    turned = np.rot90(image, int(rng.integers(4)), axes=(1, 2))
    return turned[:, :, ::-1] if rng.random() < 0.5 else turned


def _gsd(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Coarser (down, then up) or finer (crop-and-zoom), each half of the time."""
    tensor = torch.from_numpy(np.ascontiguousarray(image))
    height, width = image.shape[1:]
    if rng.random() < 0.5:
        factor = float(rng.uniform(1.0, COARSER_MAX))
        small = (max(1, round(height / factor)), max(1, round(width / factor)))
        return _resize(_resize(tensor, small), (height, width)).numpy()
    zoom = float(rng.uniform(1.0, ZOOM_MAX))
    crop_h, crop_w = max(2, round(height / zoom)), max(2, round(width / zoom))
    top = int(rng.integers(height - crop_h + 1))
    left = int(rng.integers(width - crop_w + 1))
    window = tensor[:, top : top + crop_h, left : left + crop_w]
    return _resize(window, (height, width)).numpy()


def _colour(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    brightness = rng.uniform(0.7, 1.3)
    contrast = rng.uniform(0.7, 1.3)
    gamma = rng.uniform(0.8, 1.25)
    gains = rng.uniform(0.9, 1.1, size=(image.shape[0], 1, 1))
    mean = image.mean()
    out = (image - mean) * contrast + mean
    out = np.clip(out * brightness * gains, 0.0, 1.0) ** gamma
    return out


def _sensor(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    bands = image.shape[0]
    gains = np.exp(rng.uniform(np.log(0.7), np.log(1.4), size=(bands, 1, 1)))
    offsets = rng.uniform(-0.08, 0.08, size=(bands, 1, 1))
    out = image * gains + offsets
    grey = out.mean(axis=0, keepdims=True)
    saturation = 0.0 if rng.random() < GREY_CHANCE else rng.uniform(0.4, 1.6)
    return grey + (out - grey) * saturation


def augment_image(image: np.ndarray, rng: np.random.Generator, names: Sequence[str]) -> np.ndarray:
    """One augmented view of a (3, H, W) RGB image in [0, 1], of the same shape.

    The augmentations run in the fixed order dihedral → gsd → colour → sensor, each drawn from
    ``rng``, so a config without ``sensor`` draws the views it drew before ``sensor`` existed.
    """
    out = np.asarray(image, dtype=np.float32)
    if "dihedral" in names:
        out = _dihedral(out, rng)
    if "gsd" in names:
        out = _gsd(out, rng)
    if "colour" in names:
        out = _colour(out, rng)
    if "sensor" in names:
        out = _sensor(out, rng)
    return np.ascontiguousarray(np.clip(out, 0.0, 1.0), dtype=np.float32)


@dataclass
class ImageViews:
    """Encoder tokens of ``V`` views of ``U`` distinct images; pairs point at their image.

    Attributes:
        tokens: ``(U, V, T, D)`` float16 (half the memory; the heads read float32 copies).
        index: ``(N,)`` the image of each pair, into ``tokens``.
    """

    tokens: np.ndarray
    index: np.ndarray

    @property
    def views(self) -> int:
        """Views per image (view 0 is the image itself)."""
        return int(self.tokens.shape[1])


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def encode_image_views(
    image_refs: Sequence[str],
    views: int,
    names: Sequence[str],
    seed: int,
    encoder: Encoder,
    cache_root: Path | None = None,
    progress: Progress | None = None,
) -> ImageViews:
    """Draw ``views`` views of every distinct image, encode them once (cached), stack them.

    Args:
        image_refs: The manifest's ``image`` values, one per pair (repeats are one image).
        views: Views per image, the unaugmented image first.
        names: Augmentations to apply (:data:`IMAGE_AUGMENTATIONS`).
        seed: With the image reference and the view number, seeds each view's draw.
        encoder: The frozen image encoder.
        cache_root: Feature cache folder (default: the user cache).
        progress: ``callback(fraction, message)``.

    Raises:
        InputError: Unknown augmentations, or images whose token counts differ.
    """
    from geosound.geo.images import read_image_ref

    names = check_augmentations(names)
    distinct = list(dict.fromkeys(str(ref) for ref in image_refs))
    position = {ref: i for i, ref in enumerate(distinct)}
    cache = FeatureCache(cache_root, encoder)
    chunks: list[np.ndarray] = []
    for start in range(0, len(distinct), _CHUNK_IMAGES):
        images = []
        for ref in distinct[start : start + _CHUNK_IMAGES]:
            image = read_image_ref(ref)
            images.append(image)
            for view in range(1, views):
                rng = np.random.default_rng([seed, _stable_int(ref), view])
                images.append(augment_image(image, rng, names))
        features = cache.encode(images)
        shapes = {f.tokens.shape for f in features}
        if len(shapes) != 1 or (chunks and chunks[0].shape[2:] != next(iter(shapes))):
            raise InputError(
                f"image views need one tile size; got token shapes {sorted(shapes)} "
                "(resize the tiles)"
            )
        stacked = np.stack([f.tokens for f in features]).astype(np.float16)
        chunks.append(stacked.reshape(-1, views, *stacked.shape[1:]))
        if progress is not None:
            done = min(start + _CHUNK_IMAGES, len(distinct))
            progress(
                done / len(distinct), f"encoded {done * views}/{len(distinct) * views} image views"
            )
    tokens = np.concatenate(chunks)
    index = np.asarray([position[str(ref)] for ref in image_refs], dtype=np.int64)
    return ImageViews(tokens, index)
