"""A training-free stand-in for text ↔ image alignment: the ImageNet-label bridge.

Until trained Sat2Sound heads exist, an image tile and a text query have no shared space. This
bridge makes one out of what the frozen encoders already know: the image encoder's ImageNet
classifier gives each tile a probability over 1000 class names, and the tile's "text
embedding" is the probability-weighted mean of the text encoder's embeddings of those names.
A sound query is then compared with that by cosine similarity.

It is weak on purpose-built land-cover tasks (dev EuroSAT mean ROC-AUC 0.63 against a 0.50
null, BASELINES.md) and it is labelled a stand-in wherever its output appears.

The 1000 class names come from the list laion-clap (a pinned dependency) ships for its
ImageNet zero-shot script; it is read as data, without importing laion-clap, whose import
pulls torchvision.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from geosound.encoders.base import Encoder
from geosound.errors import EncoderError

STAND_IN_NOTE = (
    "stand-in alignment: ImageNet-label bridge (training-free; image classes → text), "
    "not trained Sat2Sound heads"
)
LABEL_TEMPLATE = "a satellite photo of {}"


@lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet class names, in the classifier's output order."""
    spec = importlib.util.find_spec("laion_clap")
    if spec is None or spec.origin is None:
        raise EncoderError("laion-clap is not installed; run `make install`")
    path = Path(spec.origin).parent / "training" / "imagenet_zeroshot_data.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "imagenet_classnames" for t in node.targets
        ):
            names = tuple(ast.literal_eval(node.value))
            if len(names) != 1000:
                raise EncoderError(f"expected 1000 ImageNet class names, found {len(names)}", path)
            return names
    raise EncoderError("no imagenet_classnames list found", path)


class ImageNetTextBridge:
    """Maps image features and text queries into the text encoder's space.

    Args:
        image_encoder: An encoder with an ``imagenet_logits(pooled)`` method
            (EfficientNet-Lite0).
        text_encoder: Any text encoder.
        temperature: Softmax temperature on the ImageNet logits; above 1 spreads the weight
            over more class names, which makes the tile embedding less brittle.
    """

    def __init__(self, image_encoder: Encoder, text_encoder: Encoder, temperature: float = 2.0):
        if not hasattr(image_encoder, "imagenet_logits"):
            raise EncoderError(f"{image_encoder.name} has no ImageNet classifier to bridge with")
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.temperature = temperature
        self._label_embeddings: torch.Tensor | None = None

    @property
    def space_id(self) -> str:
        """Identifies the bridge and both encoders, for sidecars."""
        return (
            f"imagenet-bridge(T={self.temperature})[{self.image_encoder.id}|{self.text_encoder.id}]"
        )

    @property
    def label_embeddings(self) -> torch.Tensor:
        """(1000, D) normalised text embeddings of the class names, computed once."""
        if self._label_embeddings is None:
            prompts = [LABEL_TEMPLATE.format(name) for name in imagenet_class_names()]
            self._label_embeddings = F.normalize(self.text_encoder.encode(prompts).pooled, dim=-1)
        return self._label_embeddings

    @property
    def dim(self) -> int:
        """Width of the space (the text encoder's)."""
        return self.text_encoder.dim

    @property
    def note(self) -> str:
        """What every product made with the bridge must say about it."""
        return STAND_IN_NOTE

    def embed_rgb(self, images: np.ndarray) -> np.ndarray:
        """RGB images (N, 3, H, W) in [0, 1] → (N, text_dim) unit vectors."""
        pooled = self.image_encoder.encode(images).pooled
        probs = torch.softmax(self.image_encoder.imagenet_logits(pooled) / self.temperature, dim=-1)
        return F.normalize(probs @ self.label_embeddings, dim=-1).numpy()

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Text queries → (Q, text_dim) unit vectors."""
        return F.normalize(self.text_encoder.encode(list(texts)).pooled, dim=-1).numpy()
