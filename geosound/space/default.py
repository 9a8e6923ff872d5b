"""The space a product uses when the caller names none."""

from __future__ import annotations

import os

from geosound.config import assets_dir
from geosound.encoders import DEFAULT_ENCODERS, get_encoder
from geosound.models.default import DEFAULT_CHECKPOINT
from geosound.space.protocol import EmbeddingSpace


def default_space(checkpoint: str | os.PathLike[str] | None = None) -> EmbeddingSpace:
    """The trained Sat2Sound space (a given checkpoint, else the shipped one), or the stand-in.

    The stand-in (the ImageNet-label bridge, which says so in every product) is used only when
    no checkpoint is given and none ships with the package.
    """
    from geosound.space.imagenet_bridge import ImageNetTextBridge
    from geosound.space.shared import SharedSpace

    if checkpoint is not None or (assets_dir() / DEFAULT_CHECKPOINT).is_file():
        return SharedSpace.from_checkpoint(checkpoint)
    return ImageNetTextBridge(
        get_encoder(DEFAULT_ENCODERS["image"]), get_encoder(DEFAULT_ENCODERS["text"])
    )
