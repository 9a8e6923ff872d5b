"""An on-disk cache of frozen encoder outputs, so training epochs never re-run the encoders.

The encoders are frozen (METHODS §1), so an input's pooled vector and its token outputs are a
pure function of (the encoder's weights and preprocessing, the input's content). This cache
stores exactly that: one ``.npz`` per (``encoder.id``, content key), holding the pooled
vector ``(D,)`` and the token outputs ``(T, D)`` trimmed to the item's own mask length (the
padding an encoder adds depends on which items happened to share a batch, so it is not part
of the item's features and is not stored).

Layout::

    root/<safe encoder id>/<key[:2]>/<key>.npz

The two-character fan-out keeps folders small at a few hundred thousand entries (GeoSound
has 318k samples). Content keys are SHA-256 digests of what the encoder actually sees (file
bytes, array bytes, text), never of a path or a name, so a file that is edited gets a new
key and a renamed file keeps its old one. The encoder id (``name@version``, or a checkpoint
fingerprint for CLAP) separates weights, so a new checkpoint never reads stale features.

Every write is atomic (:func:`geosound.atomic.atomic_path`) so an interrupted run never
leaves a half-written entry; an entry that cannot be read anyway (disk trouble, a different
numpy) is treated as a miss and recomputed. Deleting the whole folder is always safe: it
costs only recomputation.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

import numpy as np

from geosound.atomic import atomic_path
from geosound.audio.pipeline import prefetch_map
from geosound.config import cache_dir
from geosound.errors import InputError
from geosound.progress import Progress

if TYPE_CHECKING:  # only a type here: keeps ``import geosound.data`` free of torch
    from geosound.encoders.base import Encoder

__all__ = [
    "CacheStats",
    "CachedFeatures",
    "FeatureCache",
    "content_key",
    "default_feature_root",
]

#: Bytes read per step when hashing a file, so hashing a long recording needs little memory.
_CHUNK = 1 << 20

#: Characters kept as they are in an encoder id's folder name; anything else becomes "_".
_UNSAFE = re.compile(r"[^A-Za-z0-9._@+=-]")

#: The format tag stored in every entry; bump it when the entry layout changes.
_FORMAT = "geosound-features-1"


Item = TypeVar("Item")
"""What a cache is given to encode: the encoder's inputs, or what ``prepare`` turns into them."""


@runtime_checkable
class _ClipLike(Protocol):
    """An audio clip (:class:`~geosound.audio.Clip`) as the key sees it."""

    samples: np.ndarray
    sample_rate: int


@runtime_checkable
class _TensorLike(Protocol):
    """A torch tensor, without importing torch for the check."""

    def detach(self) -> _TensorLike: ...
    def cpu(self) -> _TensorLike: ...
    def numpy(self) -> np.ndarray: ...


def default_feature_root() -> Path:
    """``geosound.config.cache_dir() / "features"`` — where features go unless told otherwise."""
    return cache_dir() / "features"


def content_key(obj: object) -> str:
    """A SHA-256 hex digest of what an input contains (not of what it is called).

    Each kind is hashed with its own prefix, so a text and a file with the same bytes, or two
    arrays with the same bytes but different shapes, never share a key.

    Args:
        obj: One of:

            * a :class:`pathlib.Path` (or other ``os.PathLike``): the file's bytes;
            * a ``str``: its UTF-8 text (a string is text; wrap file paths in ``Path``);
            * a numpy array (or torch tensor): its bytes in C order plus shape and dtype;
            * an object with ``.samples`` and ``.sample_rate`` (an audio
              :class:`~geosound.audio.Clip`): the samples as an array plus the rate;
            * a ``dict`` (e.g. a sonification recipe) or list: canonical JSON (sorted keys,
              no whitespace), so key order and formatting do not change the key.

    Returns:
        64 lowercase hex characters.

    Raises:
        InputError: A path that is missing or not a file, or an object of another kind.
    """
    digest = hashlib.sha256()
    if isinstance(obj, os.PathLike):
        path = Path(obj)
        if not path.is_file():
            raise InputError("cannot compute a content key: not an existing file", path)
        digest.update(b"file\0")
        with path.open("rb") as stream:
            for chunk in iter(lambda: stream.read(_CHUNK), b""):
                digest.update(chunk)
    elif isinstance(obj, str):
        digest.update(b"text\0")
        digest.update(obj.encode("utf-8"))
    elif isinstance(obj, Mapping | list | tuple):
        digest.update(b"json\0")
        try:
            text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError) as error:
            raise InputError(f"cannot compute a content key for a recipe: {error}") from error
        digest.update(text.encode("utf-8"))
    elif isinstance(obj, _ClipLike):
        digest.update(b"clip\0")
        digest.update(str(int(obj.sample_rate)).encode())
        _update_array(digest, np.asarray(obj.samples))
    else:
        array = _as_array(obj)
        if array is None:
            raise InputError(
                f"cannot compute a content key for a {type(obj).__name__}; pass a Path, str, "
                "numpy array, audio Clip or dict"
            )
        digest.update(b"array\0")
        _update_array(digest, array)
    return digest.hexdigest()


