"""SounDiT: a diffusion transformer that draws the landscape of a soundscape (METHODS.md §2).

The whole model lives in this file. It denoises latents of :mod:`geosound.models.autoencoder`
(``16×16×4`` for 64×64 tiles), predicting the noise ``ε`` (DDPM ε-prediction), conditioned on

* the **sound**: the Sat2Sound audio side (:func:`sound_condition`) — the clip's projected
  audio tokens, the codebook vectors of the concepts it evokes, and its unit embedding in the
  shared space, so a generated picture lives in the same space as the maps; or, for the
  Sound2Scene variant, a picture's image-encoder embedding (:func:`vector_condition`), which
  an audio aligner (:mod:`geosound.models.aligner`) gives a recording at sampling time;
* an optional **scene**: a text-encoder embedding of a scene word ("forest", "river"); a
  learned null scene stands in when none is given;
* the **timestep**, through adaLN-Zero modulation of every stage.

Layout, as DiT (Peebles & Xie 2023) lays out a latent transformer: the latent grid is cut into
``p×p`` patches, each a token with a fixed 2-D sin-cos position; ``depth`` blocks; a final
adaLN layer maps tokens back to patches. Each :class:`SounDiTBlock` has three conditioned
stages and the MLP, each pre-normalised, shifted and scaled from the timestep embedding, and
added back through a gate that starts at zero (adaLN-Zero, so a fresh block is the identity
and a fresh model predicts ε = 0):

1. self-attention over latent tokens;
2. cross-attention to the scene tokens;
3. TA-PMoE (:class:`PrototypeExperts`): ``M`` cross-attention experts over the sound tokens,
   mixed by a router (:class:`PrototypeRouter`) that scores the sound embedding (with the
   block's pooled tokens) against one learnable prototype per expert, with a softmax
   temperature that falls with the timestep — broad routing while the latent is mostly
   noise, sharp routing once the layout is set. ``use_moe=False`` swaps it for one plain
   multi-head cross-attention (the paper's MHCA ablation: FID 34.1 vs 28.2);
4. the MLP.

Classifier-free guidance needs the model to run without either condition; training drops the
scene (``scene_drop``) and the sound (``sound_drop``) per sample, independently, replacing
them by learned null tokens (:meth:`SounDiT.forward`'s ``keep_*``), and
:func:`guided_epsilon` combines the three predictions at sampling time.

Size presets (measured by :func:`count_flops` with torch's ``FlopCounterMode`` on one 16×16×4
latent, 5 sound tokens, 1 scene token; ``tests/test_soundit.py`` keeps the parameter counts):

    ==========  ======  =====  =====  =======  ==========  ================
    preset      hidden  depth  heads  experts  parameters  GFLOPs per image
    ==========  ======  =====  =====  =======  ==========  ================
    tiny        128     4      4      4        3.24 M      0.193
    tiny, MHCA  128     4      4      —        2.32 M      0.139
    S           384     12     6      4        82.5 M      5.19
    B           768     12     12     4        328.7 M     20.7
    ==========  ======  =====  =====  =======  ==========  ================

    (Patch 2 throughout: 64 tokens per 64×64 tile. ``tiny`` is what trains on this CPU; S
    and B are for a GPU. FLOPs count a multiply-add as two.)

Example:
    >>> model = build_soundit("tiny")
    >>> sound = SoundCondition(torch.randn(2, 3, 256), torch.ones(2, 3, dtype=torch.bool),
    ...                        torch.randn(2, 256))
    >>> model(torch.randn(2, 4, 16, 16), torch.tensor([10, 900]), sound).shape
    torch.Size([2, 4, 16, 16])
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geosound.config import check_known_fields

if TYPE_CHECKING:
    from geosound.models.sat2sound import Sat2Sound

# ---------------------------------------------------------------------------------------------
# Configuration, presets
# ---------------------------------------------------------------------------------------------


@dataclass
class SounDiTConfig:
    """Everything that defines a SounDiT model; round-trips through plain dicts.

    Attributes:
        latent_size: Edge of the latent grid (16 for 64×64 tiles through our autoencoder).
        latent_channels: Channels of the latent grid.
        patch_size: Latent cells per token along each axis.
        hidden_dim: Token width.
        depth: Number of blocks.
        heads: Attention heads (must divide ``hidden_dim``).
        mlp_ratio: MLP width as a multiple of ``hidden_dim``.
        sound_dim: Width of the sound tokens (the Sat2Sound space, 256 for the shipped model).
        scene_dim: Width of the scene tokens (MiniLM: 384).
        num_experts: ``M``, cross-attention experts of TA-PMoE.
        use_moe: False replaces TA-PMoE by one plain multi-head cross-attention (ablation).
        global_conditioning: Also add the pooled sound embedding and the pooled scene to the
            timestep embedding that drives every adaLN-Zero modulation, as DiT conditions on a
            class label. Cross-attention lets a block look at *which* sound tokens matter;
            the modulation gives every block the gist of the sound from the first step. Off by
            default (the paper's timestep-only modulation): in the 1,400-step CPU recipe it
            made no measurable difference (PSS-scene 0.225 vs 0.220, docs/soundit.md).
        router_temperature_max: Router temperature at ``t = T`` (pure noise): broad routing.
        router_temperature_min: Router temperature at ``t = 0`` (clean): sharp routing.
            Router scores are cosines in [-1, 1], so 0.1 lets one expert take most weight.
        num_train_timesteps: ``T`` of the noise schedule the timesteps refer to.
        scene_drop: Probability of dropping a sample's scene in training (CFG, scene-free use).
        sound_drop: Probability of dropping a sample's sound in training (CFG).
        frequency_dim: Width of the sinusoidal timestep features.
    """

    latent_size: int = 16
    latent_channels: int = 4
    patch_size: int = 2
    hidden_dim: int = 384
    depth: int = 12
    heads: int = 6
    mlp_ratio: float = 4.0
    sound_dim: int = 256
    scene_dim: int = 384
    num_experts: int = 4
    use_moe: bool = True
    global_conditioning: bool = False
    router_temperature_max: float = 1.0
    router_temperature_min: float = 0.1
    num_train_timesteps: int = 1000
    scene_drop: float = 0.3
    sound_drop: float = 0.1
    frequency_dim: int = 256

    def __post_init__(self) -> None:
        for name in (
            "latent_size",
            "latent_channels",
            "patch_size",
            "hidden_dim",
            "depth",
            "heads",
            "sound_dim",
            "scene_dim",
            "num_experts",
            "num_train_timesteps",
        ):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.latent_size % self.patch_size:
            raise ValueError(f"patch_size {self.patch_size} must divide {self.latent_size}")
        if self.hidden_dim % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide hidden_dim ({self.hidden_dim})")
        if not 0 < self.router_temperature_min <= self.router_temperature_max:
            raise ValueError("need 0 < router_temperature_min <= router_temperature_max")
        for name in ("scene_drop", "sound_drop"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    @property
    def num_patches(self) -> int:
        """Tokens per latent grid."""
        return (self.latent_size // self.patch_size) ** 2

    def to_dict(self) -> dict[str, Any]:
        """Plain builtins, for checkpoints and JSON."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SounDiTConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (a typo must not pass)."""
        check_known_fields(cls, data, "SounDiTConfig keys")
        return cls(**dict(data))


SOUNDIT_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"hidden_dim": 128, "depth": 4, "heads": 4},
    "S": {"hidden_dim": 384, "depth": 12, "heads": 6},
    "B": {"hidden_dim": 768, "depth": 12, "heads": 12},
}
"""Size presets (overrides of :class:`SounDiTConfig`), DiT-S/B widths; see the table above."""


