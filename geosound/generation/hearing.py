"""Hearing a recording as SounDiT does: the audio encoder, then the Sat2Sound audio side.

A generator only understands sound tokens made the way its training pairs' were
(:func:`~geosound.models.soundit.sound_condition`): by the audio encoder its checkpoint names
and the Sat2Sound model whose space id it records. :class:`Listener` loads exactly those and
refuses a Sat2Sound checkpoint from another space, which would give tokens of the right width
and the wrong meaning.
A Sound2Scene generator carries its own audio aligner: it hears through the audio encoder and
that aligner (:func:`aligned_condition`), and no Sat2Sound model.

Bad recordings fail where they are read (:func:`geosound.audio.load_audio`: missing,
corrupt, silent, …, each naming the file). A clip shorter than the encoder's window
(:attr:`~geosound.encoders.Encoder.window_seconds`) is filled out by the encoder, as in
training, each its own way (:attr:`~geosound.encoders.Encoder.padding`); a
:class:`ShortClipWarning` says so, since a picture drawn from half a second of sound deserves
less trust than one from ten.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from geosound.audio import Clip, load_audio
from geosound.encoders.base import encoder_from_id
from geosound.errors import InputError
from geosound.models.aligner import AudioAligner
from geosound.models.checkpoint import LoadedModel, load_checkpoint
from geosound.models.soundit import SoundCondition, sound_condition, vector_condition
from geosound.models.soundit_checkpoint import LoadedGenerator


class ShortClipWarning(UserWarning):
    """A recording shorter than the audio encoder's window was padded to it."""


@dataclass(frozen=True)
class Heard:
    """One recording as the generator hears it.

    Attributes:
        condition: The one-row sound condition.
        path: The recording.
        seconds: Its duration.
        padded: Whether it was shorter than the encoder's window (and so padded).
    """

    condition: SoundCondition
    path: str
    seconds: float
    padded: bool


class Listener:
    """The audio encoder and the Sat2Sound model a generator was trained to hear through.

    Args:
        generator: The loaded generator checkpoint.
        sat2sound: A Sat2Sound checkpoint (None: the shipped default model).

    Raises:
        InputError: The Sat2Sound model is not the one the generator was trained with, or
            its audio encoder is not the generator's, or one is given to a Sound2Scene
            generator (which hears through its own aligner).
    """

    def __init__(
        self, generator: LoadedGenerator, sat2sound: str | os.PathLike[str] | None = None
    ) -> None:
        self.sat2sound: LoadedModel | None = None
        self.aligner = generator.aligner
        if self.aligner is not None:
            if sat2sound is not None:
                raise InputError(
                    f"generator {generator.model_id} is a Sound2Scene generator: it hears through "
                    "its own audio aligner, not a Sat2Sound model; drop --sat2sound",
                    sat2sound,
                )
            self.space_id = generator.sound_space
            self.encoder = encoder_from_id(str(generator.encoders["audio"]))
            self.window_seconds = self.encoder.window_seconds
            return
        if sat2sound is None:
            from geosound.models.default import load_default_model

            model: LoadedModel = load_default_model()
            origin = "the shipped Sat2Sound model"
        else:
            model = load_checkpoint(sat2sound)
            origin = str(sat2sound)
        space = f"sat2sound:{model.model_id}"
        if space != generator.sound_space:
            raise InputError(
                f"{origin} is {space}, but generator {generator.model_id} was trained on sound "
                f"heard through {generator.sound_space}; give that Sat2Sound checkpoint with "
                "--sat2sound",
                sat2sound,
            )
        audio_id = generator.encoders.get("audio", model.encoders.get("audio"))
        if audio_id != model.encoders.get("audio"):
            raise InputError(
                f"generator {generator.model_id} hears through audio encoder {audio_id}, its "
                f"Sat2Sound model through {model.encoders.get('audio')}",
                sat2sound,
            )
        self.sat2sound = model
        self.space_id = space
        self.encoder = encoder_from_id(str(audio_id))
        self.window_seconds = self.encoder.window_seconds

    def hear(self, path: str | os.PathLike[str], clip: Clip | None = None) -> Heard:
        """The sound condition of one recording.

        Args:
            path: The recording.
            clip: The recording already loaded (at its own rate); read from ``path`` if None.

        Raises:
            AudioError: The recording is missing, unreadable, empty or silent.
        """
        clip = clip if clip is not None else load_audio(Path(path), sample_rate=None)
        padded = self.window_seconds is not None and clip.duration < self.window_seconds
        if padded:
            warnings.warn(
                ShortClipWarning(
                    f"{path}: {clip.duration:.2f} s is shorter than the "
                    f"{self.window_seconds:.2f} s window of {self.encoder.id}; "
                    f"{self.encoder.padding}"
                ),
                stacklevel=2,
            )
        encoding = self.encoder.encode([clip])
        if self.aligner is not None:
            condition = aligned_condition(self.aligner, encoding.tokens, encoding.mask)
        else:
            assert self.sat2sound is not None  # set whenever there is no aligner
            condition = sound_condition(self.sat2sound.model, encoding.tokens, encoding.mask)
        return Heard(condition, str(path), clip.duration, padded)

    def sources(
        self, audio_embeddings: np.ndarray, embeddings: np.ndarray, space: str, audio_encoder: str
    ) -> SoundCondition:
        """The conditions of sources a separator found, one row each.

        A separated source is one vector in two spaces, with no tokens: a Sound2Scene
        generator hears its audio-encoder vector through the aligner as one token (for aiSFX,
        whose pooled vector is the mean of its tokens, that is what the aligner's mean pooling
        gives, up to a scale its LayerNorm removes); a SounDiT generator gets its Sat2Sound
        embedding as its only token, which differs from the tokens it was trained on.

        Args:
            audio_embeddings: ``(S, audio_dim)`` the sources in the audio encoder's pooled space.
            embeddings: ``(S, D)`` the sources in the separator's Sat2Sound space.
            space: That space's id.
            audio_encoder: The audio encoder under the separator.

        Raises:
            InputError: The separator's space (SounDiT) or audio encoder (Sound2Scene) is not
                the generator's.
        """
        self.check_sources(space, audio_encoder)
        if self.aligner is not None:
            vectors = torch.from_numpy(np.asarray(audio_embeddings, np.float32))
            return aligned_condition(self.aligner, vectors.unsqueeze(1),
                                     torch.ones(len(vectors), 1, dtype=torch.bool))  # fmt: skip
        return vector_condition(torch.from_numpy(np.asarray(embeddings, np.float32)))

    def check_sources(self, space: str, audio_encoder: str) -> None:
        """Refuse a separator whose sources this generator cannot hear (see :meth:`sources`).

        Raises:
            InputError: Another audio encoder (Sound2Scene) or Sat2Sound space (SounDiT).
        """
        if self.aligner is not None and audio_encoder != self.encoder.id:
            raise InputError(
                f"the separator hears through {audio_encoder}, the generator through "
                f"{self.encoder.id}"
            )
        if self.aligner is None and space != self.space_id:
            raise InputError(
                f"the separator's sources are in {space}, the generator hears {self.space_id}: "
                "give the Sat2Sound checkpoint of both with --sat2sound"
            )


def combined_condition(conditions: SoundCondition, weights: np.ndarray) -> SoundCondition:
    """One condition of several: ``normalise(Σ λᵢ cᵢ)`` of their embeddings (AV-GAS's λ mix).

    Args:
        conditions: ``(S, …)`` the sources' conditions.
        weights: ``(S,)`` their weights λ (the loudness shares in geosound).
    """
    lam = torch.as_tensor(np.asarray(weights, np.float32))
    return vector_condition((lam[:, None] * conditions.embedding).sum(0, keepdim=True))


@torch.no_grad()
def aligned_condition(aligner: AudioAligner, tokens: Tensor, mask: Tensor) -> SoundCondition:
    """A Sound2Scene generator's condition of recordings: their aligned image-space vectors."""
    return vector_condition(aligner.eval()(tokens, mask))
