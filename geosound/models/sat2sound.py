"""Sat2Sound: one embedding space for place imagery, sound and text, built from a concept codebook.

The whole model lives in this file (METHODS.md §1). Frozen encoders give token sequences
(image feature-map cells 1280-d, audio blocks 512-d, text word pieces 384-d); this module turns
them into unit vectors in a shared ``D``-dimensional space:

1. A projection head per modality (LayerNorm → Linear → GELU → LayerNorm → Linear), applied to
   every token: ``q_t`` in ``R^D``. Audio captions and image captions share the text head.
2. A codebook ``C`` of ``K`` learnable soundscape concepts (``K × D``), shared by all
   modalities. Token scores ``s_tk = q_t · C_k / sqrt(D) / T``; padding tokens are set to
   ``-inf``; ``s_k = max_t s_tk``; ``w = sparsemax(s)`` (sparse, sums to 1);
   ``e = normalise(Σ_k w_k C_k)``. Every sample is thus a sparse mix of concepts, ``w`` says
   which concepts it evokes, and ``s_tk`` says which token (image cell, audio block) carries
   which concept: that is what sub-tile concept maps are made of.
3. Optionally (``use_metadata``) location and time are fused into the image side, see
   :class:`MetadataFusion`; dropped per sample with probability ``metadata_drop`` in training so
   the model also works without them.

``use_codebook=False`` is the ablation "no-codebook variant": the embedding is the L2-normalised
masked mean of the projected tokens, and there are no concept weights.

Temperature and initialisation (the choice METHODS.md leaves to us):
    Sparsemax is shift-invariant, so only the *spread* of the pooled scores ``s_k`` across the
    ``K`` concepts decides how many concepts stay active. For i.i.d. scores with spread ``σ``
    the support size is about ``K · P(Z > t)`` where ``E[(Z - t)_+] = 1 / (K σ)``: the
    product ``K σ`` fixes the active *fraction*. With PyTorch's default ``nn.Linear`` init the
    projection head outputs coordinates of variance about 1/3 whatever ``D`` is, and with
    ``C ~ N(0, 1)`` (as in the reference) ``q · C_k / sqrt(D)`` has a spread of about 0.58, so
    ``σ ≈ 0.58 / T``: the temperature must grow with ``K`` to keep the same active fraction.
    The reference pairs T = 1000 with K = 16384, i.e. ``T ≈ K / 16``, which leaves a dense
    start (with these heads, D 1024: 19 % of the concepts active for 1 token, 32 % for 196
    tokens; measured, not a guess). We take
    ``T = K / 32`` (tiny: K 256, T 8; small: K 1024, T 32; base: K 4096, T 128) and keep the
    reference's ``C ~ N(0, 1)``: a start sparse enough to read (about 1 concept in 7 active)
    that still gives gradient to many concepts, so few die before training has sorted them
    out (sparsemax gives no gradient to inactive ones). Training sharpens the weights by
    growing ``|q|`` and ``|C_k|`` (the 16-pair overfit test goes from ~35 to ~11 of 256).
    Measured at init on random tokens (seed 0, batch 64; ``test_weights_are_sparse_at_init``),
    active concepts per sample, mean [min–max]:

    ======  ======  =============  =============  =============  =============  =============
    preset  K       image 2×2      image 4×4      audio 4 blks   text 12 toks   pooled 1 tok
    ======  ======  =============  =============  =============  =============  =============
    tiny    256     34 [26–43]     38 [29–53]     35 [25–44]     39 [28–48]     29 [19–43]
    small   1024    137 [119–160]  153 [128–183]  134 [110–150]  150 [129–172]  115 [96–133]
    base    4096    547 [491–597]  622 [582–662]  540 [506–594]  608 [558–665]  459 [409–507]
    ======  ======  =============  =============  =============  =============  =============

    Max-pooling over more tokens narrows the spread of ``s_k`` a little, hence slightly
    denser weights for long sequences. Real encoder tokens are more alike than random ones,
    which moves the numbers towards the 1-token column.

Example:
    >>> model = build_sat2sound("tiny")
    >>> out = model.encode_image(torch.randn(2, 4, 1280))
    >>> out.embedding.shape, out.weights.shape, out.token_scores.shape
    (torch.Size([2, 128]), torch.Size([2, 256]), torch.Size([2, 4, 256]))
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geosound.config import check_known_fields

# ---------------------------------------------------------------------------------------------
# Configuration, presets
# ---------------------------------------------------------------------------------------------

METADATA_DIM = 10
"""Width of :func:`metadata_features` rows (see its docstring for the layout)."""


@dataclass
class Sat2SoundConfig:
    """Everything that defines a Sat2Sound model; round-trips through dict/JSON/YAML.

    Attributes:
        image_dim: Width of the image encoder's tokens (EfficientNet-Lite0: 1280).
        audio_dim: Width of the audio encoder's tokens (aiSFX: 512).
        text_dim: Width of the text encoder's tokens (MiniLM: 384).
        embed_dim: ``D``, the shared embedding width (reference 1024).
        num_concepts: ``K``, codebook size (reference 16384; a few hundred to a few thousand
            suits our data).
        use_codebook: False gives the "no-codebook" ablation (masked mean of projected tokens).
        concept_temperature: ``T`` in ``s_tk = q_t·C_k / sqrt(D) / T``. Sets how many concepts
            sparsemax keeps active at init; the presets use ``K / 32`` (module docstring).
        scale_by_sqrt_dim: Divide scores by ``sqrt(D)`` as METHODS.md says; keeps the score
            spread independent of ``D``.
        codebook_init_std: Standard deviation of the codebook's normal init (reference 1).
        use_metadata: Build the metadata fusion for the image side.
        metadata_dim: Width of metadata rows (:data:`METADATA_DIM`).
        metadata_drop: Probability of dropping a sample's metadata in training.
        metadata_heads: Attention heads of the fusion Transformer (must divide ``embed_dim``).
        dropout: Dropout in the projection heads and the fusion Transformer. 0 by default:
            the reference has none, and the heads are small.
        logit_scale_init: Initial logit scale (the multiplier, 1/0.07 as in CLIP).
        logit_scale_max: The multiplier is clamped to at most this (100, i.e. ln 100 in log).
    """

    image_dim: int = 1280
    audio_dim: int = 512
    text_dim: int = 384
    embed_dim: int = 256
    num_concepts: int = 1024
    use_codebook: bool = True
    concept_temperature: float = 32.0
    scale_by_sqrt_dim: bool = True
    codebook_init_std: float = 1.0
    use_metadata: bool = False
    metadata_dim: int = METADATA_DIM
    metadata_drop: float = 0.5
    metadata_heads: int = 4
    dropout: float = 0.0
    logit_scale_init: float = 1.0 / 0.07
    logit_scale_max: float = 100.0

    def __post_init__(self) -> None:
        for name in ("image_dim", "audio_dim", "text_dim", "embed_dim", "num_concepts"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.concept_temperature <= 0:
            raise ValueError(f"concept_temperature must be > 0, got {self.concept_temperature}")
        if not 0.0 <= self.metadata_drop <= 1.0:
            raise ValueError(f"metadata_drop must be in [0, 1], got {self.metadata_drop}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.use_metadata and self.embed_dim % self.metadata_heads:
            raise ValueError(
                f"metadata_heads ({self.metadata_heads}) must divide embed_dim ({self.embed_dim})"
            )
        if not 0 < self.logit_scale_init <= self.logit_scale_max:
            raise ValueError("need 0 < logit_scale_init <= logit_scale_max")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of builtins, for YAML/JSON files and checkpoints."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Sat2SoundConfig:
        """Inverse of :meth:`to_dict`.

        Unknown keys are an error rather than ignored: a misspelt key in a YAML file would
        otherwise silently train the default model.
        """
        check_known_fields(cls, data, "Sat2SoundConfig keys")
        return cls(**dict(data))


SAT2SOUND_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"embed_dim": 128, "num_concepts": 256, "concept_temperature": 8.0},
    "small": {"embed_dim": 256, "num_concepts": 1024, "concept_temperature": 32.0},
    "base": {"embed_dim": 512, "num_concepts": 4096, "concept_temperature": 128.0},
}
"""Size presets (overrides of :class:`Sat2SoundConfig`); ``T = K / 32`` throughout."""


def sat2sound_config(preset: str = "small", **overrides: Any) -> Sat2SoundConfig:
    """The config of a named preset, with any field overridden.

    Raises:
        ValueError: Unknown preset or field.
    """
    if preset not in SAT2SOUND_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; presets: {', '.join(SAT2SOUND_PRESETS)}")
    return Sat2SoundConfig.from_dict({**SAT2SOUND_PRESETS[preset], **overrides})


def build_sat2sound(
    preset_or_config: str | Sat2SoundConfig | Mapping[str, Any] = "small", **overrides: Any
) -> Sat2Sound:
    """Build a model from a preset name, a config or a config dict (e.g. from a checkpoint).

    Args:
        preset_or_config: ``"tiny"``, ``"small"``, ``"base"``, a :class:`Sat2SoundConfig` or
            its :meth:`~Sat2SoundConfig.to_dict`.
        **overrides: Config fields to change, e.g. ``use_codebook=False``.
    """
    if isinstance(preset_or_config, str):
        config = sat2sound_config(preset_or_config, **overrides)
    elif isinstance(preset_or_config, Sat2SoundConfig):
        config = dataclasses.replace(preset_or_config, **overrides)
    else:
        config = Sat2SoundConfig.from_dict({**preset_or_config, **overrides})
    return Sat2Sound(config)


# ---------------------------------------------------------------------------------------------
# Sparsemax
# ---------------------------------------------------------------------------------------------


class _SparsemaxFunction(torch.autograd.Function):
    """Sparsemax with its closed-form Jacobian (Martins & Astudillo 2016).

    Forward: the Euclidean projection of ``z`` onto the probability simplex,
    ``p = max(z - τ, 0)`` with ``τ`` from the sorted values. Backward: on the support ``S``
    ``∂p/∂z = I - 1 1ᵀ / |S|``, zero elsewhere — cheaper and exacter than differentiating
    through the sort.
    """

    @staticmethod
    def forward(ctx: Any, z: Tensor, dim: int) -> Tensor:  # torch types ctx too loosely
        z = z - z.amax(dim=dim, keepdim=True)  # shift-invariant; keeps the cumsum small
        z_sorted, _ = torch.sort(z, dim=dim, descending=True)
        cumsum = z_sorted.cumsum(dim)
        shape = [1] * z.dim()
        shape[dim] = z.shape[dim]
        ranks = torch.arange(1, z.shape[dim] + 1, dtype=z.dtype, device=z.device).view(shape)
        in_support = 1 + ranks * z_sorted > cumsum  # true for a prefix of the sorted values
        support_size = in_support.sum(dim=dim, keepdim=True).clamp(min=1)
        tau = (cumsum.gather(dim, support_size - 1) - 1) / support_size.to(z.dtype)
        out = (z - tau).clamp(min=0)
        ctx.save_for_backward(out)
        ctx.dim = dim
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, None]:
        (out,) = ctx.saved_tensors
        support = (out > 0).to(grad_out.dtype)
        size = support.sum(dim=ctx.dim, keepdim=True).clamp(min=1)
        mean = (grad_out * support).sum(dim=ctx.dim, keepdim=True) / size
        return support * (grad_out - mean), None


def sparsemax(z: Tensor, dim: int = -1) -> Tensor:
    """Sparsemax: like softmax, but the result can have exact zeros.

    Args:
        z: Scores, any shape.
        dim: The dimension that sums to 1.

    Returns:
        Non-negative values of ``z``'s shape, summing to 1 along ``dim``.
    """
    return _SparsemaxFunction.apply(z, dim % z.dim())


# ---------------------------------------------------------------------------------------------
# Metadata features
# ---------------------------------------------------------------------------------------------


Numbers = float | Sequence[float] | np.ndarray | Tensor
"""A scalar or a column of values (one per batch item), as metadata comes in."""


def _column(values: Numbers, n: int | None = None) -> Tensor:
    column = torch.atleast_1d(torch.as_tensor(values, dtype=torch.float64)).reshape(-1)
    if n is not None and column.numel() == 1 and n > 1:
        column = column.expand(n)
    if n is not None and column.numel() != n:
        raise ValueError(f"expected {n} values, got {column.numel()}")
    return column


def _cyclic(values: Numbers | None, period: float, n: int) -> tuple[Tensor, Tensor, Tensor]:
    """sin, cos of the phase and a presence flag; missing (None/NaN) gives zeros, flag 0."""
    if values is None:
        zeros = torch.zeros(n, dtype=torch.float64)
        return zeros, zeros, zeros
    column = _column(values, n)
    present = ~torch.isnan(column)
    phase = 2 * math.pi * torch.nan_to_num(column) / period
    flag = present.to(torch.float64)
    return torch.sin(phase) * flag, torch.cos(phase) * flag, flag


def metadata_features(
    lat: Numbers, lon: Numbers, month: Numbers | None = None, hour: Numbers | None = None
) -> Tensor:
    """Encode location and time as a ``(B, 10)`` float32 tensor for the metadata fusion.

    Cyclic quantities are encoded as sin/cos so that December sits next to January and
    longitude 180 next to -180. Month and hour are often unknown (satellite tiles, old
    recordings): missing values give zeros *and* a presence flag of 0, so the model can tell
    "unknown" from "midnight".

    Layout (column: meaning):
        0 sin(lat), 1 cos(lat), 2 sin(lon), 3 cos(lon) (degrees, converted to radians);
        4 sin(2π (month - 1) / 12), 5 cos(2π (month - 1) / 12), 6 month present (1/0);
        7 sin(2π hour / 24), 8 cos(2π hour / 24), 9 hour present (1/0).

    Args:
        lat: Latitude(s) in degrees, in [-90, 90]; a scalar or a sequence/array/tensor.
        lon: Longitude(s) in degrees (any range; it is periodic).
        month: Month(s) 1..12, None if unknown for all, NaN where unknown for one.
        hour: Local hour(s) of day in [0, 24), fractions allowed; None/NaN as for month.

    Returns:
        ``(B, METADATA_DIM)`` float32.

    Raises:
        ValueError: Latitude out of range, NaN lat/lon, or lengths that do not match.
    """
    lat_t = _column(lat)
    n = lat_t.numel()
    lon_t = _column(lon, n)
    if torch.isnan(lat_t).any() or torch.isnan(lon_t).any():
        raise ValueError("lat/lon must not be NaN (pass metadata=None for samples without)")
    if (lat_t.abs() > 90).any():
        raise ValueError("latitude must be within [-90, 90] degrees")
    lat_r, lon_r = torch.deg2rad(lat_t), torch.deg2rad(lon_t)
    month_t = None if month is None else _column(month, n) - 1
    columns = [torch.sin(lat_r), torch.cos(lat_r), torch.sin(lon_r), torch.cos(lon_r)]
    columns += _cyclic(month_t, 12.0, n)
    columns += _cyclic(hour, 24.0, n)
    return torch.stack(columns, dim=1).to(torch.float32)


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------


class ProjectionHead(nn.Module):
    """LayerNorm → Linear → GELU → (Dropout) → LayerNorm → Linear, applied to every token.

    The first LayerNorm matters: frozen encoders differ wildly in scale (EfficientNet cells vs
    MiniLM word pieces), and the codebook scores are dot products, so every modality must
    arrive at a comparable norm.
    """

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(in_dim),
            nn.Linear(in_dim, out_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.LayerNorm(out_dim),
            nn.Linear(out_dim, out_dim),
        )

    def forward(self, tokens: Tensor) -> Tensor:
        """``(B, T, in_dim)`` → ``(B, T, out_dim)``."""
        return self.net(tokens)


class ConceptCodebook(nn.Module):
    """``K`` learnable concept vectors; turns a token sequence into a sparse concept mix."""

    def __init__(
        self,
        num_concepts: int,
        dim: int,
        temperature: float,
        scale_by_sqrt_dim: bool = True,
        init_std: float = 1.0,
    ) -> None:
        super().__init__()
        self.concepts = nn.Parameter(torch.randn(num_concepts, dim) * init_std)
        self.temperature = float(temperature)
        self.scale = (1.0 / math.sqrt(dim) if scale_by_sqrt_dim else 1.0) / self.temperature

    def forward(self, queries: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Score, pool and mix.

        Args:
            queries: ``(B, T, D)`` projected tokens.
            mask: ``(B, T)`` True for real tokens.

        Returns:
            ``(embedding (B, D) unit, weights (B, K), token_scores (B, T, K))``; token scores of
            padding positions are ``-inf``.
        """
        scores = (queries @ self.concepts.t()) * self.scale
        scores = scores.masked_fill(~mask.unsqueeze(-1), float("-inf"))
        weights = sparsemax(scores.amax(dim=1), dim=-1)
        embedding = F.normalize(weights @ self.concepts, dim=-1)
        return embedding, weights, scores


