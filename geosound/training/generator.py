"""Training SounDiT: the autoencoder of the latent space, then the diffusion transformer.

``geosound train-generator`` runs :func:`run_generator_training`, one deterministic pipeline
from the shared dev data:

1. pairs: the dev imagery (the EuroSAT RGB JPGs and the Sentinel-2 tiles in true colour)
   sonified with the dev sounds, exactly as ``geosound train`` pairs them
   (:func:`~geosound.data.sonify.sonify_dev_sets`), tiles and clips split disjointly;
2. features: each tile's RGB pixels; each pair's sound through the frozen audio encoder (the
   feature cache) and the shipped Sat2Sound audio side
   (:func:`~geosound.models.soundit.sound_condition`); each scene word through the text
   encoder — cached in the run folder as ``generator_data.npz``;
3. the autoencoder (Lightning, L1 + MSE + a small KL, dihedral flips), its latent scale, and
   its reconstruction PSNR/SSIM on the eval tiles;
4. SounDiT (Lightning): DDPM ε-prediction on posterior samples of the train latents, scene
   and sound dropped per sample for classifier-free guidance, EMA weights;
5. the checkpoint (EMA weights) and the knowledge-base arrays of the train pairs.

Every stage resumes: Lightning's ``last.ckpt`` per model, the data bundle in the run folder.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from diffusers.schedulers.scheduling_ddpm import DDPMScheduler
from torch import Tensor
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, TensorDataset
from typing_extensions import override

from geosound.atomic import atomic_path
from geosound.config import check_known_fields
from geosound.data.splits import DEV_IMAGERY, DEV_SOUNDS
from geosound.errors import DataError, InputError
from geosound.models.aligner import AudioAligner
from geosound.models.autoencoder import (
    AutoencoderConfig,
    LatentCodec,
    autoencoder_config,
    build_autoencoder,
    measure_scaling_factor,
    reconstruction_metrics,
)
from geosound.models.soundit import (
    SceneCondition,
    SoundCondition,
    SounDiT,
    build_soundit,
    count_parameters,
    vector_condition,
)
from geosound.models.soundit_checkpoint import CONDITIONS
from geosound.progress import Progress, stage
from geosound.training.fit import fit_resuming, resumable_trainer

# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


@dataclass
class GeneratorTrainConfig:
    """Settings of a generator training run; round-trips through plain dicts.

    Attributes:
        autoencoder_preset: :data:`~geosound.models.autoencoder.AUTOENCODER_PRESETS` name.
        autoencoder_epochs: Epochs over the train tiles.
        autoencoder_lr: AdamW learning rate of the autoencoder.
        preset: :data:`~geosound.models.soundit.SOUNDIT_PRESETS` name.
        model: Overrides of :class:`~geosound.models.soundit.SounDiTConfig` (``use_moe``…).
        epochs: Epochs of SounDiT over the train pairs.
        batch_size: Batch size of both models. 16, not 64: on a few thousand tiles, four times
            the optimiser steps for the same compute gave the autoencoder PSNR 27.4 dB instead
            of 25.2 (docs/soundit.md).
        learning_rate: AdamW learning rate of SounDiT (DiT's 1e-4 is for batch 256; small
            batches on few pairs learn faster with more).
        weight_decay: AdamW weight decay of SounDiT.
        ema_decay: Decay of the EMA weights (what is saved and sampled).
        num_train_timesteps: ``T`` of the DDPM schedule.
        seed: Seeds torch, numpy, the sonification and every draw.
        variants: Sonified pairs per train tile.
        eval_fraction: Share of tiles and clips held out.
        imagery: Dev imagery to use.
        sounds: Dev sound pools.
        mix_bank: Mixes per land-cover class shared by the train tiles (0: one per pair).
        gradient_clip: Gradient norm clip of both models.
        condition: What SounDiT is conditioned on. ``"sound"``: each pair's sound through the
            Sat2Sound audio side (SounDiT). ``"visual"``: each train tile's own embedding by
            the frozen image encoder, no pairs needed, plus an audio aligner trained on the
            pairs to put a recording into that space (Sound2Scene, METHODS.md §5).
        aligner_epochs: Epochs of the audio aligner (``"visual"`` only).
        aligner_lr: AdamW learning rate of the audio aligner.
    """

    autoencoder_preset: str = "tiny"
    autoencoder_epochs: int = 8
    autoencoder_lr: float = 1e-3
    preset: str = "tiny"
    model: dict[str, Any] = field(default_factory=dict)
    epochs: int = 40
    batch_size: int = 16
    learning_rate: float = 3e-4
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    num_train_timesteps: int = 1000
    seed: int = 0
    variants: int = 1
    eval_fraction: float = 0.3
    imagery: list[str] = field(default_factory=lambda: ["eurosat_rgb", "eurosat_ms"])
    sounds: list[str] = field(default_factory=lambda: ["esc50", "ambient"])
    mix_bank: int = 64
    gradient_clip: float = 1.0
    condition: str = "sound"
    aligner_epochs: int = 60
    aligner_lr: float = 1e-3

    def to_dict(self) -> dict[str, Any]:
        """Plain builtins, for checkpoints and sidecars."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GeneratorTrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        check_known_fields(cls, data, "generator training keys", InputError)
        return cls(**dict(data)).validate()

    def validate(self) -> GeneratorTrainConfig:
        """Refuse settings no run can use; returns ``self``.

        Raises:
            InputError: The setting and what it must be.
        """
        if self.condition not in CONDITIONS:
            raise InputError(
                f"condition must be one of {', '.join(CONDITIONS)}; got {self.condition!r}"
            )
        for name in ("autoencoder_epochs", "epochs", "batch_size", "variants", "aligner_epochs"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be at least 1; got {getattr(self, name)!r}")
        if not 0.0 < self.ema_decay < 1.0:
            raise InputError(f"ema_decay must be in (0, 1); got {self.ema_decay!r}")
        if not 0.0 <= self.eval_fraction < 1.0:
            raise InputError(f"eval_fraction must be in [0, 1); got {self.eval_fraction!r}")
        for name, known in (("imagery", DEV_IMAGERY), ("sounds", DEV_SOUNDS)):
            if isinstance(getattr(self, name), str):
                raise InputError(f"{name} must be a list of names; got {getattr(self, name)!r}")
            given = list(getattr(self, name))
            if not given or not set(given) <= set(known):
                raise InputError(
                    f"{name} must be some of {', '.join(known)}; got {', '.join(given) or 'none'}"
                )
        return self

    def data_settings(self) -> dict[str, Any]:
        """The settings the run's data bundle is made from: a resumed run must share them."""
        names = ("variants", "seed", "eval_fraction", "mix_bank")
        # The pairs do not depend on the order the sources are named in, nor on repeats.
        sources = {name: sorted(set(getattr(self, name))) for name in ("imagery", "sounds")}
        return {**sources, **{name: getattr(self, name) for name in names}}


def ema_decay_at(decay: float, updates: int) -> float:
    """The EMA decay after ``updates`` updates: ``min(decay, (1 + n) / (10 + n))``.

    A fixed 0.999 from the first step keeps ``0.999^n`` of the initial weights — a quarter
    after 1,400 steps (the DiT at batch 64; 0.4 % after the 5,560 at batch 16) — and
    adaLN-Zero's initial DiT predicts ε = 0, so such an average under-predicts the noise and
    sampling diverges (measured: latents of std 46 against 1 for the raw weights). The warm-up
    (as diffusers' ``EMAModel`` offers) lets the average forget its start while training is
    short.
    """
    return min(decay, (1.0 + updates) / (10.0 + updates))


def warmup_ema(decay: float) -> Callable[[Tensor, Tensor, Tensor | int], Tensor]:
    """``AveragedModel``'s ``avg_fn`` for an EMA whose decay warms up (:func:`ema_decay_at`)."""

    def average(averaged: Tensor, current: Tensor, num_averaged: Tensor | int) -> Tensor:
        rate = ema_decay_at(decay, int(num_averaged))
        return rate * averaged + (1.0 - rate) * current

    return average


def ddpm_scheduler(num_train_timesteps: int = 1000) -> DDPMScheduler:
    """The training noise schedule: DDPM's linear β from 1e-4 to 0.02 (as DiT trains)."""
    return DDPMScheduler(
        num_train_timesteps=num_train_timesteps,
        beta_schedule="linear",
        clip_sample=False,
        prediction_type="epsilon",
    )


def visual_space(image_encoder_id: str) -> str:
    """The space id of Sound2Scene conditions: the image encoder's pooled embedding."""
    return f"visual:{image_encoder_id}"


def scene_word(label: str) -> str:
    """The scene word of a land-cover class: ``"AnnualCrop"`` → ``"annual crop"``."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", str(label)).lower().strip()


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


@dataclass
class GeneratorData:
    """Everything both models train on, as arrays; saved as one ``.npz`` in the run folder.

    Attributes:
        images: ``(I, 3, H, W)`` uint8 RGB of the distinct tiles.
        image_splits: ``(I,)`` ``"train"``/``"eval"`` of each tile.
        pair_ids: ``(N,)`` pair ids.
        pair_image: ``(N,)`` row in ``images`` of each pair's tile.
        pair_splits: ``(N,)`` split of each pair.
        labels: ``(N,)`` land-cover class of each pair.
        scene_index: ``(N,)`` row in ``scene_words`` of each pair.
        lon: ``(N,)`` pair longitude (NaN where the tile is not georeferenced).
        lat: ``(N,)`` pair latitude.
        sound_tokens: ``(N, T, D)`` sound tokens (float16 on disk).
        sound_mask: ``(N, T)``.
        sound_embedding: ``(N, D)`` sound embeddings in the Sat2Sound space.
        scene_words: ``(S,)`` scene words.
        scene_embeddings: ``(S, scene_dim)`` pooled text embeddings.
        meta: Encoder ids, the sound space, the visual space and the data settings it was
            made from (JSON-able builtins).
        audio_tokens: ``(N, T, audio_dim)`` the frozen audio encoder's tokens of each pair
            (float16 on disk), what the Sound2Scene aligner reads; None in bundles of tests
            that do not need them.
        audio_mask: ``(N, T)``.
        image_embedding: ``(I, image_dim)`` each tile's pooled image-encoder embedding,
            what the Sound2Scene generator is conditioned on.
    """

    images: np.ndarray
    image_splits: np.ndarray
    pair_ids: np.ndarray
    pair_image: np.ndarray
    pair_splits: np.ndarray
    labels: np.ndarray
    scene_index: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    sound_tokens: np.ndarray
    sound_mask: np.ndarray
    sound_embedding: np.ndarray
    scene_words: np.ndarray
    scene_embeddings: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    audio_tokens: np.ndarray | None = None
    audio_mask: np.ndarray | None = None
    image_embedding: np.ndarray | None = None

    def save(self, path: Path) -> Path:
        """One ``.npz``, written atomically."""
        import json

        arrays = {
            f.name: _without_objects(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if f.name != "meta" and getattr(self, f.name) is not None
        }
        for name in HALF_PRECISION:
            if name in arrays:
                arrays[name] = arrays[name].astype(np.float16)
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, meta=np.array(json.dumps(self.meta)), **arrays)
        return path

    @classmethod
    def load(cls, path: Path) -> GeneratorData:
        """Inverse of :meth:`save`.

        Raises:
            DataError: Not a bundle of this kind.
        """
        import json

        optional = {"audio_tokens", "audio_mask", "image_embedding"}
        try:
            with np.load(path, allow_pickle=False) as data:
                values = {
                    f.name: data[f.name]
                    for f in dataclasses.fields(cls)
                    if f.name != "meta" and (f.name in data.files or f.name not in optional)
                }
                meta = json.loads(str(data["meta"]))
        except (OSError, KeyError, ValueError) as error:
            raise DataError(f"not a generator data bundle ({error})", path) from None
        for name in HALF_PRECISION:
            if name in values:
                values[name] = values[name].astype(np.float32)
        return cls(**values, meta=meta)

    def audio(self, rows: np.ndarray | Tensor) -> tuple[Tensor, Tensor]:
        """Audio-encoder tokens and mask of some pairs (what the aligner reads).

        Raises:
            DataError: The bundle was written without them.
        """
        if self.audio_tokens is None or self.audio_mask is None:
            raise DataError(
                "this generator data bundle has no audio-encoder tokens; delete it and rerun "
                "geosound train-generator to write them"
            )
        index = torch.as_tensor(np.asarray(rows))
        return torch.from_numpy(self.audio_tokens)[index], torch.from_numpy(self.audio_mask)[index]

    def visual(self, tiles: np.ndarray | Tensor) -> SoundCondition:
        """The Sound2Scene condition of some tiles: their own image-encoder embedding.

        Raises:
            DataError: The bundle was written without image embeddings.
        """
        if self.image_embedding is None:
            raise DataError(
                "this generator data bundle has no image embeddings; delete it and rerun "
                "geosound train-generator to write them"
            )
        index = torch.as_tensor(np.asarray(tiles))
        return vector_condition(torch.from_numpy(self.image_embedding)[index])

    def per_tile(self, values: np.ndarray) -> np.ndarray:
        """A per-pair array as one value per tile (the pairs of a tile share its land cover).

        Tiles without a pair get the dtype's zero (``""`` for strings).
        """
        out = np.zeros(len(self.images), dtype=np.asarray(values).dtype)
        out[self.pair_image] = values
        return out

    def images_float(self, rows: np.ndarray | None = None) -> Tensor:
        """Tiles as float ``(n, 3, H, W)`` in [0, 1]."""
        pixels = self.images if rows is None else self.images[rows]
        return torch.from_numpy(pixels.astype(np.float32) / 255.0)

    def sound(self, rows: np.ndarray | Tensor) -> SoundCondition:
        """Sound condition of some pairs."""
        index = torch.as_tensor(np.asarray(rows))
        return SoundCondition(
            torch.from_numpy(self.sound_tokens)[index],
            torch.from_numpy(self.sound_mask)[index],
            torch.from_numpy(self.sound_embedding)[index],
        )


def prepare_generator_data(
    out_dir: Path,
    config: GeneratorTrainConfig,
    data_dir: Path | None = None,
    cache_root: Path | None = None,
    progress: Progress | None = None,
) -> GeneratorData:
    """Pairs, pixels, sound and scene features of a run (read back from the run folder).

    Raises:
        DataError: The dev data is missing or malformed.
    """
    bundle = out_dir / "generator_data.npz"
    if bundle.is_file():
        return _resumed_bundle(bundle, config)
    from geosound.data.feature_cache import FeatureCache
    from geosound.data.features import audio_key, load_audio_spec
    from geosound.data.sonify import sonify_dev_sets
    from geosound.encoders import DEFAULT_ENCODERS, get_encoder, pad_tokens
    from geosound.geo.bands import to_uint8
    from geosound.geo.images import read_image_ref
    from geosound.models.default import load_default_model
    from geosound.models.soundit import sound_condition

    report = progress or (lambda fraction, message: None)
    pairs, _ = sonify_dev_sets(
        data_dir,
        variants=config.variants,
        seed=config.seed,
        eval_fraction=config.eval_fraction,
        progress=stage(progress, 0.0, 0.1),
        imagery=config.imagery,
        sounds=config.sounds,
        mix_bank=config.mix_bank or None,
    )
    refs = list(dict.fromkeys(pairs["image"].astype(str)))
    row_of = {ref: i for i, ref in enumerate(refs)}
    report(0.1, f"reading {len(refs)} tiles")
    images = np.stack([to_uint8(read_image_ref(ref)) for ref in refs])
    image_splits = (
        pairs.drop_duplicates("image").set_index("image").loc[refs, "split"].astype(str).to_numpy()
    )
    report(0.3, f"encoding {len(pairs)} sounds")
    audio_encoder = get_encoder(DEFAULT_ENCODERS["audio"])
    specs = [str(spec) for spec in pairs["audio"]]
    features = FeatureCache(cache_root, audio_encoder).encode(
        specs,
        keys=[audio_key(spec) for spec in specs],
        prepare=load_audio_spec,
        progress=stage(progress, 0.3, 0.9),
    )
    tokens, mask = pad_tokens([torch.from_numpy(f.tokens) for f in features])
    loaded = load_default_model()
    sounds = [
        sound_condition(loaded.model, tokens[start : start + 256], mask[start : start + 256])
        for start in range(0, len(tokens), 256)
    ]
    image_encoder = get_encoder(DEFAULT_ENCODERS["image"])
    report(0.9, f"encoding {len(images)} tiles")
    image_embedding = FeatureCache(cache_root, image_encoder).encode_pooled(
        list(images.astype(np.float32) / 255.0), progress=stage(progress, 0.9, 0.95)
    )
    text_encoder = get_encoder(DEFAULT_ENCODERS["text"])
    labels = pairs["label"].astype(str).to_numpy()
    words = sorted({scene_word(label) for label in labels})
    report(0.95, "encoding scene words")
    scene_embeddings = text_encoder.encode(words).pooled.numpy().astype(np.float32)
    data = GeneratorData(
        images=images,
        image_splits=image_splits,
        pair_ids=pairs["id"].astype(str).to_numpy(),
        pair_image=np.array([row_of[ref] for ref in pairs["image"].astype(str)], np.int64),
        pair_splits=pairs["split"].astype(str).to_numpy(),
        labels=labels,
        scene_index=np.array([words.index(scene_word(label)) for label in labels], np.int64),
        lon=_located(pairs, "lon"),
        lat=_located(pairs, "lat"),
        sound_tokens=torch.cat([s.tokens for s in sounds]).numpy().astype(np.float32),
        sound_mask=torch.cat([s.mask for s in sounds]).numpy(),
        sound_embedding=torch.cat([s.embedding for s in sounds]).numpy().astype(np.float32),
        scene_words=np.array(words),
        scene_embeddings=scene_embeddings,
        meta={
            "data_settings": config.data_settings(),
            "sound_space": f"sat2sound:{loaded.model_id}",
            "visual_space": visual_space(image_encoder.id),
            "encoders": {
                "audio": audio_encoder.id,
                "image": image_encoder.id,
                "text": text_encoder.id,
            },
        },
        audio_tokens=tokens.numpy().astype(np.float32),
        audio_mask=mask.numpy(),
        image_embedding=image_embedding.astype(np.float32),
    )
    data.save(bundle)
    report(1.0, "generator data ready")
    return data


def _resumed_bundle(bundle: Path, config: GeneratorTrainConfig) -> GeneratorData:
    """The run folder's data bundle, if it was made from ``config``'s data settings.

    Bundles from before the settings were recorded are taken as they are.

    Raises:
        InputError: The bundle was made from other dev data or other pairs.
    """
    data = GeneratorData.load(bundle)
    recorded = data.meta.get("data_settings")
    if recorded is None:
        return data
    recorded = GeneratorTrainConfig(**recorded).data_settings()  # both in one canonical form
    wanted = config.data_settings()
    if recorded != wanted:
        changed = ", ".join(
            f"{name} {recorded.get(name)!r} (now {value!r})"
            for name, value in wanted.items()
            if recorded.get(name) != value
        )
        raise InputError(
            f"this run folder's generator data was made with {changed}; give another -o, or "
            "delete generator_data.npz to remake it",
            bundle,
        )
    return data


HALF_PRECISION = ("sound_tokens", "audio_tokens")
"""Token arrays kept as float16 on disk: the bundle's bulk, and far finer than training needs."""


def _without_objects(array: np.ndarray) -> np.ndarray:
    """Strings as fixed-width unicode, since a bundle is read back without pickle.

    pandas hands out object arrays, which ``np.load(allow_pickle=False)`` refuses.
    """
    return array.astype(str) if array.dtype == object else array


def _located(pairs: Any, column: str) -> np.ndarray:
    """Lon or lat, NaN for tiles that carry no location (``located`` False)."""
    values = pairs[column].to_numpy(dtype=np.float64).copy()
    if "located" in pairs.columns:
        values[~pairs["located"].astype(bool).to_numpy()] = np.nan
    return values


# ---------------------------------------------------------------------------------------------
# Lightning modules
# ---------------------------------------------------------------------------------------------


def dihedral(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One random flip/rotation of the square per batch: tiles seen from above have no up."""
    k = int(torch.randint(0, 4, (1,), generator=generator))
    images = torch.rot90(images, k, dims=(2, 3))
    return images.flip(3) if bool(torch.randint(0, 2, (1,), generator=generator)) else images


class AutoencoderModule(L.LightningModule):
    """Trains the KL autoencoder: L1 + MSE reconstruction plus ``kl_weight`` · KL."""

    def __init__(self, codec: LatentCodec, config: AutoencoderConfig, learning_rate: float) -> None:
        super().__init__()
        self.codec = codec
        self.config = config
        self.learning_rate = learning_rate

    @override
    def training_step(self, batch: list[Tensor], batch_idx: int) -> Tensor:
        images = dihedral(batch[0])
        posterior = self.codec.vae.encode(images * 2.0 - 1.0).latent_dist
        decoded = self.codec.vae.decode(posterior.sample()).sample
        target = images * 2.0 - 1.0
        reconstruction = F.l1_loss(decoded, target) + F.mse_loss(decoded, target)
        kl = posterior.kl().mean() / images[0].numel()
        loss = reconstruction + self.config.kl_weight * kl
        self.log_dict(
            {"ae_reconstruction": reconstruction.detach(), "ae_kl": kl.detach()},
            on_epoch=True,
            on_step=False,
            batch_size=len(images),
        )
        return loss

    @override
    def configure_optimizers(self) -> Any:
        return torch.optim.AdamW(self.codec.parameters(), lr=self.learning_rate)


class SounDiTModule(L.LightningModule):
    """Trains SounDiT with DDPM ε-prediction and keeps its EMA weights.

    A batch is pair indices; the latents are fresh posterior samples ``(μ + σ·n) · scale``
    of the pairs' tiles, so the model never sees exactly the same latent twice.

    Args:
        model: The denoiser.
        latent_mean: ``(I, C, L, L)`` scaled posterior means of every tile.
        latent_std: ``(I, C, L, L)`` scaled posterior standard deviations.
        pair_image: ``(N,)`` tile of each pair.
        sound: Sound condition of every pair.
        scene_embeddings: ``(S, scene_dim)`` pooled scene embeddings.
        scene_index: ``(N,)`` scene of each pair.
        config: The training settings.
    """

    def __init__(
        self,
        model: SounDiT,
        latent_mean: Tensor,
        latent_std: Tensor,
        pair_image: Tensor,
        sound: SoundCondition,
        scene_embeddings: Tensor,
        scene_index: Tensor,
        config: GeneratorTrainConfig,
    ) -> None:
        super().__init__()
        self.model = model
        self.ema = AveragedModel(model, avg_fn=warmup_ema(config.ema_decay))
        self.config = config
        self.scheduler = ddpm_scheduler(config.num_train_timesteps)
        self.latent_mean, self.latent_std = latent_mean, latent_std
        self.pair_image, self.sound = pair_image, sound
        self.scene_embeddings, self.scene_index = scene_embeddings, scene_index

    def diffusion_loss(
        self, indices: Tensor, generator: torch.Generator | None = None, keep: bool = True
    ) -> Tensor:
        """The ε-prediction MSE of some pairs (with the condition dropout when ``keep``)."""
        tiles = self.pair_image[indices]
        mean, std = self.latent_mean[tiles], self.latent_std[tiles]
        latents = mean + std * torch.randn(mean.shape, generator=generator)
        noise = torch.randn(latents.shape, generator=generator)
        timesteps = torch.randint(
            0, self.config.num_train_timesteps, (len(indices),), generator=generator
        )
        noisy = self.scheduler.add_noise(latents, noise, timesteps)  # type: ignore[arg-type]
        scene = SceneCondition.from_pooled(self.scene_embeddings[self.scene_index[indices]])
        keep_sound, keep_scene = (
            self.model.condition_keep(len(indices), generator) if keep else (None, None)
        )
        eps = self.model(noisy, timesteps, self.sound.index(indices), scene, keep_sound, keep_scene)
        return F.mse_loss(eps, noise)

    @override
    def training_step(self, batch: list[Tensor], batch_idx: int) -> Tensor:
        loss = self.diffusion_loss(batch[0])
        self.log("dit_loss", loss.detach(), on_epoch=True, on_step=False, batch_size=len(batch[0]))
        return loss

    @override
    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.ema.update_parameters(self.model)

    @override
    def configure_optimizers(self) -> Any:
        return torch.optim.AdamW(
            self.model.parameters(),
            lr=self.config.learning_rate,
            weight_decay=self.config.weight_decay,
        )

    def ema_model(self) -> SounDiT:
        """The EMA weights as a plain :class:`SounDiT` (eval mode)."""
        model = build_soundit(self.model.config)
        model.load_state_dict(self.ema.module.state_dict())
        return model.eval()


def _loader(tensor: Tensor, batch_size: int, seed: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        TensorDataset(tensor),
        batch_size=min(batch_size, len(tensor)),
        shuffle=True,
        generator=generator,
        drop_last=len(tensor) > batch_size,
    )


def fit_autoencoder(
    images: Tensor,
    run_dir: Path,
    config: GeneratorTrainConfig,
    progress: Progress | None = None,
    progress_bar: bool = False,
) -> LatentCodec:
    """Train the autoencoder on images ``(I, 3, H, W)`` in [0, 1]; measure its latent scale.

    Resumes from ``run_dir/lightning/last.ckpt``.
    """
    L.seed_everything(config.seed, workers=True, verbose=False)
    ae_config = autoencoder_config(config.autoencoder_preset, image_size=int(images.shape[-1]))
    codec = LatentCodec(build_autoencoder(ae_config), 1.0, ae_config)
    module = AutoencoderModule(codec, ae_config, config.autoencoder_lr)
    trainer = resumable_trainer(
        run_dir,
        config.autoencoder_epochs,
        config.gradient_clip,
        progress,
        progress_bar,
        limit_val_batches=0,
    )
    fit_resuming(
        trainer, module, run_dir, train_dataloaders=_loader(images, config.batch_size, config.seed)
    )
    codec.eval()
    batches = (images[i : i + 256] for i in range(0, len(images), 256))
    codec.scaling_factor = measure_scaling_factor(codec, batches)
    return codec


def fit_soundit(
    module: SounDiTModule,
    train_pairs: Tensor,
    run_dir: Path,
    progress: Progress | None = None,
    progress_bar: bool = False,
) -> SounDiT:
    """Train SounDiT on the pairs ``train_pairs`` (indices); returns the EMA model.

    Resumes from ``run_dir/lightning/last.ckpt`` (model, EMA, optimiser and step).
    """
    config = module.config
    L.seed_everything(config.seed, workers=True, verbose=False)
    trainer = resumable_trainer(
        run_dir, config.epochs, config.gradient_clip, progress, progress_bar, limit_val_batches=0
    )
    fit_resuming(
        trainer,
        module,
        run_dir,
        train_dataloaders=_loader(train_pairs, config.batch_size, config.seed),
    )
    return module.ema_model()


@torch.no_grad()
def encode_latents(codec: LatentCodec, images: Tensor, batch: int = 256) -> tuple[Tensor, Tensor]:
    """Scaled posterior means and standard deviations of images in [0, 1]."""
    codec.eval()
    means, stds = [], []
    for start in range(0, len(images), batch):
        mean, std = codec.posterior(images[start : start + batch])
        means.append(mean * codec.scaling_factor)
        stds.append(std * codec.scaling_factor)
    return torch.cat(means), torch.cat(stds)


# ---------------------------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------------------------


@dataclass
class GeneratorOutcome:
    """What a generator training run produced.

    Attributes:
        model: The EMA denoiser.
        codec: The trained autoencoder.
        data: The run's data bundle.
        latents: ``(I, C, L, L)`` scaled posterior means of every tile (the layouts).
        metrics: Autoencoder reconstruction on the eval tiles, the final losses, timings.
        scenes: Scene word → pooled text embedding.
        aligner: The Sound2Scene audio aligner (None for a generator that hears sound).
    """

    model: SounDiT
    codec: LatentCodec
    data: GeneratorData
    latents: Tensor
    metrics: dict[str, Any]
    scenes: dict[str, Tensor]
    aligner: AudioAligner | None = None

    @property
    def condition_space(self) -> str:
        """Space id of what the model is conditioned on (its knowledge base's too)."""
        meta = self.data.meta
        return str(meta["visual_space"] if self.aligner is not None else meta["sound_space"])

    def knowledge_rows(self, split: str = "train") -> dict[str, np.ndarray]:
        """The arrays of a GeoKD knowledge base over one split's pairs.

        Entries are searched by the generator's own condition: the pair's sound embedding,
        or, for a Sound2Scene generator, its tile's image embedding (which an aligned
        recording is compared with).
        """
        rows = np.flatnonzero(self.data.pair_splits == split)
        if self.aligner is None:
            embeddings = self.data.sound_embedding[rows]
        else:
            # One entry per tile: pairs of one tile share its embedding and would crowd the
            # nearest neighbours with copies.
            rows = rows[np.unique(self.data.pair_image[rows], return_index=True)[1]]
            embeddings = self.data.visual(self.data.pair_image[rows]).embedding.numpy()
        return {
            "ids": self.data.pair_ids[rows],
            "embeddings": embeddings,
            "scenes": self.data.scene_words[self.data.scene_index[rows]],
            "latents": self.latents[self.data.pair_image[rows]].numpy(),
            "lon": self.data.lon[rows],
            "lat": self.data.lat[rows],
        }


def run_generator_training(
    out_dir: Path,
    config: GeneratorTrainConfig,
    data_dir: Path | None = None,
    cache_root: Path | None = None,
    progress: Progress | None = None,
    progress_bar: bool = False,
) -> GeneratorOutcome:
    """Autoencoder, then SounDiT, on the dev pairs; resumes from ``out_dir``."""
    config.validate()
    started = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    _claim_networks(out_dir, config)
    data = prepare_generator_data(out_dir, config, data_dir, cache_root, stage(progress, 0.0, 0.2))
    visual = config.condition == "visual"
    if visual and (data.image_embedding is None or data.audio_tokens is None
                   or "visual_space" not in data.meta):  # fmt: skip
        raise DataError(
            "this generator data bundle has no image embeddings or audio-encoder tokens; delete "
            "it and rerun geosound train-generator to write them",
            out_dir / "generator_data.npz",
        )
    train_tiles = np.flatnonzero(data.image_splits == "train")
    eval_tiles = np.flatnonzero(data.image_splits == "eval")
    if len(train_tiles) == 0 or len(eval_tiles) == 0:
        raise DataError("the dev pairs need tiles in both the train and the eval split")
    codec = fit_autoencoder(
        data.images_float(train_tiles),
        out_dir / "runs" / "autoencoder",
        config,
        stage(progress, 0.2, 0.45),
        progress_bar,
    )
    reconstruction = reconstruction_metrics(codec, data.images_float(eval_tiles))
    latent_mean, latent_std = encode_latents(codec, data.images_float())
    scene_embeddings = torch.from_numpy(data.scene_embeddings)
    if visual:
        # Sound2Scene: every tile is its own "pair", conditioned on its image embedding.
        pair_image = np.arange(len(data.images))
        condition = data.visual(pair_image)
        scene_index = data.per_tile(data.scene_index)
        train_pairs = torch.from_numpy(train_tiles)
        eval_pairs = torch.from_numpy(eval_tiles)
    else:
        pair_image = data.pair_image
        condition = data.sound(np.arange(len(data.pair_ids)))
        scene_index = data.scene_index
        train_pairs = torch.from_numpy(np.flatnonzero(data.pair_splits == "train"))
        eval_pairs = torch.from_numpy(np.flatnonzero(data.pair_splits == "eval"))
    model = build_soundit(
        config.preset,
        sound_dim=int(condition.embedding.shape[-1]),
        scene_dim=int(data.scene_embeddings.shape[-1]),
        latent_channels=codec.latent_channels,
        latent_size=int(latent_mean.shape[-1]),
        num_train_timesteps=config.num_train_timesteps,
        **config.model,
    )
    module = SounDiTModule(
        model,
        latent_mean,
        latent_std,
        torch.from_numpy(pair_image),
        condition,
        scene_embeddings,
        torch.from_numpy(scene_index),
        config,
    )
    aligner = None
    metrics: dict[str, Any] = {}
    if visual:
        from geosound.training.aligner import fit_aligner

        tokens, mask = data.audio(np.arange(len(data.pair_ids)))
        fitted = fit_aligner(
            tokens,
            mask,
            condition.embedding[torch.from_numpy(data.pair_image)],
            np.flatnonzero(data.pair_splits == "train"),
            np.flatnonzero(data.pair_splits == "eval"),
            epochs=config.aligner_epochs,
            learning_rate=config.aligner_lr,
            seed=config.seed,
            progress=stage(progress, 0.45, 0.5),
            labels=data.labels,
        )
        aligner = fitted.aligner
        metrics["aligner_eval"] = fitted.metrics
    ema = fit_soundit(
        module,
        train_pairs,
        out_dir / "runs" / "soundit",
        stage(progress, 0.5 if visual else 0.45, 1.0),
        progress_bar,
    )
    module.model = ema
    generator = torch.Generator().manual_seed(config.seed)
    with torch.no_grad():
        eval_loss = float(module.diffusion_loss(eval_pairs, generator, keep=False))
    metrics = {
        "autoencoder_eval": {**reconstruction, "tiles": len(eval_tiles)},
        "latent_scaling_factor": round(codec.scaling_factor, 5),
        "soundit_eval_loss_ema": round(eval_loss, 5),
        "soundit_parameters": count_parameters(ema),
        "pairs_train": len(train_pairs),
        "pairs_eval": len(eval_pairs),
        **metrics,
        "train_seconds": round(time.monotonic() - started, 1),
        "note": "dev figures (dev eval split); the eval loss is the EMA model's ε-MSE"
        + ("; a Sound2Scene model trains on tiles, so its pairs are tiles" if visual else ""),
    }
    scenes = {str(word): scene_embeddings[i] for i, word in enumerate(data.scene_words.tolist())}
    return GeneratorOutcome(ema, codec, data, latent_mean, metrics, scenes, aligner)


def _claim_networks(out_dir: Path, config: GeneratorTrainConfig) -> None:
    """Record the run folder's network settings; refuse to resume them as other ones.

    Lightning's ``last.ckpt`` files hold weights of the recorded condition, presets and model
    options (``--condition``, ``--plain-cross-attention``, ``--global-conditioning``…): loading
    them into another network fails deep inside with a state-dict error. Folders from before
    this record are read by :func:`_earlier_records`.

    Raises:
        InputError: The folder's networks were built with other settings (those are named).
    """
    marker = out_dir / "runs" / "networks.json"
    wanted = json.loads(json.dumps({
        "condition": config.condition,
        "autoencoder_preset": config.autoencoder_preset,
        "preset": config.preset,
        "model": dict(sorted(config.model.items())),
    }))  # fmt: skip
    recorded = json.loads(marker.read_text()) if marker.is_file() else _earlier_records(out_dir)
    differing = [key for key in recorded if recorded[key] != wanted.get(key)]
    if differing:
        built = ", ".join(f"{key} {recorded[key]}" for key in differing)
        asked = ", ".join(f"{key} {wanted.get(key)}" for key in differing)
        raise InputError(
            f"this run folder's networks were built with {built}; give another -o for {asked}",
            out_dir,
        )
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(wanted) + "\n")


def _earlier_records(out_dir: Path) -> dict[str, Any]:
    """What a run folder from before ``networks.json`` says of its networks.

    Such folders recorded the condition in ``runs/soundit/condition.txt`` and the rest in
    ``runs/architecture.json``; before either, a folder with a SounDiT checkpoint held one
    conditioned on sound, its other settings unknown (taken as they are).
    """
    runs = out_dir / "runs"
    recorded: dict[str, Any] = {}
    if (runs / "architecture.json").is_file():
        recorded.update(json.loads((runs / "architecture.json").read_text()))
    if (runs / "soundit" / "condition.txt").is_file():
        recorded["condition"] = (runs / "soundit" / "condition.txt").read_text().strip()
    elif (runs / "soundit" / "lightning" / "last.ckpt").is_file():
        recorded["condition"] = "sound"
    return recorded


__all__: Sequence[str] = (
    "AutoencoderModule",
    "GeneratorData",
    "GeneratorOutcome",
    "GeneratorTrainConfig",
    "SounDiTModule",
    "ddpm_scheduler",
    "encode_latents",
    "fit_autoencoder",
    "fit_soundit",
    "prepare_generator_data",
    "run_generator_training",
    "scene_word",
)