def soundit_config(preset: str = "tiny", **overrides: Any) -> SounDiTConfig:
    """The config of a named preset, with fields overridden.

    Raises:
        ValueError: Unknown preset or field.
    """
    if preset not in SOUNDIT_PRESETS:
        raise ValueError(
            f"unknown SounDiT preset {preset!r}; presets: {', '.join(SOUNDIT_PRESETS)}"
        )
    return SounDiTConfig.from_dict({**SOUNDIT_PRESETS[preset], **overrides})


def build_soundit(
    preset_or_config: str | SounDiTConfig | Mapping[str, Any] = "tiny", **overrides: Any
) -> SounDiT:
    """Build a model from a preset name, a config or a config dict (e.g. from a checkpoint)."""
    if isinstance(preset_or_config, str):
        config = soundit_config(preset_or_config, **overrides)
    elif isinstance(preset_or_config, SounDiTConfig):
        config = dataclasses.replace(preset_or_config, **overrides)
    else:
        config = SounDiTConfig.from_dict({**preset_or_config, **overrides})
    return SounDiT(config)


# ---------------------------------------------------------------------------------------------
# Conditions
# ---------------------------------------------------------------------------------------------


@dataclass
class SoundCondition:
    """What SounDiT hears of a batch of ``B`` clips.

    Attributes:
        tokens: ``(B, T, sound_dim)`` sound tokens (padding anywhere the mask is False).
        mask: ``(B, T)`` True for real tokens; every row needs one.
        embedding: ``(B, sound_dim)`` the clip's pooled embedding, which the router scores.
    """

    tokens: Tensor
    mask: Tensor
    embedding: Tensor

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def index(self, rows: Tensor | slice) -> SoundCondition:
        """The condition of some rows."""
        return SoundCondition(self.tokens[rows], self.mask[rows], self.embedding[rows])

    def repeat(self, times: int) -> SoundCondition:
        """The batch repeated ``times`` over (for the guided passes of one sampling step)."""
        return SoundCondition(
            self.tokens.repeat(times, 1, 1),
            self.mask.repeat(times, 1),
            self.embedding.repeat(times, 1),
        )


@dataclass
class SceneCondition:
    """Scene tokens of a batch: ``tokens (B, S, scene_dim)`` and ``mask (B, S)``.

    The default scene is one token, the pooled text embedding of a scene word.
    """

    tokens: Tensor
    mask: Tensor

    @classmethod
    def from_pooled(cls, embeddings: Tensor) -> SceneCondition:
        """One token per item from pooled ``(B, scene_dim)`` text embeddings."""
        tokens = embeddings.unsqueeze(1)
        return cls(tokens, torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device))

    def repeat(self, times: int) -> SceneCondition:
        """The batch repeated ``times`` over."""
        return SceneCondition(self.tokens.repeat(times, 1, 1), self.mask.repeat(times, 1))


SOUND_CONCEPT_TOKENS = 8
"""Codebook vectors of a clip's strongest concepts added to its sound tokens."""


@torch.no_grad()
def sound_condition(
    sat2sound: Sat2Sound,
    audio_tokens: Tensor,
    audio_mask: Tensor | None = None,
    concept_tokens: int = SOUND_CONCEPT_TOKENS,
) -> SoundCondition:
    """The sound side of SounDiT from raw audio-encoder tokens, through a Sat2Sound model.

    Sound tokens are the projected audio tokens (one per ~2.3 s block: *when* something is
    heard) followed by the codebook vectors of the clip's ``concept_tokens`` strongest concepts,
    each scaled by its sparsemax weight (*what* is heard, in the words of the shared space;
    inactive concepts are masked). The embedding is the clip's unit vector in the shared space.
    Without a codebook there are no concept tokens.

    Args:
        sat2sound: A trained Sat2Sound model (eval mode).
        audio_tokens: ``(B, T, audio_dim)`` audio encoder tokens.
        audio_mask: ``(B, T)`` True for real blocks (None: all real).
        concept_tokens: How many concept tokens to add.
    """
    queries, mask = sat2sound._check("audio", audio_tokens, audio_mask)
    projected = sat2sound.heads["audio"](queries)
    output = sat2sound.encode_projected(projected, mask)
    if output.weights is None or concept_tokens < 1:
        return SoundCondition(projected, mask, output.embedding)
    weights, ids = output.weights.topk(min(concept_tokens, output.weights.shape[-1]), dim=-1)
    concepts = sat2sound.concepts[ids] * weights.unsqueeze(-1)
    tokens = torch.cat([projected, concepts], dim=1)
    return SoundCondition(tokens, torch.cat([mask, weights > 0], dim=1), output.embedding)


def vector_condition(embeddings: Tensor) -> SoundCondition:
    """A condition of one vector per row: the unit vector as the only token and the router's.

    This is the Sound2Scene condition: a generator trained on pictures alone is conditioned
    on each tile's own embedding by the frozen image encoder, and at sampling time
    :class:`~geosound.models.aligner.AudioAligner` puts a recording into the same space; the
    backbone stays SounDiT's. It is also how a separated source (one vector, no tokens) is
    given to a generator.

    Args:
        embeddings: ``(B, D)`` pooled image-encoder features, aligned audio vectors, or
            separated sources' embeddings.
    """
    unit = F.normalize(embeddings.float(), dim=-1)
    mask = torch.ones(len(unit), 1, dtype=torch.bool, device=unit.device)
    return SoundCondition(unit.unsqueeze(1), mask, unit)


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------


def sincos_2d(dim: int, grid: int) -> np.ndarray:
    """Fixed 2-D sin-cos positions ``(grid², dim)``: half the channels per axis.

    Fixed rather than learned so a model trained on one grid size reads another (a 128-px
    tile) with positions it has a meaning for.
    """
    if dim % 4:
        raise ValueError(f"position width {dim} must be a multiple of 4")
    quarter = dim // 4
    frequencies = 1.0 / 10000 ** (np.arange(quarter, dtype=np.float64) / quarter)
    rows, cols = np.meshgrid(np.arange(grid, dtype=np.float64), np.arange(grid), indexing="ij")
    parts = []
    for axis in (rows.reshape(-1), cols.reshape(-1)):
        angles = np.outer(axis, frequencies)
        parts += [np.sin(angles), np.cos(angles)]
    return np.concatenate(parts, axis=1).astype(np.float32)


def timestep_features(timesteps: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal features ``(B, dim)`` of (possibly fractional) timesteps."""
    half = dim // 2
    frequencies = torch.exp(
        -math.log(max_period)
        * torch.arange(half, dtype=torch.float32, device=timesteps.device)
        / half
    )
    angles = timesteps.float().unsqueeze(1) * frequencies.unsqueeze(0)
    features = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    return F.pad(features, (0, dim % 2))


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """adaLN: per-sample shift and scale of normalised tokens ``(B, N, H)``."""
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def _key_mask(mask: Tensor | None) -> Tensor | None:
    """A ``(B, S)`` keep-mask as what ``scaled_dot_product_attention`` broadcasts."""
    return None if mask is None else mask[:, None, None, :]


class Attention(nn.Module):
    """Multi-head attention of queries ``x`` over ``context`` (itself when None)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim)
        self.to_kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(
        self, x: Tensor, context: Tensor | None = None, mask: Tensor | None = None
    ) -> Tensor:
        """``(B, N, H)`` → ``(B, N, H)``; ``mask (B, S)`` True for context tokens to attend."""
        context = x if context is None else context
        batch, n, dim = x.shape
        q = self.to_q(x).view(batch, n, self.heads, -1).transpose(1, 2)
        k, v = self.to_kv(context).view(batch, context.shape[1], 2, self.heads, -1).unbind(2)
        attended = F.scaled_dot_product_attention(
            q, k.transpose(1, 2), v.transpose(1, 2), attn_mask=_key_mask(mask)
        )
        return self.out(attended.transpose(1, 2).reshape(batch, n, dim))


class PrototypeRouter(nn.Module):
    """TA-PMoE's router: ``g = softmax(cos(r(h, e_sound), P_m) / τ(t))``.

    ``r`` is a linear map of the sound embedding and the mean of the block's tokens; ``P_m``
    are the experts' learnable prototypes. Cosine scores lie in [-1, 1], so the temperature
    alone sets how decisive routing can be: ``τ(t)`` runs linearly from ``temperature_min``
    at ``t = 0`` to ``temperature_max`` at ``t = T``, so noisy steps (layout not yet decided)
    share the sound among experts and clean steps commit to the ones it matches.
    """

    def __init__(
        self,
        dim: int,
        num_experts: int,
        temperature_min: float,
        temperature_max: float,
        num_train_timesteps: int,
    ) -> None:
        super().__init__()
        self.query = nn.Linear(2 * dim, dim)
        self.prototypes = nn.Parameter(torch.randn(num_experts, dim))
        self.temperature_min = float(temperature_min)
        self.temperature_max = float(temperature_max)
        self.num_train_timesteps = int(num_train_timesteps)

    def temperature(self, timesteps: Tensor) -> Tensor:
        """``τ(t)`` per sample, ``(B,)``."""
        fraction = (timesteps.float() / self.num_train_timesteps).clamp(0.0, 1.0)
        return self.temperature_min + (self.temperature_max - self.temperature_min) * fraction

    def forward(self, tokens: Tensor, sound: Tensor, timesteps: Tensor) -> Tensor:
        """Expert weights ``(B, M)`` summing to 1 from tokens ``(B, N, H)``, sound ``(B, H)``."""
        query = self.query(torch.cat([sound, tokens.mean(dim=1)], dim=-1))
        scores = F.normalize(query, dim=-1) @ F.normalize(self.prototypes, dim=-1).t()
        return torch.softmax(scores / self.temperature(timesteps).unsqueeze(1), dim=-1)


