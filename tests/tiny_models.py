"""Tiny random models the tests save and load as users' checkpoints (plumbing, not quality)."""

from __future__ import annotations

from pathlib import Path


def save_tiny_generator(
    path: Path,
    space: str,
    sound_dim: int,
    aligner_dim: int | None = None,
    scenes: tuple[str, ...] = ("forest", "river"),
    seed: int = 0,
) -> str:
    """A tiny random generator checkpoint at ``path``; returns its model id.

    SounDiT (``hidden 32``, one block, 8×8 latents of a 32-px autoencoder) hearing ``space``,
    with ``sound_dim``-wide conditions. ``aligner_dim``: a Sound2Scene generator instead,
    carrying an aiSFX (512) → ``aligner_dim`` aligner, so ``sound_dim`` should equal it.
    """
    import torch

    from geosound.models.aligner import AlignerConfig, AudioAligner
    from geosound.models.autoencoder import AutoencoderConfig, LatentCodec, build_autoencoder
    from geosound.models.soundit import build_soundit
    from geosound.models.soundit_checkpoint import save_generator

    torch.manual_seed(seed)
    model = build_soundit("tiny", hidden_dim=32, depth=1, heads=4, sound_dim=sound_dim,
                          scene_dim=8, latent_size=8, num_experts=2)  # fmt: skip
    config = AutoencoderConfig(image_size=32, block_out_channels=[16, 16, 16], norm_num_groups=8)
    codec = LatentCodec(build_autoencoder(config).eval(), 1.0, config)
    aligner = (
        None
        if aligner_dim is None
        else AudioAligner(AlignerConfig(audio_dim=512, visual_dim=aligner_dim, hidden_dim=32))
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    encoders = {"audio": "aisfx@1", "image": "efficientnet-lite0@1", "text": "minilm-l6@1"}
    return save_generator(path, model, codec, space, encoders,
                          {word: torch.randn(8) for word in scenes}, aligner=aligner)  # fmt: skip
