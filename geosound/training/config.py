"""Training configuration: one dataclass, read from and written to YAML.

Defaults are what ``geosound train`` uses to make the shipped checkpoint. Where they differ
from the reference (METHODS.md §1: AdamW lr 5e-5, batch 128) it is because our heads start
from scratch on a few hundred pairs rather than fine-tuning on 300k: a larger learning rate
and many more epochs over a small set, with the reference's weight decay, betas, warm
restarts and gradient clipping kept.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from geosound.atomic import atomic_path
from geosound.errors import InputError


@dataclass
class TrainConfig:
    """Everything that decides a training run, so that a run is reproducible from its YAML.

    Attributes:
        preset: Sat2Sound size preset (``tiny``, ``small``, ``base``).
        model: Overrides of :class:`~geosound.models.Sat2SoundConfig` fields.
        loss: Overrides of :class:`~geosound.models.LossConfig` fields.
        epochs: Passes over the training places (one sonified variant of each per epoch).
        batch_size: Pairs per step (contrastive negatives come from the batch).
        val_every: Validate every this many epochs.
        learning_rate: AdamW learning rate.
        weight_decay: AdamW weight decay (reference 0.2).
        betas: AdamW betas (reference 0.9, 0.98).
        restart_epochs: First period of the cosine schedule with warm restarts, in epochs.
        gradient_clip: Gradient-norm clip (reference 0.5).
        seed: Seeds torch, numpy and Python, and the sonification.
        variants: Sonified mixes per training tile (each a different draw of clips).
        eval_fraction: Share of tiles and of clips held out (disjointly) for evaluation.
    """

    preset: str = "small"
    model: dict[str, Any] = field(default_factory=dict)
    loss: dict[str, Any] = field(default_factory=dict)
    epochs: int = 400
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.2
    betas: tuple[float, float] = (0.9, 0.98)
    restart_epochs: int = 100
    gradient_clip: float = 0.5
    val_every: int = 10
    seed: int = 0
    variants: int = 6
    eval_fraction: float = 0.3

    def to_dict(self) -> dict[str, Any]:
        """Plain builtins, for YAML and checkpoints."""
        data = dataclasses.asdict(self)
        data["betas"] = list(self.betas)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; a misspelt key is an error, not a silent default."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown training settings: {', '.join(unknown)}")
        values = dict(data)
        if "betas" in values:
            values["betas"] = tuple(values["betas"])
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> TrainConfig:
        """Read a YAML file written by :meth:`to_yaml` (or by hand)."""
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise InputError(f"cannot read training config ({error})", path) from None
        if not isinstance(data, dict):
            raise InputError("training config must be a mapping of settings", path)
        try:
            return cls.from_dict(data)
        except InputError as error:
            raise InputError(error.message, path) from None

    def to_yaml(self, path: str | os.PathLike[str]) -> Path:
        """Write the config as YAML, atomically."""
        with atomic_path(path) as tmp:
            tmp.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        return Path(path)
