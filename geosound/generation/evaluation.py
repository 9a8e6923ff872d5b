"""SounDiT on held-out sounds: pictures drawn, beside what frames them, and scored.

What is drawn (:func:`plan_evaluation`, all seeded):

* sounds: ``per_class`` eval-split pairs of each land cover (default the five RGB classes),
  whose clips and tiles the generator never trained on — checked against its knowledge base;
* ``per_sound`` pictures of each (different seeds; the same seeds in every row, so rows differ
  by what they change and not by luck);
* the real tiles: the eval tiles of those classes, split per class in half. One half is the
  *reference* every set is compared with (FD-EffNet, PSS-element's real profiles); the other
  half gives the *bound* row — for each picture slot, a real tile of the paired class, so the
  bound has as many images as every generated row (FD-EffNet depends on the count);
* the land-cover classifier: trained on the train tiles of those classes
  (:func:`geosound.evaluation.generated.landcover_classifier`), its accuracy measured on every
  eval tile of those classes (both halves, whether or not a bound slot uses the tile), so the
  figure does not move with ``per_class`` or ``per_sound``.

Rows of the main table: the bound (real tiles of the paired class), the same tiles encoded
and decoded by the generator's autoencoder (what the latent space keeps of them: no picture the
DiT draws can be sharper than its decoder makes it), the conditioned model
(sound heard through Sat2Sound, scene retrieved from the knowledge base, RAG from the
retrieved layout, :class:`~geosound.generation.generator.GenerationOptions` defaults), the
shuffled-sound control (each sound replaced by another eval clip's sound of a different
class, scored against the original pairing), unconditional samples (sound and scene null,
from noise), and the conditioned model given the paired tile's scene word as a user gives
``--scene`` (what the drawing keeps when the scene vote is perfect). The ablation rows change
one thing of the conditioned model each: RAG off, scene off (no scene instead of the
retrieved one), the nearest knowledge-base entry alone giving scene and layout (no vote), the
DDIM step counts, and a second checkpoint (TA-PMoE against plain cross-attention) when one
is given.

Only that one row is given a scene word from the pair's label; elsewhere the scene is the
retrieved one (or none), so the label reaches the picture only through the sound. Locations
are not used either (the RGB tiles have none). Every figure is a dev figure; PSS figures are
proxies.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from geosound.encoders import DEFAULT_ENCODERS, Encoder, get_encoder
from geosound.errors import DataError, InputError
from geosound.evaluation.generated import (
    LandcoverClassifier,
    Reference,
    SetScores,
    landcover_classifier,
    score_set,
)
from geosound.evaluation.suite import RGB_CLASSES
from geosound.generation.generator import GenerationOptions, LandscapeGenerator
from geosound.generation.hearing import aligned_condition
from geosound.generation.sampling import ddim_scheduler, sample_latents
from geosound.models.soundit import SoundCondition
from geosound.progress import Progress, stage

__all__ = [
    "SPLIT_KEYS",
    "EvaluationPlan",
    "EvaluationSettings",
    "GeneratorData",
    "GeneratorEvaluation",
    "Row",
    "check_held_out",
    "evaluate_generator",
    "format_evaluation",
    "heard",
    "plan_evaluation",
    "score_variants",
]


class GeneratorData(Protocol):
    """What the evaluation reads of a training run's data bundle.

    :class:`geosound.training.generator.GeneratorData` (``generator_data.npz``) is one;
    generation may not import training, so the bundle is described here, not imported.
    """

    images: np.ndarray
    image_splits: np.ndarray
    pair_ids: np.ndarray
    pair_image: np.ndarray
    pair_splits: np.ndarray
    labels: np.ndarray
    scene_words: np.ndarray
    scene_index: np.ndarray
    meta: dict[str, Any]

    def images_float(self, rows: np.ndarray | None = None) -> Tensor:
        """Tiles as float ``(n, 3, H, W)`` in [0, 1]."""
        ...

    def sound(self, rows: np.ndarray | Tensor) -> SoundCondition:
        """Sound condition of some pairs."""
        ...

    def audio(self, rows: np.ndarray | Tensor) -> tuple[Tensor, Tensor]:
        """Audio-encoder tokens and mask of some pairs (what an aligner hears)."""
        ...

    def visual(self, tiles: np.ndarray | Tensor) -> SoundCondition:
        """The Sound2Scene condition of some tiles: their own image-encoder embedding."""
        ...

    def per_tile(self, values: np.ndarray) -> np.ndarray:
        """A per-pair array as one value per tile."""
        ...


def heard(generator: LandscapeGenerator, data: GeneratorData, rows: np.ndarray) -> SoundCondition:
    """Some pairs' sounds as the generator hears them: through Sat2Sound or its aligner."""
    aligner = generator.loaded.aligner
    if aligner is None:
        return data.sound(rows)
    return aligned_condition(aligner, *data.audio(rows))


