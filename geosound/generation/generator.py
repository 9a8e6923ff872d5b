"""Sound → picture of a place: a trained SounDiT, its GeoKD and the Sat2Sound audio side.

:class:`LandscapeGenerator` ties the parts together, each switchable: the sound is heard
through the Sat2Sound model the generator was trained with (its space id is checked), the
knowledge base is searched by sound and, with a location, by proximity; the retrieved entries
vote on a scene (:func:`~geosound.generation.geokd.consensus`), the best-ranked entry of that
scene gives the layout that starts the sampler (RAG), and the scene is used when the caller
names none. A scene the caller names takes the layout of its own best-ranked entry instead.
A Sound2Scene generator hears through its own audio aligner instead
(:mod:`geosound.generation.hearing`), and its knowledge base lies in the image encoder's space.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from geosound.errors import InputError
from geosound.generation.geokd import (
    Consensus,
    KnowledgeBase,
    Neighbour,
    consensus,
    scene_key,
)
from geosound.generation.sampling import GuidanceScales, ddim_scheduler, sample_latents
from geosound.models.soundit import SceneCondition, SoundCondition
from geosound.models.soundit_checkpoint import LoadedGenerator, load_generator


@dataclass
class GenerationOptions:
    """How one picture is drawn.

    Attributes:
        steps: DDIM steps of the full schedule.
        seed: Seeds the noise.
        scales: Guidance scales (sound, scene).
        use_rag: Start from the retrieved layout latent (else from noise).
        strength: Share of the schedule run from the retrieved layout.
        use_retrieved_scene: Use the retrieved scene when none is given.
        geo_weight: Weight of proximity in retrieval when a location is given.
        voters: How many retrieved entries vote on the scene and the layout (1: the nearest
            entry alone).
    """

    steps: int = 25
    seed: int = 0
    scales: GuidanceScales = field(default_factory=GuidanceScales)
    use_rag: bool = True
    strength: float = 0.4
    use_retrieved_scene: bool = True
    geo_weight: float = 0.3
    voters: int = 50


SIDECAR_NEIGHBOURS = 5
"""How many of the retrieved entries a picture's record lists (the vote counts them all)."""


@dataclass
class GeneratedImage:
    """A generated picture and how it was made.

    Attributes:
        pixels: ``(3, H, W)`` float32 RGB in [0, 1].
        scene: The scene word used (None: no scene).
        scene_source: ``"given"``, ``"retrieved"`` or ``"none"``.
        neighbours: The best-ranked entries retrieved (empty without a knowledge base).
        retrieved: What all the retrieved entries agreed on (None without a knowledge base).
        layout: The entry whose latent started sampling (None: sampled from noise).
    """

    pixels: np.ndarray
    scene: str | None
    scene_source: str
    neighbours: list[Neighbour]
    retrieved: Consensus | None = None
    layout: Neighbour | None = None


class LandscapeGenerator:
    """Generate pictures of places from sound conditions.

    Args:
        loaded: A loaded generator checkpoint.
        knowledge: Its knowledge base (None turns RAG and scene retrieval off).
    """

    def __init__(self, loaded: LoadedGenerator, knowledge: KnowledgeBase | None = None) -> None:
        if knowledge is not None and knowledge.space_id != loaded.sound_space:
            raise InputError(
                f"the knowledge base is in {knowledge.space_id}, the generator hears "
                f"{loaded.sound_space}"
            )
        self.loaded = loaded
        self.knowledge = knowledge

    @classmethod
    def from_files(
        cls, checkpoint: str | os.PathLike[str], knowledge: str | os.PathLike[str] | None = None
    ) -> LandscapeGenerator:
        """A generator from its checkpoint and (optionally) its ``geokd.npz``."""
        return cls(load_generator(checkpoint), KnowledgeBase.load(knowledge) if knowledge else None)

    @property
    def known_scenes(self) -> list[str]:
        """Scene words the checkpoint has embeddings for."""
        return sorted(self.loaded.scenes)

    def scene_embedding(self, word: str) -> torch.Tensor:
        """The stored embedding of a known scene word.

        Raises:
            InputError: An unknown word; the message lists the known ones.
        """
        key = scene_key(word)
        if key not in self.loaded.scenes:
            raise InputError(
                f"unknown scene {word!r}; known scenes: {', '.join(self.known_scenes)}"
            )
        return self.loaded.scenes[key]

    def generate(
        self,
        sound: SoundCondition,
        scene: str | None = None,
        lon: float | None = None,
        lat: float | None = None,
        options: GenerationOptions | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> GeneratedImage:
        """One picture for one sound (a one-row :class:`SoundCondition`).

        ``progress(done, total)`` is called after each sampling step.
        """
        options = options or GenerationOptions()
        if options.voters < 1:
            raise InputError(f"voters must be at least 1; got {options.voters}")
        neighbours: list[Neighbour] = []
        retrieved = None
        if self.knowledge is not None:
            neighbours = self.knowledge.retrieve(
                sound.embedding[0].numpy(),
                lon,
                lat,
                k=max(options.voters, SIDECAR_NEIGHBOURS),
                geo_weight=options.geo_weight,
            )
            retrieved = consensus(neighbours[: options.voters])
        source = "given" if scene else "none"
        if scene is None and retrieved is not None and options.use_retrieved_scene:
            scene, source = retrieved.scene, "retrieved"
        scene_condition = (
            None
            if scene is None
            else SceneCondition.from_pooled(self.scene_embedding(scene).unsqueeze(0))
        )
        init, layout = None, None
        if options.use_rag and retrieved is not None and self.knowledge is not None:
            layout = retrieved.layout
            wanted = scene_key(scene) if source == "given" and scene else None
            if wanted is not None and wanted != retrieved.scene:
                # The caller's scene, not the voted one, decides what the picture starts from.
                own = self.knowledge.retrieve(
                    sound.embedding[0].numpy(), lon, lat, k=1, geo_weight=options.geo_weight,
                    scene=wanted,
                )  # fmt: skip
                layout = own[0] if own else None
            if layout is not None:
                init = torch.from_numpy(self.knowledge.latents[layout.index]).unsqueeze(0)
        model = self.loaded.model
        latents = sample_latents(
            model,
            ddim_scheduler(model.config.num_train_timesteps),
            1,
            sound,
            scene_condition,
            steps=options.steps,
            scales=options.scales,
            init_latents=init,
            strength=options.strength,
            generator=torch.Generator().manual_seed(options.seed),
            progress=progress,
        )
        with torch.no_grad():
            pixels = self.loaded.codec.decode(latents)[0].numpy()
        return GeneratedImage(
            pixels.astype(np.float32),
            scene,
            source,
            neighbours[:SIDECAR_NEIGHBOURS],
            retrieved,
            layout,
        )
