"""Fitting Sat2Sound with Lightning: seeded, checkpointed, resumable, logged to CSV."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, Checkpoint
from lightning.pytorch.loggers import CSVLogger
from typing_extensions import override

from geosound.atomic import atomic_path
from geosound.data.features import PairFeatures
from geosound.models import Sat2Sound, Sat2SoundConfig, build_sat2sound
from geosound.progress import Progress
from geosound.runtime import lightning_accelerator
from geosound.training.augment import ImageViews
from geosound.training.config import TrainConfig
from geosound.training.data_module import PairDataModule
from geosound.training.lightning_module import Sat2SoundModule


class LastEpochCheckpoint(Checkpoint):
    """Writes ``last.ckpt`` after every training epoch, atomically, so a killed run resumes.

    Lightning's ``ModelCheckpoint(save_last=True, save_top_k=0)`` writes ``last.ckpt`` only
    when it also saved a top-k file, that is never: a run killed after 30 of 40 epochs started
    over. A :class:`~lightning.pytorch.callbacks.Checkpoint` runs after the other callbacks
    of an epoch, so the file holds their state too.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / "last.ckpt"

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        with atomic_path(self.path) as partial:
            trainer.save_checkpoint(partial)


class EpochProgress(Callback):
    """Reports ``(fraction, message)`` after every epoch, for ``--progress json`` callers."""

    def __init__(self, report: Progress, label: str) -> None:
        self.report = report
        self.label = label

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        done, epochs = trainer.current_epoch + 1, trainer.max_epochs or 1
        self.report(done / epochs, f"{self.label}: epoch {done}/{epochs}")


def resumable_trainer(
    run_dir: Path,
    epochs: int,
    gradient_clip: float | None,
    progress: Progress | None = None,
    progress_bar: bool = False,
    **options: Any,
) -> L.Trainer:
    """The Lightning trainer every geosound model fits with.

    Seeded runs are deterministic, ``run_dir/lightning/last.ckpt`` is written after each
    epoch (so a run resumes), logs go to CSV under ``run_dir/logs``, and ``progress`` hears
    of each epoch.

    ``options`` go to :class:`lightning.Trainer` (validation cadence, for instance).
    """
    # Lightning's start-up banner (accelerators, tips) is noise on a CPU-only tool.
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    callbacks: list[Callback] = [LastEpochCheckpoint(run_dir / "lightning")]
    if progress is not None:
        callbacks.append(EpochProgress(progress, run_dir.name))
    return L.Trainer(
        max_epochs=epochs,
        **lightning_accelerator(),  # --device / GEOSOUND_DEVICE; the CPU by default
        deterministic=True,
        gradient_clip_val=gradient_clip,
        logger=CSVLogger(run_dir, name="logs"),
        callbacks=callbacks,
        enable_progress_bar=progress_bar,
        enable_model_summary=False,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
        **options,
    )


def fit_resuming(trainer: L.Trainer, module: L.LightningModule, run_dir: Path, **data: Any) -> None:
    """``trainer.fit``, from ``run_dir/lightning/last.ckpt`` when a previous run left one.

    ``data`` is ``datamodule=`` or ``train_dataloaders=``, as :meth:`lightning.Trainer.fit`.
    """
    last = run_dir / "lightning" / "last.ckpt"
    with warnings.catch_warnings():
        # Lightning suggests DataLoader workers (our batches are slices of in-memory arrays),
        # warns about its own use of a deprecated torch API, and about validation left off.
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*LeafSpec.*")
        warnings.filterwarnings("ignore", ".*limit_val_batches.*")
        trainer.fit(module, ckpt_path=str(last) if last.exists() else None, **data)


def _text_dim(features: PairFeatures) -> int:
    """Width of the caption tokens; the model default when a manifest has no captions."""
    for name in ("audio_caption", "image_caption"):
        tokens = getattr(features, f"{name}_tokens")
        if tokens is not None:
            return int(tokens.shape[-1])
    return Sat2SoundConfig().text_dim


def fit_sat2sound(
    features: PairFeatures,
    run_dir: str | os.PathLike[str],
    config: TrainConfig,
    model_overrides: dict[str, Any] | None = None,
    progress_bar: bool = True,
    progress: Progress | None = None,
    train_views: ImageViews | None = None,
) -> Sat2Sound:
    """Train a Sat2Sound model on the ``train`` split; validate on ``eval`` every epoch.

    A run keeps Lightning checkpoints in ``run_dir/lightning`` and resumes from ``last.ckpt``
    when it exists, so an interrupted ``geosound train`` continues where it stopped. Metrics
    go to ``run_dir/logs/.../metrics.csv``.

    Args:
        features: Encoded pairs with their split.
        run_dir: Folder for this run's checkpoints and logs.
        config: The training configuration.
        model_overrides: Extra :class:`Sat2SoundConfig` fields (e.g. ``use_codebook=False``).
        progress_bar: Show Lightning's progress bar.
        progress: Called with (fraction, message) after every epoch.
        train_views: Cached augmented image views of the ``train`` pairs (in their order);
            one is drawn per pair per epoch.

    Returns:
        The trained model, in eval mode.
    """
    run_dir = Path(run_dir)
    L.seed_everything(config.seed, workers=True, verbose=False)
    dims = {
        "image_dim": features.image_tokens.shape[-1],
        "audio_dim": features.audio_tokens.shape[-1],
        "text_dim": _text_dim(features),
    }
    model = build_sat2sound(config.preset, **{**dims, **config.model, **(model_overrides or {})})
    data = PairDataModule(
        features,
        config.batch_size,
        seed=config.seed,
        train_views=train_views,
        audio_block_drop=config.audio_block_drop,
        metadata=model.metadata_fusion is not None,
    )
    module = Sat2SoundModule(model, config, list(data.eval_features.labels))
    trainer = resumable_trainer(
        run_dir,
        config.epochs,
        config.gradient_clip,
        progress,
        progress_bar,
        check_val_every_n_epoch=config.val_every,
    )
    fit_resuming(trainer, module, run_dir, datamodule=data)
    return module.model.eval()
