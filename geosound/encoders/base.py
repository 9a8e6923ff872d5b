"""The one interface every encoder backend implements, and the registry that finds them.

A backend turns a batch of inputs of one modality into an :class:`Encoding`: a pooled vector
per item plus the token-level outputs (image feature-map cells, audio frames or blocks, text
tokens) that Sat2Sound's codebook max-pools over. Backends load their weights lazily, on the
first ``encode`` call, so that building the registry, the CLI and ``--help`` stay instant.

Some encoders can run their network on another inference runtime than torch (an
:data:`EncoderBackend`). Which one is a process-wide setting, :func:`encoder_backend`, read
from ``GEOSOUND_ENCODER_BACKEND`` so that Dask workers started from the process inherit it;
the backend changes speed, never the encoder id: every backend's outputs agree to 1e-4.
"""

from __future__ import annotations

import abc
import importlib.util
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from geosound.errors import EncoderError
from geosound.runtime import default_device, resolve_device

Modality = Literal["image", "audio", "text"]
EncoderBackend = Literal["torch", "onnx", "openvino"]
ENCODER_BACKENDS: tuple[EncoderBackend, ...] = ("torch", "onnx", "openvino")
BACKEND_VARIABLE = "GEOSOUND_ENCODER_BACKEND"
#: The package each backend runs on (``openvino`` is the optional extra ``geosound[openvino]``).
BACKEND_PACKAGES: dict[EncoderBackend, str] = {
    "torch": "torch",
    "onnx": "onnxruntime",
    "openvino": "openvino",
}


def encoder_backend() -> EncoderBackend:
    """The inference runtime encoders that offer a choice use (``torch`` unless set).

    Raises:
        EncoderError: ``GEOSOUND_ENCODER_BACKEND`` names no backend.
    """
    return check_backend(os.environ.get(BACKEND_VARIABLE) or "torch", BACKEND_VARIABLE)


def set_encoder_backend(backend: str) -> EncoderBackend:
    """Make ``backend`` the process's default (and its future Dask workers', via the environment).

    Raises:
        EncoderError: Not one of :data:`ENCODER_BACKENDS`.
    """
    checked = check_backend(backend)
    os.environ[BACKEND_VARIABLE] = checked
    return checked


def backend_installed(backend: EncoderBackend) -> bool:
    """Whether ``backend``'s runtime package can be imported here (without importing it)."""
    return importlib.util.find_spec(BACKEND_PACKAGES[backend]) is not None


def check_backend(backend: str, source: str = "encoder backend") -> EncoderBackend:
    """``backend`` as an :data:`EncoderBackend`, or an error naming ``source`` and the choices."""
    for known in ENCODER_BACKENDS:
        if backend == known:
            return known
    choices = ", ".join(ENCODER_BACKENDS)
    raise EncoderError(f"{source}: unknown encoder backend {backend!r}; choose one of {choices}")


@dataclass(frozen=True)
class Encoding:
    """What an encoder returns for a batch of ``B`` items.

    Attributes:
        pooled: ``(B, D)`` one vector per item (not normalised; callers decide).
        tokens: ``(B, T, D)`` token-level outputs, padded to the longest item.
        mask: ``(B, T)`` True where a token is real, False where it is padding.
    """

    pooled: torch.Tensor
    tokens: torch.Tensor
    mask: torch.Tensor

    def __post_init__(self) -> None:
        batch, dim = self.pooled.shape
        if self.tokens.shape[0] != batch or self.tokens.shape[2] != dim:
            raise ValueError(
                f"tokens {tuple(self.tokens.shape)} do not match pooled {(batch, dim)}"
            )
        if self.mask.shape != self.tokens.shape[:2]:
            raise ValueError(f"mask {tuple(self.mask.shape)} does not match tokens")


