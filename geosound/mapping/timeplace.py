"""Time and place: region caches read at a month and an hour, for models trained with metadata.

A Sat2Sound model built with ``use_metadata`` fuses each image's location (lon/lat) and time
(month, hour) into its tokens before the concept codebook (:class:`~geosound.models.
MetadataFusion`). The same tile then has one embedding per hour, and a map across a day needs
24 of them.

What is cached, and why (measured in ``docs/time_and_place.md``): the region cache of such a
model keeps, per tile, the image head's projected tokens (before the fusion) and the tile
centre's lon/lat, besides the embedding at "location known, time unknown". A month or an hour
is applied when a product is made — fusion and codebook on the cached tokens, no image
encoder. So a cache never holds a time, and so can never serve the wrong one: asking for
05:00 recomputes 05:00 from the time-free part, in a small fraction of the encoder's time.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr

from geosound.errors import InputError
from geosound.mapping.region import (
    METADATA_VARIABLES,
    RegionCache,
    embedding_outputs,
)
from geosound.models import metadata_features
from geosound.space.shared import SharedSpace

FUSE_BATCH = 2048
"""Tiles fused per forward pass (bounds the ``(B, T, K)`` token scores in memory)."""


@dataclass(frozen=True)
class Moment:
    """A month and an hour of day at which places are embedded; None where not given."""

    month: int | None = None
    hour: float | None = None

    @property
    def given(self) -> bool:
        """Whether a time was asked for at all."""
        return self.month is not None or self.hour is not None

    def label(self) -> str:
        """How layers and files name it: ``05:00``, ``month 5``, ``month 5 05:30``."""
        parts = []
        if self.month is not None:
            parts.append(f"month {self.month}")
        if self.hour is not None:
            whole, minutes = divmod(round(self.hour * 60), 60)
            parts.append(f"{whole:02d}:{minutes:02d}")
        return " ".join(parts)

    def suffix(self) -> str:
        """A file-name suffix for per-hour products: ``_h05``, ``_h05m30``."""
        if self.hour is None:
            return ""
        whole, minutes = divmod(round(self.hour * 60), 60)
        return f"_h{whole:02d}" + (f"m{minutes:02d}" if minutes else "")

    def record(self) -> dict[str, object]:
        """For sidecars."""
        return {"month": self.month, "hour": self.hour}


def moments(month: int | None = None, hours: Sequence[float] = ()) -> list[Moment]:
    """One :class:`Moment` per hour (all in ``month``), or the one moment without an hour."""
    if not hours:
        return [Moment(month, None)]
    return [Moment(month, float(h)) for h in hours]


def check_time_metadata(space: SharedSpace, month: int | None, hours: Sequence[float]) -> None:
    """Refuse a month or an hour for a model that was not trained with them.

    Raises:
        InputError: ``month`` or ``hours`` given, and the model has no metadata fusion.
    """
    if (month is not None or len(hours) > 0) and not space.has_metadata:
        raise InputError(
            f"the model {space.space_id} was trained without location and time "
            "(use_metadata is off), so it cannot map a month or an hour; give a checkpoint "
            "trained with metadata (docs/time_and_place.md)"
        )


def place_metadata(lon: np.ndarray, lat: np.ndarray, moment: Moment) -> torch.Tensor:
    """``(N, 10)`` metadata rows for places at one moment (month/hour flagged absent if None)."""
    return metadata_features(lat, lon, moment.month, moment.hour)


class TimedRegionCache(RegionCache):
    """A region cache read at one moment: the same products, the tiles' embeddings fused anew.

    Every product function takes it where it takes a :class:`RegionCache`; only
    :meth:`embeddings` and :meth:`concept_dataset` differ, computed once, in memory, from the
    cache's time-free projected tokens and the tiles' lon/lat.
    """

    def __init__(self, base: RegionCache, space: SharedSpace, moment: Moment) -> None:
        super().__init__(base.path, base.spec)
        self.space = space
        self.moment = moment

    @functools.cached_property
    def _fused(self) -> dict[str, np.ndarray]:
        """Per tile: the embedding and top concepts at this moment (NaN/fill off tiles)."""
        ds = self.dataset()
        missing = [name for name in METADATA_VARIABLES if name not in ds]
        if missing:
            raise InputError(
                f"this region cache was made without the time-free part of a metadata model "
                f"({', '.join(missing)} missing); map it again into a new --cache",
                self.path,
            )
        super().embeddings()  # refuses a cache whose chunks are not all embedded
        valid = ds["valid"].values.astype(bool)
        queries = ds["image_queries"].values[valid]
        lon, lat = ds["lon"].values[valid], ds["lat"].values[valid]
        parts: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(queries), FUSE_BATCH):
            stop = start + FUSE_BATCH
            q = torch.from_numpy(np.ascontiguousarray(queries[start:stop], dtype=np.float32))
            mask = torch.ones(q.shape[:2], dtype=torch.bool)
            meta = place_metadata(lon[start:stop], lat[start:stop], self.moment)
            output = self.space.fuse_images(q, mask, meta)
            for name, value in embedding_outputs(output).items():
                parts.setdefault(name, []).append(value)
        rows, cols = valid.shape
        fused: dict[str, np.ndarray] = {}
        for name in ("embedding", "concept_ids", "concept_weights",
                     "token_concept_ids", "token_concept_scores"):  # fmt: skip
            if name not in ds:
                continue
            variable = ds[name]
            full = np.full(variable.shape, _fill(name), dtype=variable.dtype)
            if parts:
                full[valid] = np.concatenate(parts[name])
            fused[name] = full
        assert fused["embedding"].shape[:2] == (rows, cols)
        return fused

    def embeddings(self) -> tuple[xr.DataArray, np.ndarray]:
        """(row, col, dim) embeddings at this moment and the validity mask."""
        ds = self.dataset()
        embedding = ds["embedding"].copy(data=self._fused["embedding"])
        return embedding, ds["valid"].values.astype(bool)

    def concept_dataset(self) -> xr.Dataset:
        """The cache's concept variables, at this moment."""
        ds = super().concept_dataset().copy()
        for name, values in self._fused.items():
            ds[name] = ds[name].copy(data=values)
        return ds


def at_moment(cache: RegionCache, space: SharedSpace, moment: Moment) -> RegionCache:
    """The cache as products should read it at ``moment``.

    A model without metadata has one embedding per tile; a metadata model's cache already
    holds "location known, time unknown" (no month, no hour). Only a given time needs fusing.
    """
    if not space.has_metadata or not moment.given:
        return cache
    return TimedRegionCache(cache, space, moment)


def _fill(name: str) -> float:
    if name.endswith("_ids"):
        return -1
    if name == "concept_weights":
        return 0.0
    return np.nan
