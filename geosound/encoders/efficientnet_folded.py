"""EfficientNet-Lite0 rebuilt for inference: batch norm folded into the convolutions.

The wheel's network (``efficientnet_lite_pytorch``) is written for training: every convolution
is followed by a separate batch-norm layer, and every convolution pads its input with
``F.pad`` before calling ``conv2d`` (TensorFlow's "same" padding, computed per call). Profiled
at batch 64 on 64 px tiles, batch norm and the pads' copies took about a quarter of the time
(``benchmarks/bench_map.py`` prints the table). Here each convolution carries its batch norm
as a scale on its weights and a bias; stride-1 convolutions, whose "same" padding is
symmetric, let ``conv2d`` pad; only the five stride-2 ones keep an explicit (asymmetric) pad.
In channels-last memory format oneDNN then runs each convolution with its bias in one call.

Folding changes rounding only: the features match the wheel's to about 3e-5 in absolute value
on features of magnitude up to 6 (``tests/test_image_encoder_backends.py`` holds it to 1e-4).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def fold_batch_norm(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> nn.Conv2d:
    """One convolution that computes ``norm(conv(x))`` in eval mode, padding left to the caller.

    Stride-1 convolutions get ``conv2d``'s own symmetric padding of ``(k - 1) / 2`` (what
    "same" padding is for an odd kernel at stride 1); others get none (see :class:`SamePad`).
    """
    if norm.running_mean is None or norm.running_var is None:
        raise ValueError("batch norm without running statistics cannot be folded")
    scale = norm.weight.detach() / torch.sqrt(norm.running_var + norm.eps)
    bias = norm.bias.detach() - norm.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias.detach() * scale
    kernel, stride = conv.kernel_size[0], conv.stride[0]
    folded = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        kernel,
        stride,
        padding=(kernel - 1) // 2 if stride == 1 else 0,
        groups=conv.groups,
        bias=True,
    )
    folded.weight = nn.Parameter(conv.weight.detach() * scale.view(-1, 1, 1, 1), False)
    folded.bias = nn.Parameter(bias, requires_grad=False)
    return folded


class SamePad(nn.Module):
    """TensorFlow "same" padding before a strided convolution (extra pixel right and bottom).

    Computed from the input's size on each call, as the wheel does, so any tile size works;
    an ONNX export traced at one size records that size's pads (the export is keyed by it).
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv
        self.kernel = conv.kernel_size[0]
        self.stride = conv.stride[0]

    def _pads(self, size: int) -> tuple[int, int]:
        total = max((math.ceil(size / self.stride) - 1) * self.stride + self.kernel - size, 0)
        return total // 2, total - total // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pad ``x`` as TensorFlow would for this kernel and stride, then convolve."""
        top, bottom = self._pads(int(x.shape[-2]))
        left, right = self._pads(int(x.shape[-1]))
        return self.conv(F.pad(x, [left, right, top, bottom]))


def _same(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> nn.Module:
    folded = fold_batch_norm(conv, norm)
    return SamePad(folded) if folded.stride[0] > 1 else folded


class FoldedBlock(nn.Module):
    """One MBConv block (expand 1×1, depthwise k×k, project 1×1, skip) with folded norms."""

    def __init__(self, block: Any) -> None:
        super().__init__()
        args = block._block_args
        if block.has_se:
            raise ValueError("squeeze-and-excitation blocks are not folded (Lite models have none)")
        self.expand = _same(block._expand_conv, block._bn0) if args.expand_ratio != 1 else None
        self.depthwise = _same(block._depthwise_conv, block._bn1)
        self.project = fold_batch_norm(block._project_conv, block._bn2)
        # The wheel's own test, word for word, so the same blocks add their input back.
        self.skip = bool(
            args.id_skip and args.stride == 1 and args.input_filters == args.output_filters
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output, the wheel's ``MBConvBlock.forward`` in eval mode."""
        y = x if self.expand is None else F.relu6(self.expand(x))
        y = self.project(F.relu6(self.depthwise(y)))
        return y + x if self.skip else y


class FoldedEfficientNet(nn.Module):
    """The wheel's ``extract_features`` (stem, blocks, head, ReLU6) with batch norm folded.

    Args:
        model: A loaded ``efficientnet_lite_pytorch.EfficientNet`` with ReLU6 activations.

    Input ``(B, 3, H, W)`` normalised RGB; output the last feature map ``(B, 1280, h, w)``.
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        if model._global_params.relu_fn != "relu6":
            raise ValueError("only ReLU6 (Lite) EfficientNets are folded")
        self.stem = _same(model._conv_stem, model._bn0)
        self.blocks = nn.Sequential(*(FoldedBlock(block) for block in model._blocks))
        self.head = fold_batch_norm(model._conv_head, model._bn1)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map, as the wheel's ``extract_features`` gives it."""
        x = F.relu6(self.stem(x))
        return F.relu6(self.head(self.blocks(x)))
