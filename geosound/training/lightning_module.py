"""The Lightning module that trains Sat2Sound on cached encoder features."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from typing_extensions import override

from geosound.evaluation import retrieval_report
from geosound.models import LossConfig, Sat2Sound, Sat2SoundLoss
from geosound.training.config import TrainConfig


class Sat2SoundModule(L.LightningModule):
    """Wraps a :class:`Sat2Sound` model, its loss and the reference optimiser settings.

    Validation embeds the whole eval split at once and logs image→audio retrieval: instance
    recall@10 (``val_r10``) and class-level recall@10 (``val_class_r10``); the class of a pair is
    the land cover its tile was sonified for.
    """

    def __init__(self, model: Sat2Sound, config: TrainConfig, eval_labels: list[str]) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self.loss_fn = Sat2SoundLoss(LossConfig.from_dict(config.loss))
        self.eval_labels = eval_labels

    @override
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        outputs = self.model(batch)
        total, parts = self.loss_fn(outputs, self.model.clamped_logit_scale())
        self.log_dict(
            {f"train_{k}": v.detach() for k, v in parts.items()},
            on_epoch=True,
            on_step=False,
            batch_size=len(batch["index"]),
        )
        self.log(
            "logit_scale", self.model.clamped_logit_scale().detach(), on_epoch=True, on_step=False
        )
        return total

    @override
    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        keys = ("image_tokens", "image_mask", "audio_tokens", "audio_mask", "metadata")
        outputs = self.model({key: batch[key] for key in keys if key in batch})
        labels = [self.eval_labels[i] for i in batch["index"].tolist()]
        report = retrieval_report(
            outputs["image"].embedding.cpu().numpy(),
            outputs["audio"].embedding.cpu().numpy(),
            labels,
            labels,
            "image→audio",
            ks=(10,),
        )
        self.log("val_r10", report.recall[10], batch_size=len(labels))
        self.log("val_class_r10", report.class_recall[10], batch_size=len(labels))

    @override
    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=self.config.learning_rate,
            weight_decay=self.config.weight_decay,
            betas=(self.config.betas[0], self.config.betas[1]),
        )
        scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
            optimizer, T_0=max(1, self.config.restart_epochs)
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }
