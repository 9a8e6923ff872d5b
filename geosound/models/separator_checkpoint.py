"""Separator checkpoints: the AV-GAS model and the classes it names sources by, in one safe file.

Like every geosound checkpoint (:func:`~geosound.models.checkpoint.read_payload`), it holds
only tensors and builtins and loads with ``torch.load(weights_only=True)``. It records the
audio encoder whose tokens it reads and in whose pooled space its slots lie, and the Sat2Sound
model whose audio head lifts a slot into the shared space (for text, maps and the generator):
a separator means nothing beside other models, so loading it beside the wrong ones is refused
where it is used. It also carries *class prototypes* — the mean unit embedding of the training
clips of each class — the nearest of which names a source.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from geosound.atomic import atomic_path
from geosound.errors import InputError
from geosound.models.checkpoint import check_model_id, read_payload
from geosound.models.separator import SeparatorConfig, SourceSeparator

FORMAT = "geosound-separator"
FORMAT_VERSION = 1


@dataclass
class LoadedSeparator:
    """A separator (eval mode) and what its file says.

    Attributes:
        model: The separator.
        model_id: ``separator-<hash of its weights>``.
        audio_encoder: Id of the audio encoder whose tokens it reads; its slots are unit
            vectors in that encoder's pooled space.
        sat2sound_space: Space id (``sat2sound:<id>``) of the model whose audio head lifts
            slots into the shared space.
        classes: Names of the source classes it knows.
        prototypes: ``(C, D)`` unit class prototypes in the audio encoder's space.
        info: Provenance (training config, metrics, data); plain builtins.
    """

    model: SourceSeparator
    model_id: str
    audio_encoder: str
    sat2sound_space: str
    classes: list[str]
    prototypes: Tensor
    info: dict[str, Any]


def separator_fingerprint(model: SourceSeparator) -> str:
    """A short hash of the separator's weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def save_separator(
    path: str | os.PathLike[str],
    model: SourceSeparator,
    audio_encoder: str,
    sat2sound_space: str,
    classes: Sequence[str],
    prototypes: Tensor,
    info: Mapping[str, Any] | None = None,
) -> str:
    """Write a separator checkpoint atomically; returns its model id."""
    if len(classes) != len(prototypes):
        raise InputError(f"got {len(prototypes)} prototypes for {len(classes)} classes")
    model_id = f"separator-{separator_fingerprint(model)}"
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_id": model_id,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "audio_encoder": audio_encoder,
        "sat2sound_space": sat2sound_space,
        "classes": [str(name) for name in classes],
        "prototypes": torch.as_tensor(prototypes).float().cpu(),
        "info": dict(info or {}),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return model_id


def load_separator(path: str | os.PathLike[str]) -> LoadedSeparator:
    """Load a checkpoint written by :func:`save_separator` (``weights_only=True``).

    Raises:
        InputError: Missing, unreadable or foreign file, weights that do not match the
            config, or weights edited after saving (the recorded id no longer matches).
    """
    path = Path(path)
    payload = read_payload(path, FORMAT, FORMAT_VERSION, "separator")
    try:
        model = SourceSeparator(SeparatorConfig.from_dict(payload["config"]))
        model.load_state_dict(payload["state_dict"])
        classes = [str(name) for name in payload["classes"]]
        prototypes = torch.as_tensor(payload["prototypes"]).float()
        audio_encoder = str(payload["audio_encoder"])
        sat2sound_space = str(payload["sat2sound_space"])
    except (KeyError, ValueError, RuntimeError, TypeError) as error:
        raise InputError(f"checkpoint does not match its config ({error})", path) from None
    if prototypes.shape != (len(classes), model.config.out_dim):
        raise InputError(
            f"checkpoint has prototypes {tuple(prototypes.shape)} for {len(classes)} classes "
            f"of width {model.config.out_dim}",
            path,
        )
    actual = check_model_id(
        path, payload.get("model_id"), f"separator-{separator_fingerprint(model)}"
    )
    return LoadedSeparator(
        model.eval(),
        actual,
        audio_encoder,
        sat2sound_space,
        classes,
        prototypes,
        dict(payload["info"]),
    )


__all__ = ["LoadedSeparator", "load_separator", "save_separator", "separator_fingerprint"]