SPLIT_KEYS = ("seed", "eval_fraction", "imagery", "sounds", "variants", "mix_bank")
"""Training settings that decide which pairs are held out: two checkpoints compared on one
set of eval sounds must agree on them."""

NOT_TRAINED = "not trained"


@dataclass
class EvaluationSettings:
    """What is drawn and how.

    Attributes:
        classes: Land covers whose eval sounds are used (and the classifier's classes).
        per_class: Eval sounds per class.
        per_sound: Pictures per sound.
        steps: DDIM step counts of the ablation rows.
        seed: Seeds the choice of sounds, tiles, partners and every picture's noise.
        options: How the conditioned model draws (its ``seed`` is replaced per picture).
    """

    classes: tuple[str, ...] = RGB_CLASSES
    per_class: int = 10
    per_sound: int = 4
    steps: tuple[int, ...] = (10, 25, 50)
    seed: int = 0
    options: GenerationOptions = field(default_factory=GenerationOptions)

    def validate(self) -> EvaluationSettings:
        """Refuse settings that cannot be scored; returns ``self``.

        Raises:
            InputError: The setting and what it must be.
        """
        if self.per_class < 1:
            raise InputError(f"per_class must be at least 1; got {self.per_class}")
        if self.per_sound < 1:
            raise InputError(f"per_sound must be at least 1; got {self.per_sound}")
        if any(s < 1 for s in self.steps) or self.options.steps < 1:
            raise InputError(f"DDIM steps must be at least 1; got {list(self.steps)}")
        if len(set(self.classes)) < 2:
            raise InputError("the evaluation needs at least two land-cover classes")
        return self


@dataclass
class EvaluationPlan:
    """The seeded choice of sounds, picture slots and real tiles (module docstring).

    Attributes:
        classes: Classes evaluated (those of the settings present in the data).
        sound_rows: ``(S,)`` pair rows of the chosen eval sounds.
        shuffled_rows: ``(S,)`` pair row of another class whose sound replaces each one.
        slot_sound: ``(S·N,)`` index into ``sound_rows`` of each picture slot.
        slot_seed: ``(S·N,)`` noise seed of each slot.
        slot_labels: ``(S·N,)`` paired land cover of each slot.
        train_tiles: Tile rows the classifier trains on.
        train_labels: Their land cover.
        reference_tiles: Tile rows of the reference half.
        bound_tiles: ``(S·N,)`` tile row of the bound row in each slot.
        eval_tiles: Every eval tile of the classes, the classifier's accuracy set: the
            reference half and the whole bound half, used by a slot or not.
        tile_labels: Land cover of every tile of the data bundle.
        notes: What the plan had to settle for (too few tiles, missing classes).
    """

    classes: tuple[str, ...]
    sound_rows: np.ndarray
    shuffled_rows: np.ndarray
    slot_sound: np.ndarray
    slot_seed: np.ndarray
    slot_labels: np.ndarray
    train_tiles: np.ndarray
    train_labels: np.ndarray
    reference_tiles: np.ndarray
    bound_tiles: np.ndarray
    eval_tiles: np.ndarray
    tile_labels: np.ndarray
    notes: list[str] = field(default_factory=list)


def _tile_labels(data: GeneratorData) -> np.ndarray:
    return data.per_tile(data.labels.astype(str))


def _present_classes(data: GeneratorData, wanted: Sequence[str], notes: list[str]) -> list[str]:
    tile_labels = _tile_labels(data)
    present = []
    for name in wanted:
        has_eval = bool(np.any((data.labels == name) & (data.pair_splits == "eval")))
        has_train = bool(np.any((tile_labels == name) & (data.image_splits == "train")))
        if has_eval and has_train:
            present.append(name)
        else:
            notes.append(f"class {name} left out: the data has no eval sounds or train tiles of it")
    if len(present) < 2:
        raise DataError(
            f"the data bundle has eval sounds and train tiles of {len(present)} of the classes "
            f"{', '.join(wanted)}; at least two are needed"
        )
    if len(present) < 5:
        notes.append(f"only {len(present)} classes evaluated (the target asks for at least 5)")
    return present


def plan_evaluation(data: GeneratorData, settings: EvaluationSettings) -> EvaluationPlan:
    """Choose the sounds, partners, slots and tiles of an evaluation (seeded).

    Raises:
        DataError: Fewer than two classes with eval sounds and train tiles.
    """
    settings.validate()
    notes: list[str] = []
    classes = _present_classes(data, settings.classes, notes)
    rng = np.random.default_rng(settings.seed)
    tile_labels = _tile_labels(data)
    pool = np.flatnonzero((data.pair_splits == "eval") & np.isin(data.labels, classes))
    sound_rows, shuffled_rows = [], []
    for name in classes:
        own = pool[data.labels[pool] == name]
        others = pool[data.labels[pool] != name]
        chosen = rng.permutation(own)[: settings.per_class]
        if len(chosen) < settings.per_class:
            notes.append(f"{name}: {len(chosen)} eval sounds (fewer than {settings.per_class})")
        sound_rows += chosen.tolist()
        shuffled_rows += rng.choice(others, size=len(chosen)).tolist()
    n = settings.per_sound
    slot_sound = np.repeat(np.arange(len(sound_rows)), n)
    slot_labels = data.labels[np.asarray(sound_rows)][slot_sound].astype(str)
    reference, bound = [], np.zeros(len(slot_sound), np.int64)
    for name in classes:
        tiles = rng.permutation(
            np.flatnonzero((tile_labels == name) & (data.image_splits == "eval"))
        )
        half = len(tiles) // 2
        reference += tiles[half:].tolist()
        slots = np.flatnonzero(slot_labels == name)
        bound_pool = tiles[: max(half, 1)]
        if half == 0:
            notes.append(f"{name}: one eval tile, in both the bound and the reference")
        elif len(bound_pool) < len(slots):
            notes.append(
                f"{name}: {len(bound_pool)} real tiles for {len(slots)} bound slots (reused)"
            )
        bound[slots] = np.resize(bound_pool, len(slots))
    train = np.flatnonzero(np.isin(tile_labels, classes) & (data.image_splits == "train"))
    evaluated = np.flatnonzero(np.isin(tile_labels, classes) & (data.image_splits == "eval"))
    return EvaluationPlan(
        classes=tuple(classes),
        sound_rows=np.asarray(sound_rows, np.int64),
        shuffled_rows=np.asarray(shuffled_rows, np.int64),
        slot_sound=slot_sound,
        slot_seed=rng.integers(0, 2**31 - 1, size=len(slot_sound)),
        slot_labels=slot_labels,
        train_tiles=train,
        train_labels=tile_labels[train],
        reference_tiles=np.asarray(reference, np.int64),
        bound_tiles=bound,
        eval_tiles=evaluated,
        tile_labels=tile_labels,
        notes=notes,
    )


# --------------------------------------------------------------------------- results


@dataclass
class Row:
    """One row of a table: a set of pictures and its scores (None: not drawn).

    Attributes:
        name: What the row is.
        scores: Its figures, or None when it could not be drawn (``note`` says why).
        seconds: Time to draw it.
        note: E.g. ``"not trained"``, or which row it repeats.
    """

    name: str
    scores: SetScores | None
    seconds: float = 0.0
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Plain builtins for JSON."""
        return {
            "name": self.name,
            **(self.scores.as_dict() if self.scores else {}),
            "seconds": round(self.seconds, 1),
            "note": self.note,
        }


@dataclass
class GeneratorEvaluation:
    """Everything ``geosound evaluate-generator`` prints and writes.

    Attributes:
        model_id: The evaluated checkpoint.
        classifier: The land-cover classifier behind the PSS proxies.
        classifier_reused: Whether it came from its cache.
        plan: What was drawn.
        main: Bound, through the autoencoder, conditioned, shuffled control, unconditional,
            given the paired scene (and a perfect aligner for Sound2Scene).
        ablations: One change of the conditioned model each.
        settings: The settings used.
        ablation_model_id: The second checkpoint, if any.
        via: How the evaluated generator hears: ``"sound"`` (SounDiT, through Sat2Sound) or
            ``"visual"`` (Sound2Scene, through its audio aligner).
    """

    model_id: str
    classifier: LandcoverClassifier
    classifier_reused: bool
    plan: EvaluationPlan
    main: list[Row]
    ablations: list[Row]
    settings: EvaluationSettings
    ablation_model_id: str | None = None
    via: str = "sound"

    def row(self, name: str) -> Row:
        """The row of that name (main or ablation table)."""
        for row in [*self.main, *self.ablations]:
            if row.name == name:
                return row
        raise KeyError(name)

    @property
    def chance(self) -> float:
        """PSS-scene of a random classifier answer: 1 / classes."""
        return 1.0 / len(self.plan.classes)

    def targets(self) -> list[tuple[str, bool | None]]:
        """The issue's dev targets and whether this run meets them (None: not measurable)."""
        conditioned = self.row(CONDITIONED).scores
        shuffled = self.row(SHUFFLED).scores
        unconditional = self.row(UNCONDITIONAL).scores
        rag_off = self.row(RAG_OFF).scores
        assert conditioned and shuffled and unconditional and rag_off  # drawn in every run
        return [
            (f"sounds of at least 5 classes ({len(self.plan.classes)})",
             len(self.plan.classes) >= 5),
            (f"PSS-scene (proxy) ≥ 0.60 ({conditioned.pss_scene:.3f})",
             conditioned.pss_scene >= 0.60),
            (f"PSS-scene (proxy) ≥ shuffled control + 0.15 ({shuffled.pss_scene:.3f} + 0.15)",
             conditioned.pss_scene >= shuffled.pss_scene + 0.15),
            (f"RAG on beats RAG off on PSS-scene (proxy) ({conditioned.pss_scene:.3f} vs "
             f"{rag_off.pss_scene:.3f})", conditioned.pss_scene > rag_off.pss_scene),
            (f"FD-EffNet conditioned < unconditional ({conditioned.fd_effnet:.2f} vs "
             f"{unconditional.fd_effnet:.2f})", conditioned.fd_effnet < unconditional.fd_effnet),
        ]  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """Plain builtins for the JSON report."""
        classifier = self.classifier
        return {
            "model_id": self.model_id,
            "via": self.via,
            "ablation_model_id": self.ablation_model_id,
            "note": "dev figures on the dev eval split; PSS-scene and PSS-element are proxies "
            "(a land-cover classifier we trained); FD-EffNet is a Fréchet distance in "
            "EfficientNet-Lite0 features, not FID",
            "classes": list(self.plan.classes),
            "chance_pss_scene": round(self.chance, 4),
            "classifier": {
                "encoder": classifier.encoder_id,
                "train_tiles": classifier.train_tiles,
                "eval_tiles": classifier.eval_tiles,
                "eval_accuracy": round(classifier.eval_accuracy, 4),
                "reused": self.classifier_reused,
            },
            "counts": {
                "sounds": len(self.plan.sound_rows),
                "pictures_per_sound": self.settings.per_sound,
                "reference_tiles": len(self.plan.reference_tiles),
            },
            "settings": {
                "per_class": self.settings.per_class,
                "per_sound": self.settings.per_sound,
                "steps": list(self.settings.steps),
                "seed": self.settings.seed,
                "options": dataclasses.asdict(self.settings.options),
            },
            "main": [row.as_dict() for row in self.main],
            "ablations": [row.as_dict() for row in self.ablations],
            "targets": [{"target": text, "met": met} for text, met in self.targets()],
            "notes": self.plan.notes,
        }


BOUND = "real tiles of the paired class (bound)"
RECONSTRUCTED = "the same tiles through the autoencoder (the latent space's bound)"
CONDITIONED = "SounDiT, conditioned on the sound"
SHUFFLED = "shuffled-sound control"
UNCONDITIONAL = "unconditional (sound and scene null)"
PERFECT_ALIGNER = "given the paired tile's own image embedding (a perfect aligner)"
PAIRED_SCENE = "given the paired tile's scene word (a perfect scene vote)"
RAG_OFF = "RAG off (from noise)"
SCENE_OFF = "scene off (no retrieved scene)"
NEAREST = "nearest entry alone (no vote on scene and layout)"


# --------------------------------------------------------------------------- drawing


Drawer = Callable[[int], np.ndarray]
"""``draw(slot) → (3, H, W)`` pixels in [0, 1] of one picture slot."""


def _conditioned(
    generator: LandscapeGenerator,
    data: GeneratorData,
    plan: EvaluationPlan,
    options: GenerationOptions,
    rows: np.ndarray | None = None,
    condition: Callable[[np.ndarray], SoundCondition] | None = None,
    paired_scene: bool = False,
) -> Drawer:
    """Each slot's picture, drawn as users draw it (:meth:`LandscapeGenerator.generate`).

    The sound is pair ``rows[slot_sound]`` (default: the plan's own sounds), heard as the
    generator hears it (or as ``condition(pairs)`` gives it), the noise the slot's seed. With
    ``paired_scene`` the pair's own scene word is given, as a user would give ``--scene``.
    """
    rows = plan.sound_rows if rows is None else rows
    condition = condition or (lambda pairs: heard(generator, data, pairs))

    def draw(slot: int) -> np.ndarray:
        pair = rows[plan.slot_sound[slot]]
        sound = condition(np.array([pair]))
        scene = str(data.scene_words[data.scene_index[pair]]) if paired_scene else None
        picture = dataclasses.replace(options, seed=int(plan.slot_seed[slot]))
        return generator.generate(sound, scene, options=picture).pixels

    return draw


def _unconditional(generator: LandscapeGenerator, plan: EvaluationPlan, steps: int) -> Drawer:
    model, codec = generator.loaded.model, generator.loaded.codec

    def draw(slot: int) -> np.ndarray:
        latents = sample_latents(
            model,
            ddim_scheduler(model.config.num_train_timesteps),
            1,
            steps=steps,
            generator=torch.Generator().manual_seed(int(plan.slot_seed[slot])),
        )
        with torch.no_grad():
            return np.asarray(codec.decode(latents)[0].numpy(), np.float32)

    return draw


def check_held_out(generator: LandscapeGenerator, data: GeneratorData, plan: EvaluationPlan,
                   what: str) -> None:  # fmt: skip
    """Refuse a generator that cannot draw the plan's sounds as held-out sounds.

    Pictures of sounds the generator's knowledge base holds would be retrieved, not imagined,
    so any figure or picture of them says nothing about held-out sounds.

    Args:
        generator: The checkpoint and its knowledge base.
        data: The data bundle the plan was drawn from.
        plan: Its sounds (:func:`plan_evaluation`).
        what: How messages name the generator (e.g. its file).

    Raises:
        InputError: No knowledge base, or one in another sound space than the data's.
        DataError: Some of the plan's sounds are in the knowledge base.
    """
    if generator.knowledge is None:
        raise InputError(f"{what} needs its knowledge base (geokd.npz) for the RAG rows")
    space = "sound_space" if generator.loaded.aligner is None else "visual_space"
    if data.meta.get(space) != generator.loaded.sound_space:
        raise InputError(
            f"{what} hears {generator.loaded.sound_space}, the data bundle's conditions are in "
            f"{data.meta.get(space)}"
        )
    leaked = np.intersect1d(data.pair_ids[plan.sound_rows], generator.knowledge.ids)
    if len(leaked):
        raise DataError(
            f"{len(leaked)} eval sounds are in the knowledge base of {what} (e.g. {leaked[0]}): "
            "they are not held out; use the data bundle of its own training run"
        )


def _check_same_split(
    main: LandscapeGenerator, other: LandscapeGenerator, names: tuple[str, str]
) -> None:
    """Refuse two checkpoints whose held-out pairs may differ, or cannot be told apart.

    A checkpoint that does not record its split settings could have been trained on the
    other one's eval sounds, so it is refused rather than compared on trust.
    """
    if main.loaded.via != other.loaded.via:
        raise InputError(
            f"{names[1]} hears --via {other.loaded.via}, {names[0]} --via {main.loaded.via}: the "
            "ablation model differs only in its cross-attention; evaluate each on its own"
        )
    configs = []
    for generator, name in zip((main, other), names, strict=True):
        recorded = generator.loaded.info.get("train_config")
        config = recorded if isinstance(recorded, dict) else {}
        missing = [k for k in SPLIT_KEYS if k not in config]
        if missing:
            raise InputError(
                f"{name} records no {', '.join(missing)} in its train_config, so whether both "
                "models held out the same pairs cannot be checked; use checkpoints written by "
                "geosound train-generator"
            )
        configs.append(config)
    differ = [k for k in SPLIT_KEYS if configs[0][k] != configs[1][k]]
    if differ:
        raise InputError(
            f"{names[1]} was trained on other pairs than {names[0]} ({', '.join(differ)} "
            "differ), so its eval sounds are not the same held-out set"
        )


class _Scorer:
    """Draws picture sets slot by slot, encodes them and scores them against the reference."""

    def __init__(
        self,
        plan: EvaluationPlan,
        encoder: Encoder,
        classifier: LandcoverClassifier,
        reference: Reference,
        progress: Progress | None,
        rows: int,
    ) -> None:
        self.plan, self.encoder = plan, encoder
        self.classifier, self.reference = classifier, reference
        self.progress, self.rows, self.done = progress, rows, 0

    def images(self, pixels: np.ndarray) -> SetScores:
        """Score already made pictures ``(S·N, 3, H, W)``."""
        features = self.encoder.encode(list(pixels)).pooled.numpy()
        return score_set(
            features,
            self.plan.slot_labels,
            self.plan.slot_sound,
            self.classifier,
            self.reference,
        )

    def row(self, name: str, draw: Drawer) -> Row:
        """Draw every slot with ``draw`` and score the set."""
        started = time.monotonic()
        total = len(self.plan.slot_sound)
        pictures = []
        for slot in range(total):
            pictures.append(draw(slot))
            fraction = (self.done + (slot + 1) / total) / self.rows
            if self.progress is not None:
                self.progress(fraction, f"{name}: {slot + 1}/{total} pictures")
        self.done += 1
        scores = self.images(np.stack(pictures))
        return Row(name, scores, time.monotonic() - started)


def _real_features(
    data: GeneratorData, tiles: np.ndarray, encoder: Encoder, cache_root: Path | None,
    progress: Progress | None,
) -> np.ndarray:  # fmt: skip
    """Pooled features of real tiles through the feature cache (keyed by their pixels)."""
    from geosound.data.feature_cache import FeatureCache

    images = data.images_float(tiles).numpy()
    return FeatureCache(cache_root, encoder).encode_pooled(list(images), progress=progress)


@dataclass
class _Judge:
    """What scores every row of one plan: the image encoder, the classifier, the reference."""

    plan: EvaluationPlan
    encoder: Encoder
    classifier: LandcoverClassifier
    classifier_reused: bool
    reference: Reference

    @classmethod
    def of(
        cls,
        data: GeneratorData,
        plan: EvaluationPlan,
        settings: EvaluationSettings,
        classifier_path: Path | None,
        cache_root: Path | None,
        encoder: Encoder | None,
        report: Progress,
    ) -> _Judge:
        """Encode the real tiles, train (or reuse) the classifier, and set the reference."""
        encoder = encoder or get_encoder(DEFAULT_ENCODERS["image"])
        report(0.0, "encoding the real tiles")
        train_x = _real_features(data, plan.train_tiles, encoder, cache_root, stage(report, 0, 0.1))
        eval_tiles = plan.eval_tiles
        eval_x = _real_features(data, eval_tiles, encoder, cache_root, stage(report, 0.1, 0.15))
        classifier, reused = landcover_classifier(
            train_x, plan.train_labels, eval_x, plan.tile_labels[eval_tiles], plan.classes,
            encoder.id, classifier_path, settings.seed,
        )  # fmt: skip
        position = {int(tile): i for i, tile in enumerate(eval_tiles)}
        reference = Reference.of(
            eval_x[[position[int(t)] for t in plan.reference_tiles]],
            plan.tile_labels[plan.reference_tiles],
            classifier,
        )
        return cls(plan, encoder, classifier, reused, reference)

    def scorer(self, progress: Progress | None, rows: int) -> _Scorer:
        """A scorer of ``rows`` picture sets."""
        return _Scorer(self.plan, self.encoder, self.classifier, self.reference, progress, rows)


def evaluate_generator(
    generator: LandscapeGenerator,
    data: GeneratorData,
    settings: EvaluationSettings | None = None,
    ablation: LandscapeGenerator | None = None,
    classifier_path: Path | None = None,
    cache_root: Path | None = None,
    encoder: Encoder | None = None,
    progress: Progress | None = None,
    names: tuple[str, str] = ("the model", "the ablation model"),
) -> GeneratorEvaluation:
    """Draw and score every row of the evaluation (module docstring).

    Args:
        generator: The checkpoint to evaluate, with its knowledge base.
        data: The data bundle of its training run (``generator_data.npz``).
        settings: What to draw (defaults: :class:`EvaluationSettings`).
        ablation: A second checkpoint, differing in TA-PMoE vs plain cross-attention.
        classifier_path: Where the land-cover classifier is cached (None: not saved).
        cache_root: Feature cache folder for the real tiles (None: the default one).
        encoder: The image encoder (default: the default image encoder).
        progress: ``callback(fraction, message)``.
        names: How messages name the model and the ablation model (the CLI gives their files).

    Raises:
        InputError: A knowledge base or checkpoint that does not fit the data, or an ablation
            model whose split settings differ or are not recorded.
        DataError: Eval sounds that are not held out, or too few classes.
    """
    settings = (settings or EvaluationSettings()).validate()
    report = progress or (lambda fraction, message: None)
    plan = plan_evaluation(data, settings)
    check_held_out(generator, data, plan, names[0])
    if ablation is not None:
        _check_same_split(generator, ablation, names)
        check_held_out(ablation, data, plan, names[1])
    judge = _Judge.of(data, plan, settings, classifier_path, cache_root, encoder, report)
    options = settings.options
    other_steps = [s for s in dict.fromkeys(settings.steps) if s != options.steps]
    visual = generator.loaded.via == "visual"
    drawn_rows = 6 + (options.voters > 1) + len(other_steps) + (ablation is not None) + visual
    scorer = judge.scorer(stage(progress, 0.15, 1.0), drawn_rows)
    started = time.monotonic()
    real = data.images_float(plan.bound_tiles)
    bound = Row(BOUND, scorer.images(real.numpy()))
    bound.seconds = time.monotonic() - started
    started = time.monotonic()
    codec = generator.loaded.codec
    with torch.no_grad():
        reconstructed = codec.decode(codec.encode(real)).numpy()
    through_codec = Row(RECONSTRUCTED, scorer.images(reconstructed), time.monotonic() - started)
    main_row = scorer.row(CONDITIONED, _conditioned(generator, data, plan, options))
    main = [
        bound,
        through_codec,
        main_row,
        scorer.row(SHUFFLED, _conditioned(generator, data, plan, options, plan.shuffled_rows)),
        scorer.row(UNCONDITIONAL, _unconditional(generator, plan, options.steps)),
        # Where the picture is lost when the scene is not: the label, given as --scene.
        scorer.row(PAIRED_SCENE, _conditioned(generator, data, plan, options, paired_scene=True)),
    ]
    if visual:
        # What the generator draws when the aligner is perfect: where the rest is lost.
        def own_embedding(pairs: np.ndarray) -> SoundCondition:
            return data.visual(data.pair_image[pairs])

        own_tile = _conditioned(generator, data, plan, options, condition=own_embedding)
        main.insert(3, scorer.row(PERFECT_ALIGNER, own_tile))
    ablations = _ablation_rows(generator, ablation, data, plan, settings, scorer, main_row)
    report(1.0, "scored")
    return GeneratorEvaluation(
        model_id=generator.loaded.model_id,
        classifier=judge.classifier,
        classifier_reused=judge.classifier_reused,
        plan=plan,
        main=main,
        ablations=ablations,
        settings=settings,
        ablation_model_id=None if ablation is None else ablation.loaded.model_id,
        via=generator.loaded.via,
    )


def score_variants(
    generator: LandscapeGenerator,
    data: GeneratorData,
    variants: Mapping[str, GenerationOptions],
    settings: EvaluationSettings | None = None,
    classifier_path: Path | None = None,
    cache_root: Path | None = None,
    encoder: Encoder | None = None,
    progress: Progress | None = None,
) -> list[tuple[Row, Row]]:
    """The conditioned row and its shuffled-sound control for each of several samplers.

    What a sweep of the sampler's settings (RAG strength, voters, guidance) needs, on the
    same plan, classifier and reference as :func:`evaluate_generator`, and without the rows
    that do not depend on the sampler.

    Returns:
        ``(conditioned, shuffled)`` rows per variant, named by its key.
    """
    settings = (settings or EvaluationSettings()).validate()
    report = progress or (lambda fraction, message: None)
    plan = plan_evaluation(data, settings)
    check_held_out(generator, data, plan, "the model")
    judge = _Judge.of(data, plan, settings, classifier_path, cache_root, encoder, report)
    scorer = judge.scorer(stage(progress, 0.15, 1.0), 2 * len(variants))
    rows = []
    for name, options in variants.items():
        conditioned = scorer.row(name, _conditioned(generator, data, plan, options))
        shuffled = _conditioned(generator, data, plan, options, plan.shuffled_rows)
        rows.append((conditioned, scorer.row(f"{name}, shuffled sounds", shuffled)))
    return rows


def _architecture(generator: LandscapeGenerator) -> str:
    return "TA-PMoE" if generator.loaded.model.config.use_moe else "plain cross-attention"


