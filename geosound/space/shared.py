"""Sat2Sound's shared space as a service: raw inputs in, unit vectors out.

A trained checkpoint names the frozen encoders its heads were trained on; this class rebuilds
those encoders, runs them (through the feature cache for recordings, whose encoding is the
slow part) and applies the model's heads. Every vector it returns lives in one space, whose id
— ``sat2sound:<model id>`` — is what audio banks and region caches record and check.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from geosound.data.feature_cache import FeatureCache
from geosound.encoders import Encoder, pad_tokens
from geosound.encoders.base import encoder_from_id
from geosound.models import ModalityOutput
from geosound.models.checkpoint import LoadedModel, load_checkpoint
from geosound.models.default import load_default_model
from geosound.progress import Progress


class SharedSpace:
    """Embed images, recordings and text with a trained Sat2Sound model.

    Args:
        loaded: A loaded checkpoint (see :func:`geosound.models.checkpoint.load_checkpoint`).
        cache_root: Feature cache for recordings (default: the user cache).
    """

    def __init__(self, loaded: LoadedModel, cache_root: Path | None = None) -> None:
        self.loaded = loaded
        self.model = loaded.model.eval()
        self.encoders: dict[str, Encoder] = {
            modality: encoder_from_id(encoder_id)
            for modality, encoder_id in loaded.encoders.items()
        }
        self._audio_cache = FeatureCache(cache_root, self.encoders["audio"])

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str] | None = None) -> SharedSpace:
        """The space of a checkpoint file, or of the shipped model when ``path`` is None."""
        return cls(load_checkpoint(path) if path else load_default_model())

    @property
    def space_id(self) -> str:
        """Identifies the space: vectors with different ids must never be compared."""
        return f"sat2sound:{self.loaded.model_id}"

    @property
    def dim(self) -> int:
        """Width of the shared space."""
        return self.model.config.embed_dim

    @property
    def has_concepts(self) -> bool:
        """Whether the model has a concept codebook (the no-codebook ablation has none)."""
        return bool(self.model.config.use_codebook)

    @property
    def logit_scale(self) -> float:
        """The model's learned inverse temperature: cosine × scale gives its logits."""
        return float(self.model.clamped_logit_scale().detach())

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(N, D) unit vectors of text queries ("birds chirping in trees")."""
        encoding = self.encoders["text"].encode(list(texts))
        with torch.inference_mode():
            return self.model.encode_text(encoding.tokens, encoding.mask).embedding.numpy()

    def embed_recordings(
        self, recordings: Sequence[object], progress: Progress | None = None
    ) -> np.ndarray:
        """(N, D) unit vectors of recordings: file paths, or ``Clip`` objects.

        ``progress`` hears of each batch the audio encoder runs (cached recordings cost none).
        """
        from geosound.audio import load_audio

        features = self._audio_cache.encode(
            list(recordings),
            progress=progress,
            prepare=lambda item: (
                load_audio(item, sample_rate=None) if isinstance(item, str | os.PathLike) else item
            ),
        )
        tokens, mask = pad_tokens([torch.from_numpy(f.tokens) for f in features])
        with torch.inference_mode():
            return self.model.encode_audio(tokens, mask).embedding.numpy()

    @property
    def note(self) -> str:
        """What products made in this space should say about the model behind them."""
        data = self.loaded.info.get("data", {}).get("source", "unknown data")
        return f"Sat2Sound {self.loaded.model_id}, trained on {data}"

    def embed_rgb(self, images: np.ndarray) -> np.ndarray:
        """(N, D) unit vectors of RGB images (N, 3, H, W) in [0, 1]."""
        return self.embed_images(images).embedding.numpy()

    def embed_images(
        self, images: np.ndarray, metadata: torch.Tensor | None = None
    ) -> ModalityOutput:
        """Images (N, 3, H, W) RGB in [0, 1] → embeddings, concept weights and token scores.

        ``metadata`` (``(N, 10)`` rows of :func:`~geosound.models.metadata_features`: the
        places' lon/lat, month, hour) is fused where the model was trained with it.
        """
        queries, mask = self.project_images(images)
        return self.fuse_images(queries, mask, metadata)

    @property
    def has_metadata(self) -> bool:
        """Whether the model was trained to take location and time (``use_metadata``)."""
        return self.model.metadata_fusion is not None

    def project_images(self, images: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The image side up to the metadata fusion: ``(N, T, D)`` projected tokens, mask.

        Everything slow (the image encoder) happens here, once per place; the same place at
        another hour is only :meth:`fuse_images` again.
        """
        encoding = self.encoders["image"].encode(images)
        with torch.inference_mode():
            return self.model.project_image(encoding.tokens, encoding.mask)

    def fuse_images(
        self, queries: torch.Tensor, mask: torch.Tensor, metadata: torch.Tensor | None = None
    ) -> ModalityOutput:
        """Projected image tokens (and metadata, if the model takes it) → the shared space.

        A model without metadata fusion has one path and ignores ``metadata``; callers that
        take ``--hour``/``--month`` refuse such a model first (:func:`time_metadata`).
        """
        with torch.inference_mode():
            return self.model.encode_projected(queries, mask, metadata)

    def tokens_per_image(self, tile_size: int) -> int:
        """How many image tokens a tile of this size gives (one dry forward pass)."""
        dummy = np.zeros((1, 3, tile_size, tile_size), np.float32)
        return int(self.encoders["image"].encode(dummy).tokens.shape[1])


@lru_cache(maxsize=4)
def load_shared_space(checkpoint: str | None = None) -> SharedSpace:
    """One :class:`SharedSpace` per process and checkpoint path (None: the shipped model).

    Loading rebuilds the encoders, which takes seconds; a Dask worker that computes many chunks
    of a region, or a CLI call that maps and then queries, loads it once.
    """
    return SharedSpace.from_checkpoint(checkpoint)