class MetadataFusion(nn.Module):
    """Fuses location/time features into the image's projected tokens.

    A one-layer Transformer runs over two tokens, ``[image token, metadata token]``, where the
    image token is the masked mean of the projected image tokens; its output at the image
    position goes through a zero-initialised Linear and is *added to every image token*
    before the codebook. So metadata acts as a per-sample bias on the concept scores ("this
    coast, in July, at dawn, evokes these concepts"), conditioned on the image content; patch
    differences, hence the local concept maps, stay the image's own. The zero init (as
    adaLN-Zero in DiT) makes a fresh model ignore metadata until training finds it useful, and
    a dropped sample goes down exactly the no-metadata path.
    """

    def __init__(self, metadata_dim: int, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(metadata_dim, dim), nn.GELU(), nn.Linear(dim, dim))
        self.type_embedding = nn.Parameter(torch.zeros(2, dim))
        self.layer = nn.TransformerEncoderLayer(
            d_model=dim,
            nhead=heads,
            dim_feedforward=2 * dim,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.out = nn.Linear(dim, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, queries: Tensor, mask: Tensor, metadata: Tensor, keep: Tensor) -> Tensor:
        """Return the image tokens shifted by the metadata bias.

        Args:
            queries: ``(B, T, D)`` projected image tokens.
            mask: ``(B, T)`` True for real tokens.
            metadata: ``(B, M)`` rows of :func:`metadata_features`.
            keep: ``(B,)`` bool, False where this sample's metadata is dropped.
        """
        weights = mask.unsqueeze(-1).to(queries.dtype)
        pooled = (queries * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        sequence = torch.stack([pooled, self.embed(metadata)], dim=1) + self.type_embedding
        bias = self.out(self.layer(sequence)[:, 0])
        return queries + bias.unsqueeze(1) * keep.to(queries.dtype).view(-1, 1, 1)


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


@dataclass
class ModalityOutput:
    """What Sat2Sound returns for one modality of a batch of ``B`` items.

    Attributes:
        embedding: ``(B, D)`` unit vectors in the shared space.
        weights: ``(B, K)`` sparse concept weights summing to 1; None without the codebook.
        token_scores: ``(B, T, K)`` per-token concept scores ``s_tk`` (``-inf`` at padding),
            for local alignment and concept maps; None without the codebook.
    """

    embedding: Tensor
    weights: Tensor | None = None
    token_scores: Tensor | None = None


MODALITY_KEYS: dict[str, str] = {
    "image": "image",
    "audio": "audio",
    "audio_caption": "text",
    "image_caption": "text",
}
"""Output name → projection head; batch keys are ``{name}_tokens`` and ``{name}_mask``."""


class Sat2Sound(nn.Module):
    """Projection heads, the shared concept codebook, optional metadata fusion, logit scale.

    Attributes:
        config: The :class:`Sat2SoundConfig` it was built from.
        heads: ``image``, ``audio`` and ``text`` projection heads.
        codebook: The :class:`ConceptCodebook` (None when ``use_codebook`` is False).
        metadata_fusion: The :class:`MetadataFusion` (None when ``use_metadata`` is False).
        logit_scale: Learnable log of the contrastive logit multiplier; use
            :meth:`clamped_logit_scale` to read it.
    """

    def __init__(self, config: Sat2SoundConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or Sat2SoundConfig()
        dim = config.embed_dim
        self.heads = nn.ModuleDict(
            {
                "image": ProjectionHead(config.image_dim, dim, config.dropout),
                "audio": ProjectionHead(config.audio_dim, dim, config.dropout),
                "text": ProjectionHead(config.text_dim, dim, config.dropout),
            }
        )
        self.codebook = (
            ConceptCodebook(
                config.num_concepts,
                dim,
                config.concept_temperature,
                config.scale_by_sqrt_dim,
                config.codebook_init_std,
            )
            if config.use_codebook
            else None
        )
        self.metadata_fusion = (
            MetadataFusion(config.metadata_dim, dim, config.metadata_heads, config.dropout)
            if config.use_metadata
            else None
        )
        self.logit_scale = nn.Parameter(torch.tensor(math.log(config.logit_scale_init)))

    def clamped_logit_scale(self) -> Tensor:
        """The logit multiplier ``exp(logit_scale)``, clamped to ``≤ logit_scale_max``.

        Clamping in log space caps the multiplier at 100 (CLIP's choice) so that a few easy
        batches cannot make the softmax arbitrarily sharp.
        """
        return self.logit_scale.clamp(max=math.log(self.config.logit_scale_max)).exp()

    # -- encoding ---------------------------------------------------------------------------

    def encode_image(
        self, tokens: Tensor, mask: Tensor | None = None, metadata: Tensor | None = None
    ) -> ModalityOutput:
        """Embed image tokens (feature-map cells), optionally with location/time metadata.

        Args:
            tokens: ``(B, T, image_dim)``, or ``(B, image_dim)`` for a pooled vector.
            mask: ``(B, T)`` True for real tokens; None when nothing is padded.
            metadata: ``(B, metadata_dim)`` from :func:`metadata_features`, or None. In
                training each sample's metadata is dropped with probability
                ``metadata_drop``; in eval it is always used.

        Raises:
            ValueError: Wrong shapes, or metadata given to a model built without
                ``use_metadata``.
        """
        if metadata is not None and self.metadata_fusion is None:
            raise ValueError("metadata given, but the model was built with use_metadata=False")
        return self._encode("image", tokens, mask, metadata)

    def encode_audio(self, tokens: Tensor, mask: Tensor | None = None) -> ModalityOutput:
        """Embed audio tokens (one per ~2.3 s aiSFX block); shapes as :meth:`encode_image`."""
        return self._encode("audio", tokens, mask)

    def encode_text(self, tokens: Tensor, mask: Tensor | None = None) -> ModalityOutput:
        """Embed text tokens (word pieces) of audio or image captions; one head for both."""
        return self._encode("text", tokens, mask)

    def forward(self, batch: Mapping[str, Tensor]) -> dict[str, ModalityOutput]:
        """Encode every modality present in a batch.

        Args:
            batch: Any of ``image_tokens``, ``audio_tokens``, ``audio_caption_tokens``,
                ``image_caption_tokens``, each with an optional ``*_mask``; ``metadata``
                (used for the image when the model has metadata fusion, ignored otherwise,
                so one data pipeline serves both kinds of model).

        Returns:
            ``{"image" | "audio" | "audio_caption" | "image_caption": ModalityOutput}`` for the
            modalities present.
        """
        metadata = batch.get("metadata") if self.metadata_fusion is not None else None
        outputs: dict[str, ModalityOutput] = {}
        for name, head in MODALITY_KEYS.items():
            tokens = batch.get(f"{name}_tokens")
            if tokens is None:
                continue
            mask = batch.get(f"{name}_mask")
            outputs[name] = self._encode(head, tokens, mask, metadata if name == "image" else None)
        return outputs

    def _encode(
        self, head: str, tokens: Tensor, mask: Tensor | None, metadata: Tensor | None = None
    ) -> ModalityOutput:
        tokens, mask = self._check(head, tokens, mask)
        return self.encode_projected(self.heads[head](tokens), mask, metadata)

    def project_image(self, tokens: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The image head's output ``(B, T, D)`` and the mask: everything before metadata.

        A map of a place at many hours runs the image encoder and this head once per tile and
        :meth:`encode_projected` once per hour (geosound/mapping/region.py caches these).
        """
        tokens, mask = self._check("image", tokens, mask)
        return self.heads["image"](tokens), mask

    def encode_projected(
        self, queries: Tensor, mask: Tensor, metadata: Tensor | None = None
    ) -> ModalityOutput:
        """Projected tokens → (metadata fusion →) codebook: the second half of every encode."""
        if metadata is not None and self.metadata_fusion is not None:
            if metadata.shape != (queries.shape[0], self.config.metadata_dim):
                raise ValueError(
                    f"metadata {tuple(metadata.shape)} should be "
                    f"{(queries.shape[0], self.config.metadata_dim)}"
                )
            keep = torch.ones(queries.shape[0], dtype=torch.bool, device=queries.device)
            if self.training and self.config.metadata_drop > 0:
                keep = torch.rand(queries.shape[0], device=queries.device) >= (
                    self.config.metadata_drop
                )
            queries = self.metadata_fusion(queries, mask, metadata.to(queries.dtype), keep)
        if self.codebook is None:
            weights = mask.unsqueeze(-1).to(queries.dtype)
            mean = (queries * weights).sum(1) / weights.sum(1)
            return ModalityOutput(F.normalize(mean, dim=-1))
        embedding, concept_weights, scores = self.codebook(queries, mask)
        return ModalityOutput(embedding, concept_weights, scores)

    def _check(self, head: str, tokens: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """Accept pooled ``(B, C)`` vectors as 1-token sequences and default the mask."""
        expected = getattr(self.config, f"{head}_dim")
        if tokens.dim() == 2:
            tokens = tokens.unsqueeze(1)
        if tokens.dim() != 3 or tokens.shape[-1] != expected:
            raise ValueError(
                f"{head} tokens {tuple(tokens.shape)} should be (B, T, {expected}) or "
                f"(B, {expected})"
            )
        if mask is None:
            return tokens, torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        if mask.dim() == 1 and tokens.shape[1] == 1:
            mask = mask.unsqueeze(1)
        if mask.shape != tokens.shape[:2]:
            raise ValueError(f"{head} mask {tuple(mask.shape)} does not match tokens")
        mask = mask.to(device=tokens.device, dtype=torch.bool)
        if not bool(mask.any(dim=1).all()):
            raise ValueError(f"{head}: every item needs at least one real (unmasked) token")
        return tokens, mask

    # -- concepts ---------------------------------------------------------------------------

    @property
    def concepts(self) -> Tensor:
        """``(K, D)`` the concept vectors (raises without a codebook)."""
        if self.codebook is None:
            raise ValueError("this model has no codebook (use_codebook=False)")
        return self.codebook.concepts


def concept_weights(output: ModalityOutput) -> Tensor:
    """``(B, K)`` concept weights of an output: "how much does this item evoke each concept".

    Raises:
        ValueError: The output came from a model without a codebook.
    """
    if output.weights is None:
        raise ValueError("no concept weights: the model was built with use_codebook=False")
    return output.weights


def top_concepts(output: ModalityOutput, k: int = 5) -> tuple[Tensor, Tensor]:
    """The ``k`` strongest concepts per item, strongest first.

    Sparsemax weights are exactly zero outside the support; entries past the support come
    back with weight 0 (their ids are then arbitrary), so callers can filter on ``weight > 0``.

    Returns:
        ``(ids (B, k) long, weights (B, k))``.
    """
    weights = concept_weights(output)
    values, ids = weights.topk(min(k, weights.shape[-1]), dim=-1)
    return ids, values


def active_concepts(output: ModalityOutput) -> Tensor:
    """``(B,)`` number of concepts with non-zero weight per item (a sparsity diagnostic)."""
    return (concept_weights(output) > 0).sum(dim=-1)