class PrototypeExperts(nn.Module):
    """TA-PMoE: ``M`` cross-attention experts over the sound tokens, mixed by the router.

    Every expert runs on every sample (the mixture is dense: with ``M = 4`` experts of a
    16×16 latent there is nothing to save by dispatching), batched as one einsum over the
    expert axis rather than a Python loop over experts.
    """

    def __init__(self, config: SounDiTConfig) -> None:
        super().__init__()
        dim, experts = config.hidden_dim, config.num_experts
        self.heads = config.heads
        self.router = PrototypeRouter(
            dim,
            experts,
            config.router_temperature_min,
            config.router_temperature_max,
            config.num_train_timesteps,
        )
        self.to_q = nn.Parameter(torch.empty(experts, dim, dim))
        self.to_kv = nn.Parameter(torch.empty(experts, dim, 2 * dim))
        self.out = nn.Parameter(torch.empty(experts, dim, dim))
        self.q_bias = nn.Parameter(torch.zeros(experts, dim))
        self.kv_bias = nn.Parameter(torch.zeros(experts, 2 * dim))
        self.out_bias = nn.Parameter(torch.zeros(experts, dim))
        for weight in (self.to_q, self.to_kv, self.out):
            for expert in weight:
                nn.init.xavier_uniform_(expert)

    def forward(
        self, x: Tensor, context: Tensor, mask: Tensor, sound: Tensor, timesteps: Tensor
    ) -> Tensor:
        """Mix of the experts' cross-attention outputs, ``(B, N, H)``.

        Args:
            x: ``(B, N, H)`` modulated latent tokens.
            context: ``(B, T, H)`` projected sound tokens.
            mask: ``(B, T)`` True for real sound tokens.
            sound: ``(B, H)`` projected sound embedding, for the router.
            timesteps: ``(B,)`` diffusion timesteps, for the router's temperature.
        """
        batch, n, dim = x.shape
        experts, heads, length = self.to_q.shape[0], self.heads, context.shape[1]
        q = torch.einsum("bnh,mhd->bmnd", x, self.to_q) + self.q_bias[None, :, None]
        kv = torch.einsum("bth,mhd->bmtd", context, self.to_kv) + self.kv_bias[None, :, None]
        k, v = kv.chunk(2, dim=-1)

        def split(tensor: Tensor, tokens: int) -> Tensor:
            return tensor.reshape(batch * experts, tokens, heads, -1).transpose(1, 2)

        key_mask = mask.repeat_interleave(experts, dim=0)[:, None, None, :]
        attended = F.scaled_dot_product_attention(
            split(q, n), split(k, length), split(v, length), attn_mask=key_mask
        )
        attended = attended.transpose(1, 2).reshape(batch, experts, n, dim)
        outputs = torch.einsum("bmnh,mhd->bmnd", attended, self.out) + self.out_bias[None, :, None]
        weights = self.router(x, sound, timesteps)
        return torch.einsum("bm,bmnd->bnd", weights, outputs)


