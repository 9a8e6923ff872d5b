"""The latent space of SounDiT: a KL autoencoder between RGB tiles and small latent grids.

SounDiT (METHODS.md §2) denoises in the latent space of a VAE, as latent diffusion does. The
reference uses Stable Diffusion's VAE (83 M parameters, 8× down-sampling); our tiles are
64×64 EuroSAT patches, for which a 4× down-sampling to a ``16×16×4`` grid keeps the field
boundaries and roads a 10-m pixel can show, and a model of about 1 M parameters trains on a
CPU in minutes. Both are diffusers' :class:`~diffusers.AutoencoderKL`: ours is a small config
of it, and a user with a Stable-Diffusion-style VAE folder loads that with
:func:`load_pretrained_autoencoder` — nothing else changes, because every caller goes
through :class:`LatentCodec`.

Scaling: diffusion assumes latents of about unit variance. Stable Diffusion ships a fixed
``scaling_factor`` (0.18215) measured on its training data; ours is measured the same way,
``1 / std`` of the posterior means of the training tiles, after the autoencoder is trained
(:func:`measure_scaling_factor`), and stored in the checkpoint.

Measured (tiny preset, seed 0; ``tests/test_soundit.py`` checks the shapes): 954,567
parameters; encode + decode of a batch of 16 64×64 tiles is well under a second on this CPU.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from torch import Tensor, nn

from geosound.config import check_known_fields
from geosound.errors import InputError


@dataclass
class AutoencoderConfig:
    """A small :class:`~diffusers.AutoencoderKL`; round-trips through plain dicts.

    Attributes:
        image_size: Edge of the square RGB tiles in pixels.
        latent_channels: Channels of the latent grid.
        block_out_channels: Widths of the encoder's blocks; every block but the last halves
            the grid, so ``n`` blocks down-sample by ``2 ** (n - 1)``.
        layers_per_block: ResNet layers per block.
        norm_num_groups: GroupNorm groups (must divide every width).
        kl_weight: Weight of the KL term in training (Stable Diffusion uses 1e-6: the latent
            must stay informative, the KL only keeps its scale in check).
    """

    image_size: int = 64
    latent_channels: int = 4
    block_out_channels: list[int] = field(default_factory=lambda: [32, 64, 64])
    layers_per_block: int = 1
    norm_num_groups: int = 16
    kl_weight: float = 1e-6

    def __post_init__(self) -> None:
        self.block_out_channels = [int(width) for width in self.block_out_channels]
        if not self.block_out_channels:
            raise ValueError("block_out_channels must not be empty")
        if any(width % self.norm_num_groups for width in self.block_out_channels):
            raise ValueError(
                f"norm_num_groups ({self.norm_num_groups}) must divide every block width "
                f"({self.block_out_channels})"
            )
        if self.image_size % self.downsampling:
            raise ValueError(
                f"image_size {self.image_size} is not a multiple of {self.downsampling}"
            )

    @property
    def downsampling(self) -> int:
        """How many pixels one latent cell covers along each axis."""
        return int(2 ** (len(self.block_out_channels) - 1))

    @property
    def latent_size(self) -> int:
        """Edge of the latent grid."""
        return self.image_size // self.downsampling

    def to_dict(self) -> dict[str, Any]:
        """Plain builtins, for checkpoints."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AutoencoderConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (a typo must not pass)."""
        check_known_fields(cls, data, "AutoencoderConfig keys")
        return cls(**dict(data))


AUTOENCODER_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"block_out_channels": [32, 64, 64], "layers_per_block": 1},
    "small": {"block_out_channels": [64, 128, 128], "layers_per_block": 2, "norm_num_groups": 32},
}
"""``tiny`` trains on a CPU in minutes; ``small`` (about 4× the compute) is for a GPU."""


def autoencoder_config(preset: str = "tiny", **overrides: Any) -> AutoencoderConfig:
    """The config of a named preset with fields overridden.

    Raises:
        ValueError: Unknown preset or field.
    """
    if preset not in AUTOENCODER_PRESETS:
        raise ValueError(
            f"unknown autoencoder preset {preset!r}; presets: {', '.join(AUTOENCODER_PRESETS)}"
        )
    return AutoencoderConfig.from_dict({**AUTOENCODER_PRESETS[preset], **overrides})


def build_autoencoder(config: AutoencoderConfig) -> AutoencoderKL:
    """A freshly initialised :class:`~diffusers.AutoencoderKL` of this config."""
    blocks = len(config.block_out_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * blocks,
        up_block_types=("UpDecoderBlock2D",) * blocks,
        block_out_channels=tuple(config.block_out_channels),
        layers_per_block=config.layers_per_block,
        latent_channels=config.latent_channels,
        norm_num_groups=config.norm_num_groups,
        sample_size=config.image_size,
    )


