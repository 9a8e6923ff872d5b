"""Sat2Sound checkpoints: weights, config and provenance in one file that loads safely.

A checkpoint holds only tensors and plain builtins, so it loads with
``torch.load(weights_only=True)`` — no pickled code runs, whoever made the file. It records the
encoder ids the heads were trained on: a model is only meaningful on the features of those
encoders, and indexes and region caches check them against it.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from geosound.atomic import atomic_path
from geosound.errors import InputError
from geosound.models.sat2sound import Sat2Sound, Sat2SoundConfig

FORMAT = "geosound-sat2sound"
FORMAT_VERSION = 1


@dataclass
class LoadedModel:
    """A Sat2Sound model in eval mode and what its checkpoint says about it."""

    model: Sat2Sound
    model_id: str
    encoders: dict[str, str]
    info: dict[str, Any]


def model_fingerprint(model: Sat2Sound) -> str:
    """A short hash of the weights: two checkpoints with equal fingerprints are the same model."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def save_checkpoint(
    path: str | os.PathLike[str],
    model: Sat2Sound,
    encoders: dict[str, str],
    info: dict[str, Any] | None = None,
) -> str:
    """Write a checkpoint atomically; returns the model id recorded in it.

    Args:
        path: Destination ``.pt`` file.
        model: The trained model.
        encoders: Ids of the image, audio and text encoders whose features it was trained on.
        info: Provenance (training config, metrics, data); plain builtins only.
    """
    model_id = f"sat2sound-{model_fingerprint(model)}"
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_id": model_id,
        "config": model.config.to_dict(),
        "encoders": dict(encoders),
        "info": dict(info or {}),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return model_id


def load_checkpoint(path: str | os.PathLike[str]) -> LoadedModel:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    The model id is recomputed from the weights and must match the one recorded.

    Raises:
        InputError: Missing, corrupt or foreign file, or one whose weights no longer match
            its recorded model id; the message names it.
    """
    path = Path(path)
    payload = read_payload(path, FORMAT, FORMAT_VERSION, "Sat2Sound")
    try:
        model = Sat2Sound(Sat2SoundConfig.from_dict(payload["config"]))
        model.load_state_dict(payload["state_dict"])
    except (KeyError, ValueError, RuntimeError) as error:
        raise InputError(f"checkpoint does not match its model config ({error})", path) from None
    model_id = _checked_model_id(path, payload.get("model_id"), model)
    return LoadedModel(model.eval(), model_id, payload["encoders"], payload["info"])


def _checked_model_id(path: Path, stored: object, model: Sat2Sound) -> str:
    """The Sat2Sound model id recomputed from the weights (:func:`check_model_id`)."""
    return check_model_id(path, stored, f"sat2sound-{model_fingerprint(model)}")


def check_model_id(path: Path, stored: object, actual: str) -> str:
    """``actual`` (the id recomputed from the weights), which must be the one the file records.

    Caches, banks and maps are keyed by model ids; a checkpoint whose weights were edited by
    hand (or damaged) but kept its old id would pass as the model those were made with. Every
    checkpoint kind checks its id here.

    Raises:
        InputError: The recorded id is missing or differs from the weights' fingerprint.
    """
    if stored != actual:
        raise InputError(
            f"checkpoint records model id {stored!r} but its weights are {actual}: the file "
            "was changed after it was saved (edited or damaged; save it again)",
            path,
        )
    return actual


DEFAULT_TILE_M = 640.0
"""Tile ground size of checkpoints that do not record one: EuroSAT's 64 px at 10 m."""


@dataclass(frozen=True)
class CheckpointHeader:
    """What a checkpoint says about itself, read without building the model.

    Attributes:
        use_metadata: Whether the model was built to take location and time.
        tile_m: Ground size in metres of the tiles it was trained on (``info["tile_m"]``, or
            :data:`DEFAULT_TILE_M` for checkpoints from before it was recorded).
    """

    use_metadata: bool
    tile_m: float


def read_header(path: str | os.PathLike[str]) -> CheckpointHeader:
    """The config and provenance of a checkpoint, in milliseconds (memory-mapped, no model).

    Command lines check their options against the model (``--hour`` needs metadata, the
    default ``--tile-m`` is the model's) before anything slow loads; the weights are checked
    later by :func:`load_checkpoint`.

    Raises:
        InputError: The file is not a readable geosound checkpoint.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # as in load_checkpoint: any unreadable file is the user's input
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"not a readable checkpoint ({reason})", path) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError("not a geosound Sat2Sound checkpoint", path)
    info = payload.get("info") or {}
    return CheckpointHeader(
        use_metadata=bool((payload.get("config") or {}).get("use_metadata", False)),
        tile_m=trained_tile_m(info),
    )


def trained_tile_m(info: dict[str, Any]) -> float:
    """The tile ground size a checkpoint's ``info`` records, else :data:`DEFAULT_TILE_M`."""
    value = info.get("tile_m")
    return float(value) if isinstance(value, int | float) and value > 0 else DEFAULT_TILE_M


def read_payload(path: Path, form: str, version: int, kind: str) -> dict[str, Any]:
    """A geosound checkpoint's payload, read with ``weights_only=True`` and its header checked.

    Every geosound checkpoint kind (Sat2Sound, SounDiT) is a dict of tensors and builtins with
    a ``format`` name and ``format_version``; this is the one place that refuses anything else.

    Args:
        path: The file.
        form: The ``format`` the file must name.
        version: The ``format_version`` this geosound reads.
        kind: The model's name for messages ("Sat2Sound").

    Raises:
        InputError: Missing or unreadable file, a pickle that is not plain tensors, another
            format or version; the message names the file.
    """
    if not path.is_file():
        raise InputError(f"{kind} checkpoint not found", path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "weights only load failed" in reason.lower():  # torch's hint to unpickle: never
            reason = "not a plain-tensor torch file; geosound never unpickles code"
        raise InputError(f"not a readable checkpoint ({reason})", path) from None
    except Exception as error:  # a text file or random bytes: the unpickler fails any which way
        raise InputError(
            f"not a geosound checkpoint (unreadable: {type(error).__name__})", path
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != form:
        raise InputError(f"not a geosound {kind} checkpoint", path)
    if payload.get("format_version") != version:
        raise InputError(
            f"{kind} checkpoint format version {payload.get('format_version')} is not "
            f"supported (this geosound reads {version})",
            path,
        )
    return payload
