"""Lightning data module over in-memory :class:`PairFeatures`.

The encoders already ran (and were cached), so a batch is a few slices of float arrays: no
workers, no disk. Evaluation uses the whole eval split as one batch, because retrieval
metrics rank each query against the whole gallery.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from typing_extensions import override

from geosound.data.features import PairFeatures
from geosound.evaluation.sat2sound_eval import pair_metadata
from geosound.training.augment import ImageViews


class PairDataset(Dataset):
    """Pairs as dicts of tensors: ``<modality>_tokens``, ``<modality>_mask`` and ``index``.

    Args:
        features: The pairs.
        views: Cached augmented image views of these pairs: each item then carries the
            tokens of one view drawn at random (torch's generator, seeded by the fit).
        audio_block_drop: Chance of masking one of an item's real audio blocks (when it has
            more than one): a time-crop of the recording, on the cached features.
        metadata: Give each item its pair's place and time (``metadata``), for a Sat2Sound
            built with metadata.
    """

    def __init__(
        self,
        features: PairFeatures,
        views: ImageViews | None = None,
        audio_block_drop: float = 0.0,
        metadata: bool = False,
    ) -> None:
        self.tensors = {
            key: torch.from_numpy(np.ascontiguousarray(getattr(features, key)))
            for name in features.modalities()
            for key in (f"{name}_tokens", f"{name}_mask")
        }
        self.length = len(features)
        if views is not None and len(views.index) != self.length:
            raise ValueError(f"{len(views.index)} view indexes for {self.length} pairs")
        if views is not None and views.tokens.shape[2:] != features.image_tokens.shape[1:]:
            raise ValueError("image views and image tokens differ in shape")
        self.views = views
        self.view_tokens = None if views is None else torch.from_numpy(views.tokens)
        self.audio_block_drop = audio_block_drop
        self.metadata = pair_metadata(features) if metadata else None

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = {key: value[index] for key, value in self.tensors.items()}
        if self.views is not None and self.view_tokens is not None:
            view = int(torch.randint(self.views.views, (1,)))
            item["image_tokens"] = self.view_tokens[int(self.views.index[index]), view].float()
        if self.audio_block_drop > 0:
            item["audio_mask"] = _drop_one_block(item["audio_mask"], self.audio_block_drop)
        if self.metadata is not None:
            item["metadata"] = self.metadata[index]
        item["index"] = torch.tensor(index)
        return item


def _drop_one_block(mask: torch.Tensor, chance: float) -> torch.Tensor:
    """The mask with one real token hidden, with probability ``chance`` (never the last one)."""
    real = torch.nonzero(mask).flatten()
    if len(real) < 2 or float(torch.rand(())) >= chance:
        return mask
    hidden = real[int(torch.randint(len(real), (1,)))]
    mask = mask.clone()
    mask[hidden] = False
    return mask


def place_of(pair_id: str) -> str:
    """The place a pair belongs to: sonified variants ``<tile>-v<n>`` share their tile."""
    head, separator, tail = pair_id.rpartition("-v")
    return head if separator and tail.isdigit() else pair_id


class OneVariantPerPlace(Sampler[int]):
    """Each epoch, one randomly chosen pair per place, in random order.

    Several sonified mixes of one tile in the same batch would be false negatives for the
    contrastive loss (the same image, paired with "different" sounds); drawing one variant per
    tile per epoch avoids that while still showing every mix over the epochs.
    """

    def __init__(self, pair_ids: np.ndarray, seed: int = 0) -> None:
        groups: dict[str, list[int]] = {}
        for index, pair_id in enumerate(pair_ids):
            groups.setdefault(place_of(str(pair_id)), []).append(index)
        self.groups = [torch.tensor(members) for members in groups.values()]
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.groups)

    def __iter__(self):  # type: ignore[no-untyped-def]
        order = torch.randperm(len(self.groups), generator=self.generator)
        for group in order.tolist():
            members = self.groups[group]
            pick = torch.randint(len(members), (1,), generator=self.generator)
            yield int(members[pick])


class PairDataModule(L.LightningDataModule):
    """Train on the ``train`` split; validate on the whole ``eval`` split.

    Each training epoch sees one variant per place (:class:`OneVariantPerPlace`).

    Args:
        features: All pairs, with their split.
        batch_size: Training batch size, at most the number of places (the last, smaller batch
            is dropped so every step has the same number of negatives).
        seed: Seeds the sampler, for reproducible runs.
        train_views: Augmented image views of the ``train`` pairs, in their order.
        audio_block_drop: See :class:`PairDataset` (training only).
        metadata: See :class:`PairDataset` (training and validation).
    """

    def __init__(
        self,
        features: PairFeatures,
        batch_size: int,
        seed: int = 0,
        train_views: ImageViews | None = None,
        audio_block_drop: float = 0.0,
        metadata: bool = False,
    ) -> None:
        super().__init__()
        self.train_features = features.split("train")
        self.eval_features = features.split("eval")
        self.sampler = OneVariantPerPlace(self.train_features.ids, seed)
        self.batch_size = min(batch_size, len(self.sampler))
        self.train_views = train_views
        self.audio_block_drop = audio_block_drop
        self.metadata = metadata

    @override
    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            PairDataset(
                self.train_features, self.train_views, self.audio_block_drop, self.metadata
            ),
            batch_size=self.batch_size,
            sampler=self.sampler,
            drop_last=True,
        )

    @override
    def val_dataloader(self) -> DataLoader:
        dataset = PairDataset(self.eval_features, metadata=self.metadata)
        return DataLoader(dataset, batch_size=len(dataset), shuffle=False)
