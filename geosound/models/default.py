"""The Sat2Sound checkpoints shipped inside the package.

``sat2sound_default.pt`` is what maps and the demo use; ``sat2sound_no_codebook.pt`` is its
ablation (projection heads only), shipped so ``geosound evaluate`` can show both. Both are
made by ``geosound train`` from the shared dev data (see ``geosound/assets/README.md``).
"""

from __future__ import annotations

from pathlib import Path

from geosound.config import assets_dir
from geosound.errors import InputError
from geosound.models.checkpoint import LoadedModel, load_checkpoint

DEFAULT_CHECKPOINT = "sat2sound_default.pt"
NO_CODEBOOK_CHECKPOINT = "sat2sound_no_codebook.pt"


def default_checkpoint_paths() -> list[Path]:
    """The shipped checkpoint, then its no-codebook ablation when present."""
    default = assets_dir() / DEFAULT_CHECKPOINT
    if not default.is_file():
        raise InputError("no shipped Sat2Sound checkpoint; make one with `geosound train`", default)
    ablation = assets_dir() / NO_CODEBOOK_CHECKPOINT
    return [default, ablation] if ablation.is_file() else [default]


def load_default_model() -> LoadedModel:
    """The shipped Sat2Sound model, in eval mode."""
    return load_checkpoint(default_checkpoint_paths()[0])
