"""SounDiT checkpoints: the denoiser, its autoencoder and its scene words in one safe file.

Like Sat2Sound's (:mod:`geosound.models.checkpoint`), a generator checkpoint holds only
tensors and builtins and loads with ``torch.load(weights_only=True)``. It records the
Sat2Sound model whose audio side made the sound tokens it was trained on: a generator hears
only through that model, so sampling refuses sound from another space.

A Sound2Scene generator (conditioned on the image encoder's embedding, METHODS.md §5) records
``visual:<image encoder id>`` as its space and carries its audio aligner in the same file:
the aligner is how it hears, so the two are one model with one id.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from geosound.atomic import atomic_path
from geosound.errors import InputError
from geosound.models.aligner import AlignerConfig, AudioAligner
from geosound.models.autoencoder import LatentCodec
from geosound.models.checkpoint import check_model_id, read_payload
from geosound.models.soundit import SounDiT, SounDiTConfig

FORMAT = "geosound-soundit"
FORMAT_VERSION = 1


CONDITIONS = ("sound", "visual")
"""What a generator can be conditioned on, which is how it hears a recording: ``sound``
(SounDiT, through Sat2Sound) or ``visual`` (Sound2Scene, through its audio aligner)."""


@dataclass
class LoadedGenerator:
    """A SounDiT model (EMA weights, eval mode), its latent codec and what the file says.

    Attributes:
        model: The denoiser.
        codec: The autoencoder its latents belong to.
        model_id: ``soundit-<hash of both models' weights>``.
        sound_space: Space id of the conditions it was trained on (``sat2sound:<id>``, or
            ``visual:<image encoder id>`` for a Sound2Scene generator).
        encoders: Encoder ids: ``audio`` (under the Sat2Sound heads) and ``text`` (scenes).
        scenes: Known scene words → pooled text embedding ``(scene_dim,)``.
        info: Provenance (training config, metrics, data); plain builtins.
        aligner: A Sound2Scene generator's audio aligner (None: it hears through Sat2Sound).
    """

    model: SounDiT
    codec: LatentCodec
    model_id: str
    sound_space: str
    encoders: dict[str, str]
    scenes: dict[str, Tensor]
    info: dict[str, Any]
    aligner: AudioAligner | None = None

    @property
    def via(self) -> str:
        """How it hears a recording: ``"sound"`` (Sat2Sound) or ``"visual"`` (its aligner)."""
        return CONDITIONS[self.aligner is not None]


def generator_fingerprint(
    model: SounDiT, codec: LatentCodec, aligner: AudioAligner | None = None
) -> str:
    """A short hash of the denoiser's, the autoencoder's (and the aligner's) weights."""
    digest = hashlib.sha256()
    states = {"dit.": model.state_dict(), "vae.": codec.vae.state_dict()}
    if aligner is not None:
        states["aligner."] = aligner.state_dict()
    for prefix, state in states.items():
        for name, tensor in sorted(state.items()):
            digest.update((prefix + name).encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(repr(codec.scaling_factor).encode())
    return digest.hexdigest()[:12]


def save_generator(
    path: str | os.PathLike[str],
    model: SounDiT,
    codec: LatentCodec,
    sound_space: str,
    encoders: Mapping[str, str],
    scenes: Mapping[str, Tensor],
    info: Mapping[str, Any] | None = None,
    aligner: AudioAligner | None = None,
) -> str:
    """Write a generator checkpoint atomically; returns its model id."""
    model_id = f"soundit-{generator_fingerprint(model, codec, aligner)}"
    words = sorted(scenes)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_id": model_id,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "autoencoder": codec.state(),
        "sound_space": sound_space,
        "encoders": dict(encoders),
        "scene_words": words,
        "scene_embeddings": torch.stack([torch.as_tensor(scenes[w]).float() for w in words])
        if words
        else torch.zeros(0, model.config.scene_dim),
        "info": dict(info or {}),
        "aligner": None
        if aligner is None
        else {
            "config": aligner.config.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in aligner.state_dict().items()},
        },
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return model_id


def load_generator(path: str | os.PathLike[str]) -> LoadedGenerator:
    """Load a checkpoint written by :func:`save_generator` (``weights_only=True``).

    Raises:
        InputError: Missing, unreadable or foreign file, weights that do not match the
            config, or weights edited after saving (the recorded id no longer matches).
    """
    path = Path(path)
    payload = read_payload(path, FORMAT, FORMAT_VERSION, "SounDiT")
    try:
        model = SounDiT(SounDiTConfig.from_dict(payload["config"]))
        model.load_state_dict(payload["state_dict"])
        codec = LatentCodec.from_state(payload["autoencoder"])
        aligner = _aligner(payload.get("aligner"))
    except (KeyError, ValueError, RuntimeError, TypeError) as error:
        raise InputError(f"checkpoint does not match its config ({error})", path) from None
    actual = check_model_id(
        path, payload.get("model_id"), f"soundit-{generator_fingerprint(model, codec, aligner)}"
    )
    scenes = dict(zip(payload["scene_words"], payload["scene_embeddings"], strict=True))
    return LoadedGenerator(
        model.eval(),
        codec.eval(),
        actual,
        str(payload["sound_space"]),
        dict(payload["encoders"]),
        scenes,
        dict(payload["info"]),
        aligner,
    )


def _aligner(saved: Mapping[str, Any] | None) -> AudioAligner | None:
    """The aligner a checkpoint carries (eval mode), or None."""
    if saved is None:
        return None
    aligner = AudioAligner(AlignerConfig.from_dict(saved["config"]))
    aligner.load_state_dict(saved["state_dict"])
    return aligner.eval()