class PlainSoundAttention(nn.Module):
    """The ablation of TA-PMoE: one multi-head cross-attention over the sound tokens."""

    def __init__(self, config: SounDiTConfig) -> None:
        super().__init__()
        self.attention = Attention(config.hidden_dim, config.heads)

    def forward(
        self, x: Tensor, context: Tensor, mask: Tensor, sound: Tensor, timesteps: Tensor
    ) -> Tensor:
        """Same signature as :class:`PrototypeExperts`; ``sound`` and ``timesteps`` unused."""
        return self.attention(x, context, mask)


STAGES = ("self", "scene", "sound", "mlp")
"""The four modulated sub-layers of a block, in order."""


class SounDiTBlock(nn.Module):
    """Self-attention, scene cross-attention, TA-PMoE (or MHCA), MLP — each adaLN-Zero."""

    def __init__(self, config: SounDiTConfig) -> None:
        super().__init__()
        dim = config.hidden_dim
        self.norms = nn.ModuleList(
            [nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6) for _ in STAGES]
        )
        self.self_attention = Attention(dim, config.heads)
        self.scene_attention = Attention(dim, config.heads)
        self.sound_attention: PrototypeExperts | PlainSoundAttention = (
            PrototypeExperts(config) if config.use_moe else PlainSoundAttention(config)
        )
        hidden = int(dim * config.mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim)
        )
        # Shift, scale and gate per stage; zero so the block starts as the identity.
        modulation = nn.Linear(dim, 3 * len(STAGES) * dim)
        nn.init.zeros_(modulation.weight)
        nn.init.zeros_(modulation.bias)
        self.modulation = nn.Sequential(nn.SiLU(), modulation)

    def forward(
        self,
        x: Tensor,
        condition: Tensor,
        scene: tuple[Tensor, Tensor],
        sound: tuple[Tensor, Tensor, Tensor],
        timesteps: Tensor,
    ) -> Tensor:
        """One block.

        Args:
            x: ``(B, N, H)`` latent tokens.
            condition: ``(B, H)`` timestep embedding (what adaLN modulates from).
            scene: Projected scene tokens ``(B, S, H)`` and their mask.
            sound: Projected sound tokens ``(B, T, H)``, their mask, and the projected sound
                embedding ``(B, H)``.
            timesteps: ``(B,)`` for the router's temperature.
        """
        chunks = self.modulation(condition).chunk(3 * len(STAGES), dim=-1)
        (shift_a, scale_a, gate_a, shift_c, scale_c, gate_c,
         shift_s, scale_s, gate_s, shift_m, scale_m, gate_m) = chunks  # fmt: skip
        h = modulate(self.norms[0](x), shift_a, scale_a)
        x = x + gate_a.unsqueeze(1) * self.self_attention(h)
        h = modulate(self.norms[1](x), shift_c, scale_c)
        x = x + gate_c.unsqueeze(1) * self.scene_attention(h, scene[0], scene[1])
        h = modulate(self.norms[2](x), shift_s, scale_s)
        x = x + gate_s.unsqueeze(1) * self.sound_attention(h, *sound, timesteps)
        h = modulate(self.norms[3](x), shift_m, scale_m)
        return x + gate_m.unsqueeze(1) * self.mlp(h)