class LatentCodec(nn.Module):
    """RGB images in [0, 1] ↔ scaled latents, whichever autoencoder is inside.

    Args:
        vae: The autoencoder (ours or a loaded Stable-Diffusion-style one).
        scaling_factor: Multiplies the posterior so latents have about unit variance.
        config: Our config, or None for a loaded foreign VAE.
        source: Where the VAE came from (``"geosound"`` or the folder it was loaded from).
    """

    def __init__(
        self,
        vae: AutoencoderKL,
        scaling_factor: float = 1.0,
        config: AutoencoderConfig | None = None,
        source: str = "geosound",
    ) -> None:
        super().__init__()
        self.vae = vae
        self.scaling_factor = float(scaling_factor)
        self.config = config
        self.source = source

    @property
    def latent_channels(self) -> int:
        """Channels of the latent grid."""
        return int(self.vae.config["latent_channels"])

    @property
    def downsampling(self) -> int:
        """Pixels per latent cell along each axis."""
        return int(2 ** (len(self.vae.config["block_out_channels"]) - 1))

    def posterior(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Unscaled posterior ``(mean, std)`` of images ``(B, 3, H, W)`` in [0, 1]."""
        distribution = self.vae.encode(images * 2.0 - 1.0).latent_dist
        return distribution.mean, distribution.std

    def encode(self, images: Tensor, sample: bool = False) -> Tensor:
        """Scaled latents of images in [0, 1]: the posterior mean, or a sample of it."""
        mean, std = self.posterior(images)
        latents = mean + std * torch.randn_like(mean) if sample else mean
        return latents * self.scaling_factor

    def decode(self, latents: Tensor) -> Tensor:
        """Images ``(B, 3, H, W)`` in [0, 1] of scaled latents."""
        decoded = self.vae.decode(latents / self.scaling_factor).sample
        return ((decoded + 1.0) / 2.0).clamp(0.0, 1.0)

    def forward(self, images: Tensor) -> Tensor:
        """Reconstruct images (through the posterior mean)."""
        return self.decode(self.encode(images))

    def state(self) -> dict[str, Any]:
        """Tensors and builtins only, for a ``weights_only`` checkpoint (ours only)."""
        if self.config is None:
            raise ValueError(
                f"a VAE loaded from {self.source} is not stored in geosound checkpoints; "
                "keep its folder and load it again with load_pretrained_autoencoder"
            )
        return {
            "config": self.config.to_dict(),
            "scaling_factor": self.scaling_factor,
            "state_dict": {k: v.detach().cpu() for k, v in self.vae.state_dict().items()},
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> LatentCodec:
        """Inverse of :meth:`state`.

        Raises:
            ValueError: The state does not match its config.
        """
        config = AutoencoderConfig.from_dict(state["config"])
        vae = build_autoencoder(config)
        vae.load_state_dict(state["state_dict"])
        return cls(vae.eval(), float(state["scaling_factor"]), config)


def load_pretrained_autoencoder(path: str | os.PathLike[str]) -> LatentCodec:
    """A Stable-Diffusion-style ``AutoencoderKL`` from a local folder, never the network.

    The folder is what ``AutoencoderKL.save_pretrained`` writes (``config.json`` and the
    weights), e.g. the ``vae/`` folder of a downloaded Stable Diffusion; its own
    ``scaling_factor`` is used (0.18215 for SD 1.x).

    Raises:
        InputError: The folder is missing or holds no loadable ``AutoencoderKL``.
    """
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise InputError("not an AutoencoderKL folder (no config.json)", folder)
    try:
        vae = AutoencoderKL.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, RuntimeError, KeyError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"cannot load an AutoencoderKL ({reason})", folder) from None
    scaling = float(getattr(vae.config, "scaling_factor", 1.0) or 1.0)
    return LatentCodec(vae.eval(), scaling, None, str(folder))


@torch.no_grad()
def measure_scaling_factor(codec: LatentCodec, batches: Iterable[Tensor]) -> float:
    """``1 / std`` of the unscaled posterior means over images in [0, 1] (as SD measured it)."""
    total, total_sq, count = 0.0, 0.0, 0
    for images in batches:
        mean, _ = codec.posterior(images)
        total += float(mean.sum())
        total_sq += float((mean.double() ** 2).sum())
        count += mean.numel()
    if count == 0:
        raise ValueError("no images to measure the latent scale on")
    variance = total_sq / count - (total / count) ** 2
    return 1.0 / max(variance, 1e-12) ** 0.5


@torch.no_grad()
def reconstruction_metrics(
    codec: LatentCodec, images: Tensor, batch_size: int = 64
) -> dict[str, float]:
    """PSNR (dB) and SSIM of reconstructions of images ``(N, 3, H, W)`` in [0, 1].

    Computed by torchmetrics over the whole set (data range 1), through the posterior mean —
    what generation decodes from.
    """
    from torchmetrics.functional.image import (
        peak_signal_noise_ratio,
        structural_similarity_index_measure,
    )

    codec.eval()
    outputs = torch.cat(
        [codec(images[start : start + batch_size]) for start in range(0, len(images), batch_size)]
    )
    psnr = peak_signal_noise_ratio(outputs, images, data_range=1.0)
    ssim = structural_similarity_index_measure(outputs, images, data_range=1.0)
    assert isinstance(ssim, torch.Tensor)  # the (value, map) pair only with return_full_image
    return {"psnr_db": round(float(psnr), 3), "ssim": round(float(ssim), 4)}
