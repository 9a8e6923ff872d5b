"""A recording in, its sources out: :class:`SourceFinder` (``geosound separate``).

The finder loads a separator checkpoint and the Sat2Sound model it was trained beside
(checked: a separator beside another model is refused), hears the recording through that
model's audio encoder, and keeps the slots the separator says exist — at least one, at most
``max_sources``. Each source is named by its nearest class prototypes (cosine, in the audio
encoder's space, where the slots live), and carries its share of the mix's loudness and its
vector lifted into the shared space (:func:`~geosound.evaluation.separation.lift_to_shared`),
which can query a map or a bank like any recording's embedding.

A stereo (or multichannel) recording is downmixed to mono by averaging its channels, as
every geosound encoder hears it; a :class:`DownmixWarning` says so.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from geosound.audio import Clip, load_audio
from geosound.evaluation.separation import check_separator_space, lift_to_shared
from geosound.models.separator_checkpoint import LoadedSeparator, load_separator
from geosound.space.shared import SharedSpace

__all__ = ["DownmixWarning", "Separation", "Source", "SourceFinder"]


class DownmixWarning(UserWarning):
    """A recording with several channels was averaged to mono."""


@dataclass(frozen=True)
class Source:
    """One source found in a recording.

    Attributes:
        classes: The nearest classes, best first, with their cosine to the source.
        existence: The separator's probability that this slot holds a source.
        share: Its share of the recording's loudness (the shares of a recording sum to 1).
        audio_embedding: Its unit vector in the audio encoder's pooled space.
        embedding: Its unit vector in the shared (Sat2Sound) space.
    """

    classes: list[tuple[str, float]]
    existence: float
    share: float
    audio_embedding: np.ndarray = field(repr=False)
    embedding: np.ndarray = field(repr=False)

    @property
    def label(self) -> str:
        """The nearest class."""
        return self.classes[0][0]


@dataclass(frozen=True)
class Separation:
    """The sources of one recording, loudest first.

    Attributes:
        path: The recording.
        seconds: Its duration.
        channels: Its channel count before the downmix.
        sources: What was found.
        separator: Id of the separator.
        space: Id of the shared space of the vectors.
    """

    path: str
    seconds: float
    channels: int
    sources: list[Source]
    separator: str
    space: str

    def to_dict(self) -> dict[str, object]:
        """Plain builtins for ``--json`` (vectors left out)."""
        return {
            "recording": self.path,
            "seconds": round(self.seconds, 3),
            "channels": self.channels,
            "downmixed": self.channels > 1,
            "separator": self.separator,
            "space": self.space,
            "sources": [
                {
                    "label": source.label,
                    "classes": [
                        {"class": name, "score": round(score, 4)} for name, score in source.classes
                    ],
                    "existence": round(source.existence, 4),
                    "share": round(source.share, 4),
                }
                for source in self.sources
            ],
        }


class SourceFinder:
    """A separator and the space it separates into.

    Args:
        separator: The separator checkpoint (or one already loaded).
        sat2sound: Its Sat2Sound checkpoint (None: the shipped model).
        threshold: Existence probability a slot needs to count as a source.

    Raises:
        InputError: The checkpoint is unreadable, or the separator belongs to another space.
    """

    def __init__(
        self,
        separator: str | os.PathLike[str] | LoadedSeparator,
        sat2sound: str | os.PathLike[str] | None = None,
        threshold: float = 0.5,
    ) -> None:
        self.separator = (
            separator if isinstance(separator, LoadedSeparator) else load_separator(separator)
        )
        self.space = SharedSpace.from_checkpoint(sat2sound)
        check_separator_space(self.separator, self.space)
        self.threshold = threshold

    @staticmethod
    def default_path() -> Path:
        """The shipped separator (:func:`~geosound.separation.default.default_separator_path`)."""
        from geosound.separation.default import default_separator_path

        return default_separator_path()

    def read(self, path: str | os.PathLike[str]) -> tuple[Clip, int]:
        """The recording as mono at its own rate, and its channel count.

        Raises:
            AudioError: Missing, unreadable, empty or silent (named).
        """
        clip = load_audio(Path(path), sample_rate=None, mono=False)
        channels = int(clip.samples.shape[0])
        if channels > 1:
            warnings.warn(
                DownmixWarning(f"{path}: {channels} channels, downmixed to mono"), stacklevel=2
            )
        mono = clip.samples.mean(axis=0).astype(np.float32)
        return Clip(mono, clip.sample_rate, str(path)), channels

    def separate(
        self, path: str | os.PathLike[str], max_sources: int | None = None, top_classes: int = 3
    ) -> Separation:
        """The sources of one recording, loudest first.

        Raises:
            AudioError: The recording is missing, unreadable, empty or silent.
        """
        clip, channels = self.read(path)
        encoding = self.space.encoders["audio"].encode([clip])
        with torch.inference_mode():
            output = self.separator.model(encoding.tokens, encoding.mask)
            present = output.present(self.threshold, max_sources)
            shares = output.shares(present)[0].numpy()
            existence = torch.sigmoid(output.existence)[0].numpy()
            embeddings = output.embeddings[0].numpy()
        shared = lift_to_shared(self.space, embeddings)
        scores = embeddings @ self.separator.prototypes.numpy().T
        sources = []
        for slot in np.flatnonzero(present[0].numpy()):
            best = np.argsort(-scores[slot], kind="stable")[:top_classes]
            sources.append(
                Source(
                    [(self.separator.classes[c], float(scores[slot, c])) for c in best],
                    float(existence[slot]),
                    float(shares[slot]),
                    embeddings[slot],
                    shared[slot],
                )
            )
        sources.sort(key=lambda source: -source.share)
        return Separation(
            str(path),
            clip.duration,
            channels,
            sources,
            self.separator.model_id,
            self.space.space_id,
        )
