"""Training the AV-GAS separator on mixes of single-source dev clips (``geosound train-separator``).

The run, all seeded:

1. the ESC-50 dev clips with the split ``geosound train`` uses
   (:func:`~geosound.evaluation.separation.separation_clips`), so the eval clips are unheard by
   the shipped Sat2Sound model too;
2. each *train* clip's unit pooled embedding from the audio encoder (the A2A target of a slot
   holding it) and the class prototypes (mean embedding per class) that name sources later.
   Slots live in the audio encoder's space rather than Sat2Sound's: on the dev eval clips,
   nearest-class-mean over 32 classes finds the class of a clean clip 62 % of the time there
   and 47 % in the shipped model's shared space, which was trained to match land covers, not
   to tell a dog from a cat. A slot reaches the shared space (maps, text, the generator)
   through the Sat2Sound audio head (:func:`~geosound.evaluation.separation.lift_to_shared`);
3. ``train_mixtures`` mixes of 1–3 train clips of different classes at random loudness and
   delay (:func:`~geosound.data.mixtures.draw_mixtures`), rendered and encoded once through
   the feature cache — the encoder is the slow part (about 10 aiSFX blocks/s here, three
   blocks a mix), so mixes are drawn once rather than on the fly, and a rerun encodes none;
4. the separator, with Lightning (checkpointed each epoch, resumable), under the
   permutation-invariant loss (:mod:`geosound.models.separator_loss`);
5. the evaluation (:func:`~geosound.evaluation.separation.evaluate_separator`) on mixes of the
   *eval* clips.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset
from typing_extensions import override

from geosound.config import check_known_fields
from geosound.data.feature_cache import FeatureCache
from geosound.data.mixtures import draw_mixtures
from geosound.errors import DataError, InputError
from geosound.evaluation.separation import (
    EncodedMixtures,
    class_prototypes,
    clip_vectors,
    encode_mixtures,
    evaluate_separator,
    separation_clips,
)
from geosound.models.separator import SEPARATOR_PRESETS, SourceSeparator, build_separator
from geosound.models.separator_checkpoint import (
    LoadedSeparator,
    save_separator,
    separator_fingerprint,
)
from geosound.models.separator_loss import SeparationLoss, SeparationLossConfig
from geosound.progress import Progress, stage
from geosound.training.fit import fit_resuming, resumable_trainer

RUN_SEPARATOR = "separator.pt"
"""What a run names its separator, in its folder."""

__all__ = [
    "SeparatorModule",
    "SeparatorOutcome",
    "SeparatorTrainConfig",
    "run_separator_training",
]


@dataclass
class SeparatorTrainConfig:
    """Settings of a separator training run; round-trips through plain dicts.

    Attributes:
        preset: :data:`~geosound.models.separator.SEPARATOR_PRESETS` name.
        model: Overrides of :class:`~geosound.models.separator.SeparatorConfig`
            (``num_slots``…).
        loss: Overrides of :class:`~geosound.models.separator_loss.SeparationLossConfig`.
        train_mixtures: Mixes of train clips drawn (and encoded) once.
        source_counts: Sources a training mix may have.
        lufs_low: Quietest loudness target of a source, LUFS.
        lufs_high: Loudest loudness target of a source, LUFS.
        max_delay: Sources start up to this many seconds into a mix.
        epochs: Epochs over the training mixes.
        batch_size: Mixes per step.
        learning_rate: AdamW learning rate.
        weight_decay: AdamW weight decay.
        eval_mixtures: Mixes of eval clips per source count in the evaluation.
        sweep_mixtures: Mixes per ratio of the loudness sweep.
        eval_fraction: Share of each class's clips held out (as ``geosound train``).
        positives: ``"class"``: every source of a slot's class is a positive of its A2A
            term; ``"clip"``: only its own clip (the paper's instance-level A2A).
        seed: Seeds the split's twin, the mixes and training.
    """

    preset: str = "tiny"
    model: dict[str, Any] = field(default_factory=dict)
    loss: dict[str, Any] = field(default_factory=dict)
    train_mixtures: int = 3000
    source_counts: list[int] = field(default_factory=lambda: [1, 2, 3])
    lufs_low: float = -38.0
    lufs_high: float = -20.0
    max_delay: float = 1.0
    epochs: int = 60
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    eval_mixtures: int = 300
    sweep_mixtures: int = 150
    eval_fraction: float = 0.3
    positives: str = "class"
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain builtins, for checkpoints and sidecars."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SeparatorTrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        check_known_fields(cls, data, "separator training keys", InputError)
        return cls(**dict(data)).validate()

    def validate(self) -> SeparatorTrainConfig:
        """Refuse settings no run can use; returns ``self``.

        Raises:
            InputError: The setting and what it must be.
        """
        if self.preset not in SEPARATOR_PRESETS:
            raise InputError(
                f"unknown separator preset {self.preset!r}; presets: {', '.join(SEPARATOR_PRESETS)}"
            )
        for name in ("train_mixtures", "epochs", "batch_size", "eval_mixtures", "sweep_mixtures"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be at least 1; got {getattr(self, name)!r}")
        if not self.source_counts or min(self.source_counts) < 1:
            raise InputError(f"source_counts must be >= 1; got {self.source_counts!r}")
        if self.lufs_low > self.lufs_high:
            raise InputError(f"lufs_low ({self.lufs_low}) must not exceed lufs_high")
        if self.positives not in ("class", "clip"):
            raise InputError(f"positives must be 'class' or 'clip'; got {self.positives!r}")
        if not 0.0 < self.eval_fraction < 1.0:
            raise InputError(f"eval_fraction must be in (0, 1); got {self.eval_fraction!r}")
        return self


class SeparatorModule(L.LightningModule):
    """The separator under :class:`~geosound.models.separator_loss.SeparationLoss`.

    Args:
        model: The separator.
        mixes: The encoded training mixes.
        targets: ``(S, D)`` unit embeddings of the clips ``mixes.sources`` indexes.
        classes: ``(S,)`` the class index of each of those clips.
        config: The run's settings.
    """

    def __init__(
        self,
        model: SourceSeparator,
        mixes: EncodedMixtures,
        targets: Tensor,
        classes: Tensor,
        config: SeparatorTrainConfig,
    ) -> None:
        super().__init__()
        self.model = model
        self.loss = SeparationLoss(SeparationLossConfig.from_dict(config.loss))
        self.config = config
        self.tokens = torch.from_numpy(mixes.tokens)
        self.mask = torch.from_numpy(mixes.mask)
        self.sources = torch.from_numpy(mixes.sources)
        self.shares = torch.from_numpy(mixes.shares)
        self.targets = targets
        self.classes = classes

    def batch_loss(self, rows: Tensor) -> dict[str, Tensor]:
        """The loss terms on the mixes ``rows``."""
        sources = self.sources[rows]
        real = sources >= 0
        clips = sources.clamp_min(0)
        ids = self.classes[clips] if self.config.positives == "class" else clips
        output = self.model(self.tokens[rows], self.mask[rows])
        return self.loss(output, self.targets[clips], real, ids, self.shares[rows])

    @override
    def training_step(self, batch: list[Tensor], batch_idx: int) -> Tensor:
        terms = self.batch_loss(batch[0])
        for name, value in terms.items():
            self.log(f"train/{name}", value, prog_bar=name == "total", batch_size=len(batch[0]))
        return terms["total"]

    @override
    def configure_optimizers(self) -> Any:
        return torch.optim.AdamW(
            self.model.parameters(),
            lr=self.config.learning_rate,
            weight_decay=self.config.weight_decay,
        )


@dataclass
class SeparatorOutcome:
    """What a run made: the checkpoint, its id and the metrics."""

    checkpoint: Path
    model_id: str
    metrics: dict[str, Any]


def run_separator_training(
    out_dir: Path,
    config: SeparatorTrainConfig,
    data_dir: Path | None = None,
    cache_root: Path | None = None,
    sat2sound: str | None = None,
    progress: Progress | None = None,
    progress_bar: bool = False,
) -> SeparatorOutcome:
    """Steps 1–5 of the module docstring; writes ``separator.pt`` into ``out_dir``.

    Args:
        out_dir: The run folder (Lightning checkpoints resume from it).
        config: The run's settings.
        data_dir: Dev data folder (default: ``GEOSOUND_DEV_DATA``).
        cache_root: Feature cache root (default: the user cache).
        sat2sound: The Sat2Sound checkpoint whose space the slots land in (None: shipped).
        progress: ``(fraction, message)`` callback.
        progress_bar: Lightning's own bar.

    Raises:
        DataError: The dev data is missing, or the split leaves no train or eval clips.
        InputError: Bad settings.
    """
    from geosound.space.shared import SharedSpace

    config.validate()
    started = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    report = progress or (lambda fraction, message: None)
    report(0.0, "reading the dev clips")
    clips = separation_clips(data_dir, config.eval_fraction, config.seed)
    train = clips[clips["split"] == "train"].reset_index(drop=True)
    if train.empty or (clips["split"] == "eval").sum() == 0:
        raise DataError("the dev clips need both a train and an eval split")
    space = SharedSpace.from_checkpoint(sat2sound)
    audio = space.encoders["audio"]
    cache = FeatureCache(cache_root, audio)
    report(0.02, f"embedding {len(train)} train clips with {audio.id}")
    targets = clip_vectors(cache, train["path"].tolist())
    classes, prototypes = class_prototypes(targets, train["label"].tolist())

    mixtures = draw_mixtures(
        train,
        train["onset"].to_numpy(),
        config.train_mixtures,
        config.source_counts,
        None,
        (config.lufs_low, config.lufs_high),
        config.max_delay,
        seed=config.seed,
    )
    slots = int({**SEPARATOR_PRESETS[config.preset], **config.model}["num_slots"])
    mixes = encode_mixtures(
        mixtures, cache, max(max(config.source_counts), slots), stage(progress, 0.05, 0.7)
    )

    L.seed_everything(config.seed, workers=True, verbose=False)
    model = build_separator(
        config.preset,
        in_dim=int(mixes.tokens.shape[-1]),
        out_dim=int(targets.shape[-1]),
        **config.model,
    )
    class_index = torch.tensor([classes.index(label) for label in train["label"]])
    module = SeparatorModule(model, mixes, torch.from_numpy(targets), class_index, config)
    trainer = resumable_trainer(
        out_dir / "runs" / "separator",
        config.epochs,
        1.0,
        stage(progress, 0.7, 0.8),
        progress_bar,
        limit_val_batches=0,
    )
    fit_resuming(
        trainer,
        module,
        out_dir / "runs" / "separator",
        train_dataloaders=_loader(len(mixes), config.batch_size, config.seed),
    )
    model.eval()
    loaded = LoadedSeparator(
        model,
        f"separator-{separator_fingerprint(model)}",
        audio.id,
        space.space_id,
        classes,
        torch.from_numpy(prototypes),
        {},
    )
    evaluation = evaluate_separator(
        loaded,
        space,
        clips,
        cache_root,
        config.eval_mixtures,
        config.sweep_mixtures,
        config.seed,
        stage(progress, 0.8, 1.0),
    )
    metrics = {
        "train_clips": len(train),
        "train_mixtures": len(mixes),
        "classes": len(classes),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(time.monotonic() - started, 1),
        "evaluation": evaluation,
    }
    info = {"train_config": config.to_dict(), "metrics": metrics, "data": _provenance(clips)}
    checkpoint = out_dir / RUN_SEPARATOR
    model_id = save_separator(
        checkpoint,
        model,
        audio.id,
        space.space_id,
        classes,
        torch.from_numpy(prototypes),
        info,
    )
    return SeparatorOutcome(checkpoint, model_id, metrics)


def _loader(rows: int, batch_size: int, seed: int) -> DataLoader:
    return DataLoader(
        TensorDataset(torch.arange(rows)),
        batch_size=min(batch_size, rows),
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
        drop_last=rows > batch_size,
    )


def _provenance(clips: pd.DataFrame) -> dict[str, Any]:
    counts = clips["split"].value_counts()
    return {
        "source": "ESC-50 outdoor dev clips (CC BY-NC 3.0), mixed",
        "clips": {str(k): int(v) for k, v in counts.items()},
    }
