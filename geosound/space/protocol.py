"""What every embedding space offers: images and texts in, comparable unit vectors out.

Maps, evaluations and (later) the generator only need this much of a space, so they depend
on the protocol, not on how a space is made: the trained Sat2Sound space
(:class:`~geosound.space.shared.SharedSpace`) and the training-free ImageNet-label bridge
(:class:`~geosound.space.imagenet_bridge.ImageNetTextBridge`) both satisfy it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from geosound.models import ModalityOutput


@runtime_checkable
class EmbeddingSpace(Protocol):
    """Images and texts embedded into one cosine space, with an id that keys every cache."""

    @property
    def space_id(self) -> str:
        """Identifies the space: vectors with different ids must never be compared."""
        ...

    @property
    def note(self) -> str:
        """What products made in this space must say about the model behind it."""
        ...

    @property
    def dim(self) -> int:
        """Width of the space."""
        ...

    def embed_rgb(self, images: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) RGB in [0, 1] → (N, D) unit vectors."""
        ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Q texts → (Q, D) unit vectors."""
        ...


@runtime_checkable
class ConceptSpace(EmbeddingSpace, Protocol):
    """A space whose image side can also say which codebook concepts a tile and its cells hold."""

    @property
    def has_concepts(self) -> bool:
        """Whether :meth:`embed_images` gives concept weights (False for a no-codebook model)."""
        ...

    def embed_images(self, images: np.ndarray) -> ModalityOutput:
        """(N, 3, H, W) RGB in [0, 1] → embeddings, concept weights and per-token scores."""
        ...

    def tokens_per_image(self, tile_size: int) -> int:
        """How many image tokens (sub-tile cells) a square tile of ``tile_size`` pixels gives."""
        ...