class FinalLayer(nn.Module):
    """adaLN (shift, scale) then a linear map from tokens to patches; zero-initialised."""

    def __init__(self, dim: int, patch_values: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        modulation = nn.Linear(dim, 2 * dim)
        self.linear = nn.Linear(dim, patch_values)
        for layer in (modulation, self.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.modulation = nn.Sequential(nn.SiLU(), modulation)

    def forward(self, x: Tensor, condition: Tensor) -> Tensor:
        """``(B, N, H)`` → ``(B, N, p·p·C)``."""
        shift, scale = self.modulation(condition).chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


class SounDiT(nn.Module):
    """The denoiser ``ε_θ(z_t, t, sound, scene)``; see the module docstring.

    Attributes:
        config: The :class:`SounDiTConfig` it was built from.
        null_sound_token: Stands in for the sound tokens of a dropped (or absent) sound.
        null_sound_embedding: Stands in for the router's sound embedding then.
        null_scene_token: Stands in for the scene of a sample without one.
    """

    def __init__(self, config: SounDiTConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or SounDiTConfig()
        dim, patch = config.hidden_dim, config.patch_size
        self.patchify = nn.Conv2d(config.latent_channels, dim, patch, stride=patch)
        grid = config.latent_size // patch
        self.register_buffer(
            "positions", torch.from_numpy(sincos_2d(dim, grid)).unsqueeze(0), persistent=False
        )
        self.time_embed = nn.Sequential(
            nn.Linear(config.frequency_dim, dim), nn.SiLU(), nn.Linear(dim, dim)
        )
        self.sound_proj = nn.Sequential(
            nn.LayerNorm(config.sound_dim), nn.Linear(config.sound_dim, dim)
        )
        self.sound_embedding_proj = nn.Sequential(
            nn.LayerNorm(config.sound_dim), nn.Linear(config.sound_dim, dim)
        )
        self.scene_proj = nn.Sequential(
            nn.LayerNorm(config.scene_dim), nn.Linear(config.scene_dim, dim)
        )
        if config.global_conditioning:
            self.sound_to_condition = nn.Linear(dim, dim)
            self.scene_to_condition = nn.Linear(dim, dim)
        self.null_sound_token = nn.Parameter(torch.randn(config.sound_dim) * 0.02)
        self.null_sound_embedding = nn.Parameter(torch.randn(config.sound_dim) * 0.02)
        self.null_scene_token = nn.Parameter(torch.randn(config.scene_dim) * 0.02)
        self.blocks = nn.ModuleList([SounDiTBlock(config) for _ in range(config.depth)])
        self.final = FinalLayer(dim, patch * patch * config.latent_channels)

    # -- conditions -------------------------------------------------------------------------

    def _sound(
        self, sound: SoundCondition | None, keep: Tensor | None, batch: int, device: torch.device
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Projected sound tokens, mask and embedding; dropped rows get the null sound."""
        config = self.config
        if sound is None:
            tokens = self.null_sound_token.expand(batch, 1, config.sound_dim)
            mask = torch.ones(batch, 1, dtype=torch.bool, device=device)
            embedding = self.null_sound_embedding.expand(batch, config.sound_dim)
        else:
            tokens, mask, embedding = sound.tokens, sound.mask.bool(), sound.embedding
            if keep is not None:
                drop = ~keep.bool()
                first = torch.zeros_like(mask)
                first[:, 0] = True
                tokens = torch.where(drop[:, None, None], self.null_sound_token, tokens)
                mask = torch.where(drop[:, None], first, mask)
                embedding = torch.where(drop[:, None], self.null_sound_embedding, embedding)
        return self.sound_proj(tokens), mask, self.sound_embedding_proj(embedding)

    def _scene(
        self, scene: SceneCondition | None, keep: Tensor | None, batch: int, device: torch.device
    ) -> tuple[Tensor, Tensor]:
        """Projected scene tokens and mask; rows without a scene get the null scene."""
        if scene is None:
            tokens = self.null_scene_token.expand(batch, 1, self.config.scene_dim)
            mask = torch.ones(batch, 1, dtype=torch.bool, device=device)
        else:
            tokens, mask = scene.tokens, scene.mask.bool()
            if keep is not None:
                drop = ~keep.bool()
                first = torch.zeros_like(mask)
                first[:, 0] = True
                tokens = torch.where(drop[:, None, None], self.null_scene_token, tokens)
                mask = torch.where(drop[:, None], first, mask)
        return self.scene_proj(tokens), mask

    def condition_keep(
        self, batch: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Training's per-sample ``(keep_sound, keep_scene)``, drawn independently."""
        draws = torch.rand(2, batch, generator=generator)
        return draws[0] >= self.config.sound_drop, draws[1] >= self.config.scene_drop

    # -- forward ----------------------------------------------------------------------------

    def forward(
        self,
        latents: Tensor,
        timesteps: Tensor,
        sound: SoundCondition | None = None,
        scene: SceneCondition | None = None,
        keep_sound: Tensor | None = None,
        keep_scene: Tensor | None = None,
    ) -> Tensor:
        """Predict the noise in ``latents``.

        Args:
            latents: ``(B, C, L, L)`` noised latents ``z_t``.
            timesteps: ``(B,)`` (or a scalar) diffusion timesteps in ``[0, T)``.
            sound: The sound condition; None is the unconditional (null) sound.
            scene: The scene condition; None is the null scene.
            keep_sound: ``(B,)`` bool, False where a sample's sound is replaced by the null
                sound (classifier-free training and guidance).
            keep_scene: ``(B,)`` bool, the same for the scene.

        Returns:
            ``(B, C, L, L)`` predicted noise ``ε``.
        """
        batch, channels, size, _ = latents.shape
        config = self.config
        if (channels, size) != (config.latent_channels, config.latent_size):
            raise ValueError(
                f"latents {tuple(latents.shape)} should be "
                f"(B, {config.latent_channels}, {config.latent_size}, {config.latent_size})"
            )
        timesteps = torch.as_tensor(timesteps, device=latents.device).reshape(-1).expand(batch)
        x = self.patchify(latents).flatten(2).transpose(1, 2) + self.positions
        condition = self.time_embed(timestep_features(timesteps, config.frequency_dim))
        sound_parts = self._sound(sound, keep_sound, batch, latents.device)
        scene_parts = self._scene(scene, keep_scene, batch, latents.device)
        if config.global_conditioning:
            scene_tokens, scene_mask = scene_parts
            weights = scene_mask.unsqueeze(-1).to(scene_tokens.dtype)
            scene_pooled = (scene_tokens * weights).sum(1) / weights.sum(1).clamp_min(1.0)
            condition = (
                condition
                + self.sound_to_condition(sound_parts[2])
                + self.scene_to_condition(scene_pooled)
            )
        for block in self.blocks:
            x = block(x, condition, scene_parts, sound_parts, timesteps)
        return self._unpatchify(self.final(x, condition))

    def _unpatchify(self, patches: Tensor) -> Tensor:
        """``(B, N, p·p·C)`` → ``(B, C, L, L)``."""
        config = self.config
        patch, channels = config.patch_size, config.latent_channels
        grid = config.latent_size // patch
        batch = patches.shape[0]
        x = patches.reshape(batch, grid, grid, patch, patch, channels)
        return torch.einsum("bhwpqc->bchpwq", x).reshape(
            batch, channels, grid * patch, grid * patch
        )


# ---------------------------------------------------------------------------------------------
# Guidance, measurements
# ---------------------------------------------------------------------------------------------


def guided_epsilon(
    eps_full: Tensor,
    eps_scene: Tensor,
    eps_uncond: Tensor,
    sound_scale: float,
    scene_scale: float,
) -> Tensor:
    """Classifier-free guidance with separate scales for the scene and the sound.

    ``ε = ε(∅, ∅) + s_scene · (ε(scene, ∅) − ε(∅, ∅)) + s_sound · (ε(scene, sound) − ε(scene, ∅))``
    (the two-condition form of InstructPix2Pix): the scene term pushes towards the scene,
    the sound term towards what the sound adds on top of it. Scales of 1 give ``ε_full``
    back; 0 for both gives the unconditional prediction.

    Args:
        eps_full: Prediction with scene and sound.
        eps_scene: Prediction with the scene and the null sound.
        eps_uncond: Prediction with neither.
        sound_scale: ``s_sound``.
        scene_scale: ``s_scene``.
    """
    return (
        eps_uncond + scene_scale * (eps_scene - eps_uncond) + sound_scale * (eps_full - eps_scene)
    )


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def count_flops(model: SounDiT, sound_tokens: int = 5, scene_tokens: int = 1) -> int:
    """FLOPs of one forward pass for one image, counted by torch's ``FlopCounterMode``."""
    from torch.utils.flop_counter import FlopCounterMode

    config = model.config
    latents = torch.zeros(1, config.latent_channels, config.latent_size, config.latent_size)
    sound = SoundCondition(
        torch.zeros(1, sound_tokens, config.sound_dim),
        torch.ones(1, sound_tokens, dtype=torch.bool),
        torch.zeros(1, config.sound_dim),
    )
    scene = SceneCondition(
        torch.zeros(1, scene_tokens, config.scene_dim),
        torch.ones(1, scene_tokens, dtype=torch.bool),
    )
    with FlopCounterMode(display=False) as counter:
        model(latents, torch.tensor([500]), sound, scene)
    return int(counter.get_total_flops())
