"""Sampling SounDiT: guided DDIM from noise, or from a retrieved layout (GeoKD RAG).

diffusers' :class:`~diffusers.DDIMScheduler` does the stepping; this module only builds the
guided noise prediction (:func:`~geosound.models.soundit.guided_epsilon`, one batched forward
pass of the three conditions) and the starting point:

* without RAG, pure Gaussian noise at the first DDIM timestep;
* with RAG (SDEdit-style initialisation, METHODS.md §2), the retrieved layout latent noised to
  an intermediate timestep: ``strength`` is the share of the DDIM schedule that is run, so
  1.0 is pure noise (the layout forgotten) and 0.0 returns the layout untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from diffusers.schedulers.scheduling_ddim import DDIMScheduler
from torch import Tensor

from geosound.models.soundit import SceneCondition, SoundCondition, SounDiT, guided_epsilon


@dataclass
class GuidanceScales:
    """Classifier-free guidance scales; 1 and 1 is the plain conditional prediction."""

    sound: float = 3.0
    scene: float = 1.5


def ddim_scheduler(num_train_timesteps: int = 1000) -> DDIMScheduler:
    """The sampler for models trained with :func:`geosound.training.generator.ddpm_scheduler`.

    Same linear β schedule as training; ``set_alpha_to_one=False`` and ``steps_offset=1``
    as Stable Diffusion samples, ``clip_sample=False`` because latents are not bounded.
    """
    return DDIMScheduler(
        num_train_timesteps=num_train_timesteps,
        beta_schedule="linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="epsilon",
    )


def guided_prediction(
    model: SounDiT,
    latents: Tensor,
    timestep: Tensor,
    sound: SoundCondition | None,
    scene: SceneCondition | None,
    scales: GuidanceScales,
) -> Tensor:
    """The guided ``ε`` at one step: the conditions' passes batched into one forward.

    With a scene: (scene, sound), (scene, ∅), (∅, ∅). Without one, the middle pass equals the
    last and is skipped, which leaves plain sound guidance. Without a sound, only the scene
    is guided.
    """
    batch = latents.shape[0]
    if sound is None and scene is None:
        return model(latents, timestep)
    passes = 3 if (scene is not None and sound is not None) else 2
    on = torch.ones(batch, dtype=torch.bool)
    off = torch.zeros(batch, dtype=torch.bool)
    if passes == 3:
        keep_sound, keep_scene = torch.cat([on, off, off]), torch.cat([on, on, off])
    elif sound is not None:
        keep_sound, keep_scene = torch.cat([on, off]), torch.cat([off, off])
    else:
        keep_sound, keep_scene = torch.cat([off, off]), torch.cat([on, off])
    eps = model(
        latents.repeat(passes, 1, 1, 1),
        timestep,
        None if sound is None else sound.repeat(passes),
        None if scene is None else scene.repeat(passes),
        keep_sound,
        keep_scene,
    ).chunk(passes)
    if passes == 3:
        return guided_epsilon(eps[0], eps[1], eps[2], scales.sound, scales.scene)
    if sound is not None:  # eps = (sound, none): scene term vanishes
        return guided_epsilon(eps[0], eps[1], eps[1], scales.sound, scales.scene)
    return guided_epsilon(eps[0], eps[0], eps[1], scales.sound, scales.scene)


@torch.no_grad()
def sample_latents(
    model: SounDiT,
    scheduler: DDIMScheduler,
    batch: int,
    sound: SoundCondition | None = None,
    scene: SceneCondition | None = None,
    steps: int = 25,
    scales: GuidanceScales | None = None,
    init_latents: Tensor | None = None,
    strength: float = 0.7,
    generator: torch.Generator | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Tensor:
    """Denoise ``batch`` latents with DDIM.

    Args:
        model: The denoiser (eval mode; EMA weights).
        scheduler: A :func:`ddim_scheduler`.
        batch: How many latents.
        sound: Sound condition of ``batch`` rows (None: unconditional).
        scene: Scene condition of ``batch`` rows (None: no scene).
        steps: DDIM steps of the full schedule (RAG runs ``strength`` of them).
        scales: Guidance scales.
        init_latents: Retrieved layout latents ``(batch, C, L, L)`` to start from (RAG).
        strength: Share of the schedule run from ``init_latents`` (ignored without them).
        generator: Seeds the noise.
        progress: ``callback(done, total)`` after each step.

    Raises:
        ValueError: ``steps`` < 1 or ``strength`` outside (0, 1].
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    scales = scales or GuidanceScales()
    config = model.config
    shape = (batch, config.latent_channels, config.latent_size, config.latent_size)
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps
    noise = torch.randn(shape, generator=generator)
    if init_latents is not None:
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {strength}")
        run = max(1, min(steps, round(steps * strength)))
        timesteps = timesteps[steps - run :]
        start = timesteps[:1].to(torch.int)
        latents = scheduler.add_noise(init_latents.float(), noise, start)  # type: ignore[arg-type]
    else:
        latents = noise * scheduler.init_noise_sigma
    for done, timestep in enumerate(timesteps, 1):
        eps = guided_prediction(model, latents, timestep, sound, scene, scales)
        latents = scheduler.step(eps, timestep, latents, return_dict=False)[0]
        if progress is not None:
            progress(done, len(timesteps))
    return latents