def pad_tokens(sequences: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``(T_i, D)`` token sequences of different lengths into ``(B, T, D)`` plus a mask."""
    if not sequences:
        raise ValueError("no token sequences to pad")
    longest = max(seq.shape[0] for seq in sequences)
    dim = sequences[0].shape[1]
    tokens = sequences[0].new_zeros((len(sequences), longest, dim))
    mask = torch.zeros((len(sequences), longest), dtype=torch.bool)
    for i, seq in enumerate(sequences):
        tokens[i, : seq.shape[0]] = seq
        mask[i, : seq.shape[0]] = True
    return tokens, mask


EncoderInput = Sequence[Any] | np.ndarray
"""A batch of one modality: image arrays (N, 3, H, W), texts, or clips/paths of recordings."""


class Encoder(abc.ABC):
    """A frozen pretrained encoder of one modality.

    Subclasses set the class attributes, implement :meth:`_load` (build the network, once, on
    :attr:`device`) and :meth:`_encode_batch` (one batch of at most ``batch_size`` items, moved
    to :attr:`device`, returned on the CPU as float32), and never train.

    Args:
        batch_size: Items per forward pass.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (default: :func:`default_device`,
            i.e. ``--device`` or ``GEOSOUND_DEVICE``, else the CPU).

    Raises:
        InputError: ``device`` is not usable here (no CUDA device, an unknown name).
    """

    name: ClassVar[str]
    modality: ClassVar[Modality]
    dim: ClassVar[int]
    version: ClassVar[str] = "1"
    window_seconds: ClassVar[float | None] = None
    """Seconds of audio one token is made from: a shorter clip is filled out to it (None: no
    window, as for images and text). Readers warn about short clips with it rather than
    knowing each backend's front end."""
    padding: ClassVar[str] = "padded"
    """How a clip shorter than :attr:`window_seconds` is filled out, in words for a warning."""

    def __init__(self, batch_size: int = 32, device: str | None = None) -> None:
        self.batch_size = batch_size
        # Where the network runs; its outputs always come back to the CPU (see Encoding).
        # None: the process's device (``--device``, GEOSOUND_DEVICE), so that every encoder a
        # command or a Dask worker builds follows it without being handed it.
        self.device = default_device() if device is None else resolve_device(device)
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def id(self) -> str:
        """Identifies the weights and preprocessing; caches and indexes are keyed by it."""
        return f"{self.name}@{self.version}"

    @classmethod
    def from_id(cls, encoder_id: str, **kwargs: Any) -> Encoder:
        """The encoder of this class whose :attr:`id` is ``encoder_id`` (see subclasses)."""
        return cls(**kwargs)

    @property
    def model(self) -> Any:
        """The underlying network, loaded on first use."""
        with self._lock:
            if self._model is None:
                self._model = self._load()
        return self._model

    @abc.abstractmethod
    def _load(self) -> Any:
        """Build the network with its pretrained weights, in eval mode, on ``self.device``."""

    @abc.abstractmethod
    def _encode_batch(self, items: EncoderInput) -> Encoding:
        """Encode at most ``batch_size`` items."""

    def encode(self, items: EncoderInput) -> Encoding:
        """Encode any number of items, ``batch_size`` at a time, without gradients.

        Args:
            items: Inputs of this encoder's modality (see each backend for the exact type).

        Returns:
            The pooled and token embeddings of all items, in input order.
        """
        if len(items) == 0:
            raise EncoderError(f"{self.name}: nothing to encode (empty batch)")
        parts: list[Encoding] = []
        with torch.inference_mode():
            for start in range(0, len(items), self.batch_size):
                parts.append(self._encode_batch(items[start : start + self.batch_size]))
        if len(parts) == 1:
            return parts[0]
        tokens, mask = _concat_padded([p.tokens for p in parts], [p.mask for p in parts])
        return Encoding(torch.cat([p.pooled for p in parts]), tokens, mask)


def _concat_padded(
    tokens: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(t.shape[1] for t in tokens)
    padded_tokens = [torch.nn.functional.pad(t, (0, 0, 0, longest - t.shape[1])) for t in tokens]
    padded_masks = [torch.nn.functional.pad(m, (0, longest - m.shape[1])) for m in masks]
    return torch.cat(padded_tokens), torch.cat(padded_masks)


_REGISTRY: dict[str, Callable[..., Encoder]] = {}


def register_encoder(name: str) -> Callable[[type[Encoder]], type[Encoder]]:
    """Class decorator: make an encoder available to :func:`get_encoder` under ``name``."""

    def decorate(cls: type[Encoder]) -> type[Encoder]:
        if name in _REGISTRY:
            raise ValueError(f"encoder {name!r} is registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def get_encoder(name: str, **kwargs: Any) -> Encoder:
    """Build a registered encoder by name (its weights load on first use).

    Raises:
        EncoderError: No encoder has that name.
    """
    try:
        factory = _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise EncoderError(f"unknown encoder {name!r}; known encoders: {known}") from None
    return factory(**kwargs)


def encoder_from_id(encoder_id: str, **kwargs: Any) -> Encoder:
    """Rebuild the encoder that an id recorded (in a checkpoint, a cache, an index).

    Raises:
        EncoderError: No registered encoder makes that id (unknown name, other version).
    """
    for name in sorted(_REGISTRY, key=len, reverse=True):
        if encoder_id.startswith(name):
            encoder = _REGISTRY[name].from_id(encoder_id, **kwargs)  # type: ignore[attr-defined]
            if encoder.id != encoder_id:
                break
            return encoder
    raise EncoderError(
        f"no registered encoder makes {encoder_id!r} (registered: {', '.join(sorted(_REGISTRY))})"
    )


def available_encoders() -> dict[str, type[Encoder]]:
    """All registered encoders by name."""
    return dict(_REGISTRY)  # type: ignore[arg-type]