def _ablation_rows(
    generator: LandscapeGenerator,
    ablation: LandscapeGenerator | None,
    data: GeneratorData,
    plan: EvaluationPlan,
    settings: EvaluationSettings,
    scorer: _Scorer,
    main_row: Row,
) -> list[Row]:
    """RAG off, scene off, no vote, the step counts, and the architectures; one change each."""
    options = settings.options
    same = f"= {CONDITIONED}"
    no_rag = dataclasses.replace(options, use_rag=False)
    no_scene = dataclasses.replace(options, use_retrieved_scene=False)
    rows = [
        scorer.row(RAG_OFF, _conditioned(generator, data, plan, no_rag)),
        scorer.row(SCENE_OFF, _conditioned(generator, data, plan, no_scene)),
    ]
    if options.voters > 1:
        nearest = dataclasses.replace(options, voters=1)
        rows.append(scorer.row(NEAREST, _conditioned(generator, data, plan, nearest)))
    for steps in sorted({*settings.steps, options.steps}):
        name = f"{steps} DDIM steps"
        if steps == options.steps:
            rows.append(Row(name, main_row.scores, main_row.seconds, same))
        else:
            stepped = dataclasses.replace(options, steps=steps)
            rows.append(scorer.row(name, _conditioned(generator, data, plan, stepped)))
    mine = _architecture(generator)
    rows.append(Row(f"{mine} (this model)", main_row.scores, main_row.seconds, same))
    if ablation is None:
        other = "plain cross-attention" if mine == "TA-PMoE" else "TA-PMoE"
        rows.append(Row(other, None, 0.0, NOT_TRAINED))
    else:
        name = f"{_architecture(ablation)} ({ablation.loaded.model_id})"
        rows.append(scorer.row(name, _conditioned(ablation, data, plan, options)))
    return rows


# --------------------------------------------------------------------------- tables


COLUMNS = ("PSS-scene (proxy)", "PSS-element (proxy)", "FD-EffNet", "diversity", "pictures")


def _cells(row: Row) -> list[str]:
    if row.scores is None:
        return ["—"] * len(COLUMNS)
    s = row.scores
    values = [f"{s.pss_scene:.3f}", f"{s.pss_element:.3f}", f"{s.fd_effnet:.2f}"]
    values.append("—" if not np.isfinite(s.diversity) else f"{s.diversity:.2f}")
    return [*values, str(s.images)]


def _table(rows: Sequence[Row], chance: float | None = None) -> list[str]:
    lines = ["| row | " + " | ".join(COLUMNS) + " | seconds | note |",
             "|---|" + "---|" * (len(COLUMNS) + 2)]  # fmt: skip
    if chance is not None:
        cells = [f"{chance:.3f}", *["—"] * (len(COLUMNS) - 1)]
        lines.append("| chance | " + " | ".join(cells) + " | — | 1 / classes |")
    for row in rows:
        seconds = f"{row.seconds:.0f}" if row.scores is not None else "—"
        lines.append(f"| {row.name} | " + " | ".join(_cells(row)) + f" | {seconds} | {row.note} |")
    return lines


def format_evaluation(result: GeneratorEvaluation) -> str:
    """The main and ablation tables, the targets and the noise (Markdown, terminal and docs)."""
    plan, classifier = result.plan, result.classifier
    sounds = len(plan.sound_rows)
    pictures = len(plan.slot_sound)
    kind = "SounDiT" if result.via == "sound" else "Sound2Scene (hears through its aligner)"
    lines = [
        f"{kind} {result.model_id} on {sounds} held-out sounds of {len(plan.classes)} classes "
        f"({', '.join(plan.classes)}), {result.settings.per_sound} pictures each "
        "(dev figures, dev eval split; PSS figures are proxies)",
        "",
        f"Land-cover classifier behind the proxies: {classifier.encoder_id} features + logistic "
        f"regression on {classifier.train_tiles} dev train tiles; accuracy "
        f"{classifier.eval_accuracy:.3f} on {classifier.eval_tiles} dev eval tiles"
        f"{' (cached)' if result.classifier_reused else ''}.",
        "",
        *_table(result.main, result.chance),
        "",
        "Ablations (one change of the conditioned model each)",
        "",
        *_table(result.ablations),
        "",
        "Targets (dev figures):",
        *[f"  [{'met' if met else 'NOT met'}] {text}" for text, met in result.targets()],
        "",
        f"Noise: PSS-scene counts {sounds} sounds (pictures of one sound are not independent): "
        f"a share near 0.5 has a binomial standard error of about ±{0.5 / np.sqrt(sounds):.3f}. "
        f"FD-EffNet: {pictures} pictures against {len(plan.reference_tiles)} real reference "
        "tiles in 1280 dimensions; it depends on the count, so compare rows of these tables "
        "only. Diversity: mean pairwise feature distance among one sound's pictures (the bound: "
        "among real tiles of one class). FD-EffNet is not FID.",
    ]
    lines += [f"Note: {note}." for note in plan.notes]
    return "\n".join(lines)
