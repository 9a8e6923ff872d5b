"""Training configuration: one dataclass, read from and written to YAML.

Defaults are the run that made the shipped checkpoint (issue 9): every dev source, 7,635
pairs, 8 cached augmented views per training tile (dihedral, ground sampling distance,
colour, sensor), 20 epochs; 2 min 53 s of wall time on 2 CPU cores with the features cached
(dev run of 2026-12-02; figures in ``docs/sat2sound_dev_results.md``). Where they differ
from the reference (METHODS.md §1: AdamW lr 5e-5, batch 128) it is because our heads start
from scratch on thousands of pairs rather than fine-tuning on 300k: a larger learning rate,
with the reference's weight decay, betas, warm restarts and gradient clipping kept.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from geosound.atomic import atomic_path
from geosound.config import check_known_fields
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
        imagery: Dev imagery to sonify (:data:`~geosound.data.splits.DEV_IMAGERY`).
        sounds: Dev sound pools (:data:`~geosound.data.splits.DEV_SOUNDS`).
        mix_bank: Mixes per land-cover class shared by the training tiles (see
            :func:`~geosound.data.sonify.sonify_tiles`); 0 gives every pair its own mix.
        image_views: Augmented views per training tile, encoded once and cached, one drawn
            per tile per epoch (:mod:`geosound.training.augment`); 1 turns augmentation off.
        image_augment: Which image augmentations make the views (``dihedral``, ``gsd``,
            ``colour``, ``sensor``).
        audio_block_drop: Chance of hiding one audio block (of ~2.3 s) from a training pair:
            a time-crop on the cached features.
    """

    preset: str = "small"
    model: dict[str, Any] = field(default_factory=dict)
    loss: dict[str, Any] = field(default_factory=dict)
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.2
    betas: tuple[float, float] = (0.9, 0.98)
    restart_epochs: int = 20
    gradient_clip: float = 0.5
    val_every: int = 5
    seed: int = 0
    variants: int = 3
    eval_fraction: float = 0.3
    imagery: list[str] = field(default_factory=lambda: ["eurosat_ms", "eurosat_rgb"])
    sounds: list[str] = field(default_factory=lambda: ["esc50", "ambient"])
    mix_bank: int = 64
    image_views: int = 8
    image_augment: list[str] = field(
        default_factory=lambda: ["dihedral", "gsd", "colour", "sensor"]
    )
    audio_block_drop: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain builtins, for YAML and checkpoints."""
        data = dataclasses.asdict(self)
        data["betas"] = list(self.betas)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; a misspelt key is an error, not a silent default."""
        check_known_fields(cls, data, "training settings", InputError)
        values = dict(data)
        if "betas" in values:
            betas = values["betas"]
            if not isinstance(betas, list | tuple) or len(betas) != 2:
                raise InputError(f"betas must be two numbers, like [0.9, 0.98]; got {betas!r}")
            values["betas"] = tuple(betas)
        config = cls(**values)
        config.validate()
        return config

    @classmethod
    def from_recorded(cls, data: dict[str, Any]) -> TrainConfig:
        """The config a checkpoint's ``info["train_config"]`` records.

        Checkpoints made before the dev sources were settings (``imagery`` and friends) were
        trained on the Sentinel-2 tiles and ESC-50 clips alone, six mixes per tile, no
        augmentation: those are filled in for the keys such a record lacks, so its pairs and
        split are rebuilt as they were, not with today's defaults.
        """
        values = dict(data)
        if "imagery" not in values:
            values = {**_BEFORE_SOURCES, **values}
        return cls.from_dict(values)

    def validate(self) -> TrainConfig:
        """Refuse settings no run can use (wrong types, ``epochs`` < 1, …); returns ``self``.

        Raises:
            InputError: The first bad setting, named, with the value it has.
        """
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            expected = _TYPES[item.name]
            if isinstance(value, bool) or not isinstance(value, expected):
                kinds = expected if isinstance(expected, tuple) else (expected,)
                kind = " or ".join(t.__name__ for t in kinds)
                raise InputError(f"{item.name} must be {kind}; got {value!r}")
        for name in (
            "epochs",
            "batch_size",
            "val_every",
            "restart_epochs",
            "variants",
            "image_views",
        ):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1; got {getattr(self, name)!r}")
        self._validate_sources()
        if not 0.0 <= self.eval_fraction < 1.0:
            raise InputError(f"eval_fraction must be in [0, 1); got {self.eval_fraction!r}")
        if not self.learning_rate > 0:
            raise InputError(f"learning_rate must be positive; got {self.learning_rate!r}")
        if self.weight_decay < 0 or self.gradient_clip < 0:
            raise InputError("weight_decay and gradient_clip must not be negative")
        if not all(isinstance(b, int | float) and 0 <= b < 1 for b in self.betas):
            raise InputError(f"betas must be two numbers in [0, 1); got {list(self.betas)!r}")
        return self

    def _validate_sources(self) -> None:
        """The data-source and augmentation settings (see :meth:`validate`)."""
        if self.mix_bank < 0:
            raise InputError(f"mix_bank must not be negative; got {self.mix_bank!r}")
        if not 0.0 <= self.audio_block_drop < 1.0:
            raise InputError(f"audio_block_drop must be in [0, 1); got {self.audio_block_drop!r}")
        for name in ("imagery", "sounds", "image_augment"):
            if not all(isinstance(item, str) for item in getattr(self, name)):
                raise InputError(f"{name} must be a list of names; got {getattr(self, name)!r}")

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> TrainConfig:
        """Read a YAML file written by :meth:`to_yaml` (or by hand)."""
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError:
            raise InputError(
                "not a training config (not UTF-8 text; expected YAML)", path
            ) from None
        except OSError as error:
            raise InputError(
                f"cannot read training config ({error.strerror or error})", path
            ) from None
        except yaml.YAMLError as error:
            reason = " ".join(str(error).split())
            raise InputError(f"not a valid YAML training config ({reason})", path) from None
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


_BEFORE_SOURCES: dict[str, Any] = {
    "variants": 6,
    "imagery": ["eurosat_ms"],
    "sounds": ["esc50"],
    "mix_bank": 0,
    "image_views": 1,
    "image_augment": [],
    "audio_block_drop": 0.0,
}
"""What a recorded config without ``imagery`` was trained with (see ``from_recorded``)."""

_TYPES: dict[str, type | tuple[type, ...]] = {
    "preset": str,
    "model": dict,
    "loss": dict,
    "epochs": int,
    "batch_size": int,
    "learning_rate": (int, float),
    "weight_decay": (int, float),
    "betas": tuple,
    "restart_epochs": int,
    "gradient_clip": (int, float),
    "val_every": int,
    "seed": int,
    "variants": int,
    "eval_fraction": (int, float),
    "imagery": list,
    "sounds": list,
    "mix_bank": int,
    "image_views": int,
    "image_augment": list,
    "audio_block_drop": (int, float),
}
"""The type of every setting, checked by :meth:`TrainConfig.validate` (YAML gives any type)."""