def _as_array(obj: object) -> np.ndarray | None:
    """``obj`` as a numpy array if it is one (or a torch tensor), else None."""
    if isinstance(obj, np.ndarray):
        return obj
    if isinstance(obj, _TensorLike):
        return np.asarray(obj.detach().cpu().numpy())
    return None


def _update_array(digest: hashlib._Hash, array: np.ndarray) -> None:
    """Feed shape, dtype and C-ordered bytes: equal bytes in another shape are another input."""
    contiguous = np.ascontiguousarray(array)
    digest.update(f"{contiguous.shape}|{contiguous.dtype.str}\0".encode())
    digest.update(contiguous.tobytes())


@dataclass(frozen=True, eq=False)
class CachedFeatures:
    """One item's frozen features.

    Attributes:
        pooled: ``(D,)`` the encoder's pooled vector (not normalised, as the encoder gave it).
        tokens: ``(T, D)`` the item's real tokens only (padding removed).
    """

    pooled: np.ndarray
    tokens: np.ndarray


@dataclass
class CacheStats:
    """Counts since the cache object was made: items served from disk vs. encoded."""

    hits: int = 0
    misses: int = 0


class FeatureCache:
    """Frozen encoder outputs on disk, keyed by (``encoder.id``, content key).

    Args:
        root: The cache folder; None means :func:`default_feature_root`
            (``$GEOSOUND_CACHE/features``, default ``~/.cache/geosound/features``).
        encoder: The encoder whose outputs are cached. Its weights load only when something
            has to be encoded, so a fully warm cache never loads a network.

    Example::

        cache = FeatureCache(None, get_encoder("minilm-l6"))
        features = cache.encode(["rain falling", "wind blowing"])
        features[0].pooled.shape  # (384,)
    """

    def __init__(self, root: Path | str | None, encoder: Encoder) -> None:
        self.root = Path(root).expanduser() if root is not None else default_feature_root()
        self.encoder = encoder
        self.folder = self.root / _UNSAFE.sub("_", encoder.id)
        self.stats = CacheStats()

    def key(self, item: object) -> str:
        """The content key of one item as this cache sees it.

        For a non-text encoder a ``str`` item is a file path (that is what the audio and image
        encoders accept), so it is keyed by the file's bytes; for a text encoder it is text.
        """
        if isinstance(item, str) and self.encoder.modality != "text":
            return content_key(Path(item))
        return content_key(item)

    def path_for(self, key: str) -> Path:
        """Where the entry of ``key`` lives (it may not exist)."""
        if not re.fullmatch(r"[0-9a-f]{8,128}", key):
            raise InputError(f"not a content key (lowercase hex expected): {key!r}")
        return self.folder / key[:2] / f"{key}.npz"

    def get(self, key: str) -> CachedFeatures | None:
        """The cached features of ``key``, or None when absent or unreadable."""
        path = self.path_for(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as entry:
                if str(entry["format"]) != _FORMAT or str(entry["encoder"]) != self.encoder.id:
                    return None
                return CachedFeatures(pooled=entry["pooled"], tokens=entry["tokens"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None  # a damaged entry costs a recomputation, never a crash

    def put(self, key: str, features: CachedFeatures) -> Path:
        """Store one entry atomically and return its path."""
        path = self.path_for(key)
        with atomic_path(path) as tmp, tmp.open("wb") as handle:
            # A handle, not a name: np.savez would append ".npz" to the temporary name.
            np.savez(
                handle,
                pooled=np.asarray(features.pooled),
                tokens=np.asarray(features.tokens),
                encoder=np.array(self.encoder.id),
                format=np.array(_FORMAT),
            )
        return path

    def encode(
        self,
        items: Sequence[Item],
        keys: Sequence[str] | None = None,
        progress: Progress | None = None,
        prepare: Callable[[Item], object] | None = None,
    ) -> list[CachedFeatures]:
        """Features of every item, encoding only those not cached yet.

        Args:
            items: Inputs of the encoder's modality (or, with ``prepare``, what ``prepare``
                turns into such inputs — e.g. audio file paths that ``prepare`` loads).
            keys: Content keys to use instead of :meth:`key` of each item — for items whose
                identity is defined elsewhere (a rendered mix keyed by its recipe).
            progress: ``callback(fraction, message)`` called after each encoded batch.
            prepare: Applied to each *missing* item just before encoding, so that a warm
                cache never loads a file (e.g. ``lambda p: load_audio(p)`` for an encoder
                that takes Clips). A worker thread prepares the next batch while the
                encoder runs on this one, so it must be thread-safe.

        Returns:
            One :class:`CachedFeatures` per item, in input order. Items with equal keys are
            encoded once.

        Raises:
            InputError: ``keys`` has the wrong length, or an item cannot be keyed.
        """
        if keys is not None and len(keys) != len(items):
            raise InputError(f"got {len(keys)} keys for {len(items)} items")
        all_keys = list(keys) if keys is not None else [self.key(item) for item in items]
        found: dict[str, CachedFeatures] = {}
        missing: dict[str, Item] = {}
        for key, item in zip(all_keys, items, strict=True):
            if key in found or key in missing:
                continue
            cached = self.get(key)
            if cached is None:
                missing[key] = item
            else:
                found[key] = cached
        n_missing = sum(key in missing for key in all_keys)
        self.stats.misses += n_missing
        self.stats.hits += len(all_keys) - n_missing

        pending = list(missing.items())
        batch_size = max(1, int(self.encoder.batch_size))
        batches = [
            pending[start : start + batch_size] for start in range(0, len(pending), batch_size)
        ]

        def prepared(batch: list[tuple[str, Item]]) -> list[object]:
            return [prepare(item) if prepare else item for _, item in batch]

        # The next batch is prepared (files decoded) by a worker thread while this one encodes.
        inputs_ahead = prefetch_map(prepared, batches, workers=1 if prepare else 0, ahead=1)
        done = 0
        for batch, inputs in zip(batches, inputs_ahead, strict=True):
            encoding = self.encoder.encode(inputs)
            pooled = encoding.pooled.detach().cpu().numpy()
            tokens = encoding.tokens.detach().cpu().numpy()
            mask = encoding.mask.detach().cpu().numpy().astype(bool)
            for row, (key, _) in enumerate(batch):
                features = CachedFeatures(
                    pooled=np.ascontiguousarray(pooled[row]),
                    tokens=np.ascontiguousarray(tokens[row][mask[row]]),
                )
                self.put(key, features)
                found[key] = features
            done += len(batch)
            if progress is not None:
                progress(
                    done / len(pending), f"encoded {done}/{len(pending)} with {self.encoder.id}"
                )
        return [found[key] for key in all_keys]

    def encode_pooled(
        self,
        items: Sequence[Item],
        keys: Sequence[str] | None = None,
        progress: Progress | None = None,
        prepare: Callable[[Item], object] | None = None,
    ) -> np.ndarray:
        """Like :meth:`encode`, but only the pooled vectors, stacked ``(N, D)``."""
        features = self.encode(items, keys=keys, progress=progress, prepare=prepare)
        if not features:
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        return np.stack([f.pooled for f in features])
