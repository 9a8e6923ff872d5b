"""How well a separator finds the sources of a mix (``geosound evaluate-separator``, METHODS §5).

The material is mixes of held-out single-source clips (:mod:`geosound.data.mixtures`), whose
sources are therefore known. Every method under test turns a mix into a set of unit vectors in
the audio encoder's pooled space (where the separator's slots live) and is scored the same way:

* **separator** — its present slots (:meth:`~geosound.models.separator.SeparatorOutput.present`);
* **mix** — the one embedding of the unseparated mix, what geosound did before;
* **oracle** — the embeddings of the clean sources themselves: the bound for a perfect
  separator under this classifier.

**R@k*** (AV-GAS's R@2* for ``k = 2``): a mix of ``k`` sources counts when all ``k`` true
classes are in the classifier's top ``k``, a class scoring the best cosine any of the set's
vectors gives it. Two classifiers name classes: *prototypes* — the mean embedding of the
train clips of each class (nearest-class-mean; no eval clip is used) — and *text* —
zero-shot: each vector lifted into the Sat2Sound space by its audio head
(:func:`lift_to_shared`) against the text side on each class's phrase under the prompt
ensemble. Chance is ``1 / C(C, k)`` for ``C`` classes.

**Counting accuracy**: the share of mixes whose number of present slots is the true number of
sources (1, 2 or 3).

Every figure is a dev figure when computed on the dev data's eval split.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from geosound.data.feature_cache import FeatureCache, content_key
from geosound.data.mixtures import Mixture, sound_onsets
from geosound.encoders import pad_tokens
from geosound.errors import DataError, InputError
from geosound.models.separator_checkpoint import LoadedSeparator
from geosound.progress import Progress

if TYPE_CHECKING:
    from geosound.space.shared import SharedSpace

__all__ = [
    "SEPARATION_RATIOS_DB",
    "EncodedMixtures",
    "SeparatedMixtures",
    "chance_recall",
    "check_separator_space",
    "class_prototypes",
    "clip_vectors",
    "counting_accuracy",
    "encode_mixtures",
    "evaluate_separator",
    "evaluation_mixtures",
    "lift_to_shared",
    "recall_all_in_top_k",
    "score_set",
    "separate_encoded",
    "separated_mixtures",
    "separation_clips",
    "text_class_vectors",
]

SEPARATION_RATIOS_DB: tuple[float, ...] = (0.0, -6.0, -12.0, -18.0)
"""Levels of the quieter source in the loudness sweep, relative to the louder one."""


def separation_clips(
    data_dir: Path | None = None, eval_fraction: float = 0.3, seed: int = 0
) -> pd.DataFrame:
    """The single-source dev clips (ESC-50) with their ``split`` and ``onset``.

    The split is the one ``geosound train`` gives the ESC-50 clips with the same seed and
    fraction (:func:`~geosound.data.splits.dev_split_tables`), so the eval clips are unheard
    by the separator and by the shipped Sat2Sound model alike.

    Raises:
        DataError: The dev data is missing or malformed.
    """
    from geosound.config import dev_data_dir
    from geosound.data.devsets import ESC50_FOLDER, load_esc50
    from geosound.data.splits import split_by_tile_and_clip

    clips = load_esc50(Path(data_dir or dev_data_dir()).expanduser() / ESC50_FOLDER)
    # The clip half of a split never reads the tiles (dev_split_tables relies on it too).
    no_tiles = pd.DataFrame({"label": pd.Series([], dtype=str)})
    clips["split"] = split_by_tile_and_clip(no_tiles, clips, eval_fraction, seed)[1].to_numpy()
    clips["onset"] = sound_onsets(clips["path"].tolist())
    return clips


@dataclass
class EncodedMixtures:
    """Mixes as the separator reads them, with what is in each.

    Attributes:
        tokens: ``(M, T, D_in)`` audio-encoder tokens of the mixes (padded).
        mask: ``(M, T)`` True at real tokens.
        pooled: ``(M, D_in)`` unit pooled embeddings of the mixes (the unseparated vector).
        sources: ``(M, K)`` rows of the sources in the clip table; −1 pads.
        shares: ``(M, K)`` each source's share of its mix's loudness; 0 at padding.
    """

    tokens: np.ndarray
    mask: np.ndarray
    pooled: np.ndarray
    sources: np.ndarray
    shares: np.ndarray

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def counts(self) -> np.ndarray:
        """``(M,)`` sources per mix."""
        return (self.sources >= 0).sum(axis=1)


def encode_mixtures(
    mixtures: Sequence[Mixture],
    cache: FeatureCache,
    max_sources: int,
    progress: Progress | None = None,
) -> EncodedMixtures:
    """Render and encode mixes through the feature cache (keyed by recipe: reruns are free)."""
    if not mixtures:
        raise DataError("no mixes to encode")
    recipes = [mixture.recipe for mixture in mixtures]
    features = cache.encode(
        recipes,
        keys=[content_key(recipe.to_dict()) for recipe in recipes],
        progress=progress,
        prepare=lambda recipe: recipe.render(),
    )
    tokens, mask = pad_tokens([torch.from_numpy(f.tokens) for f in features])
    sources = np.full((len(mixtures), max_sources), -1, dtype=np.int64)
    shares = np.zeros((len(mixtures), max_sources), dtype=np.float32)
    for i, mixture in enumerate(mixtures):
        k = len(mixture.sources)
        sources[i, :k] = mixture.sources
        shares[i, :k] = mixture.shares
    pooled = _unit(np.stack([f.pooled for f in features])).astype(np.float32)
    return EncodedMixtures(tokens.numpy(), mask.numpy().astype(bool), pooled, sources, shares)


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def clip_vectors(cache: FeatureCache, paths: Sequence[str]) -> np.ndarray:
    """``(S, D)`` unit pooled audio-encoder embeddings of clips (through the feature cache)."""
    from geosound.audio import load_audio

    pooled = cache.encode_pooled(list(paths), prepare=lambda p: load_audio(p, sample_rate=None))
    return _unit(pooled).astype(np.float32)


@torch.no_grad()
def lift_to_shared(space: SharedSpace, vectors: np.ndarray) -> np.ndarray:
    """Audio-encoder vectors ``(..., D_in)`` → unit Sat2Sound vectors ``(..., D)``.

    Each vector goes through the model's audio side as a one-token recording. The head starts
    with a LayerNorm, so a unit slot and an encoder token of any norm are read alike.
    """
    flat = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32)).reshape(
        -1, 1, vectors.shape[-1]
    )
    mask = torch.ones(flat.shape[:2], dtype=torch.bool)
    lifted = space.model.encode_audio(flat, mask).embedding.numpy()
    return lifted.reshape(*vectors.shape[:-1], lifted.shape[-1])


def class_prototypes(embeddings: np.ndarray, labels: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Sorted class names and ``(C, D)`` unit means of each class's unit embeddings."""
    labels_arr = np.asarray([str(label) for label in labels])
    classes = sorted(set(labels_arr.tolist()))
    unit = _unit(np.asarray(embeddings, dtype=np.float64))
    means = np.stack([unit[labels_arr == name].mean(axis=0) for name in classes])
    return classes, _unit(means).astype(np.float32)


def text_class_vectors(
    embed_texts: Callable[[list[str]], np.ndarray], classes: Sequence[str]
) -> np.ndarray:
    """``(C, D)`` zero-shot class vectors: each class's phrase under the prompt ensemble."""
    from geosound.data.concepts import SOUND_CONCEPTS
    from geosound.space.prompts import ensemble_vectors

    phrases = {name: [(SOUND_CONCEPTS.get(name, name.replace("_", " ")), 1.0)] for name in classes}
    return ensemble_vectors(embed_texts, phrases).astype(np.float32)


def recall_all_in_top_k(
    vectors: np.ndarray,
    present: np.ndarray,
    true_classes: Sequence[Sequence[int]],
    class_vectors: np.ndarray,
) -> float:
    """R@k*: the share of sets whose ``k`` true classes are all in the top ``k``.

    Args:
        vectors: ``(M, N, D)`` unit vectors, ``N`` per mix (slots, or one for the mix).
        present: ``(M, N)`` True at the vectors that count.
        true_classes: Per mix, the class indices of its ``k`` sources.
        class_vectors: ``(C, D)`` unit class vectors.
    """
    scores = np.einsum("mnd,cd->mnc", vectors, class_vectors)
    scores = np.where(present[..., None], scores, -np.inf).max(axis=1)
    hits = []
    for row, truth in zip(scores, true_classes, strict=True):
        k = len(truth)
        top = np.argsort(-row, kind="stable")[:k]
        hits.append(set(int(t) for t in truth) <= set(top.tolist()))
    return float(np.mean(hits))


def counting_accuracy(present: np.ndarray, counts: np.ndarray) -> float:
    """The share of mixes whose number of present slots is their number of sources."""
    return float(np.mean(present.sum(axis=1) == counts))


def chance_recall(classes: int, k: int) -> float:
    """R@k* of a classifier that ranks classes at random."""
    return 1.0 / math.comb(classes, k)


# ---------------------------------------------------------------------------------------------
# The evaluation: fixed sets of held-out mixes, three methods, two classifiers
# ---------------------------------------------------------------------------------------------


def evaluation_mixtures(
    clips: pd.DataFrame,
    mixtures: int = 300,
    sweep_mixtures: int = 150,
    lufs_range: tuple[float, float] = (-38.0, -20.0),
    max_delay: float = 1.0,
    seed: int = 0,
) -> dict[str, list[Mixture]]:
    """The named sets of mixes of ``clips`` (rows of that table) that the evaluation scores.

    ``1/2/3 sources``: mixes of that many clips of different classes at random loudness in
    ``lufs_range``; ``2 sources at R dB``: the loudness sweep (:func:`ratio_mixtures`), the
    same pairs at every ratio ``R`` in :data:`SEPARATION_RATIOS_DB`.
    """
    from geosound.data.mixtures import draw_mixtures, ratio_mixtures

    onsets = clips["onset"].to_numpy()
    sets = {
        f"{k} source{'s' if k > 1 else ''}": draw_mixtures(
            clips, onsets, mixtures, (k,), None, lufs_range, max_delay, seed=seed + 100 + k
        )
        for k in (1, 2, 3)
    }
    for ratio in SEPARATION_RATIOS_DB:
        sets[f"2 sources at {ratio:g} dB"] = ratio_mixtures(
            clips, onsets, sweep_mixtures, ratio, max_delay=max_delay, seed=seed + 200
        )
    return sets


@torch.no_grad()
def separate_encoded(
    model: torch.nn.Module, mixes: EncodedMixtures, batch: int = 256
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The separator on encoded mixes: ``(embeddings (M, N, D), present (M, N), shares)``."""
    embeddings, present, shares = [], [], []
    model.eval()
    for start in range(0, len(mixes), batch):
        tokens = torch.from_numpy(mixes.tokens[start : start + batch])
        mask = torch.from_numpy(mixes.mask[start : start + batch])
        output = model(tokens, mask)
        keep = output.present()
        embeddings.append(output.embeddings.numpy())
        present.append(keep.numpy())
        shares.append(output.shares(keep).numpy())
    return np.concatenate(embeddings), np.concatenate(present), np.concatenate(shares)


def score_set(
    mixes: EncodedMixtures,
    separated: tuple[np.ndarray, np.ndarray],
    source_embeddings: np.ndarray,
    source_classes: np.ndarray,
    classifiers: dict[str, tuple[Callable[[np.ndarray], np.ndarray], np.ndarray]],
) -> dict[str, object]:
    """R@k* of separator, mix and oracle under each classifier, and counting accuracy.

    Args:
        mixes: The set.
        separated: The separator's ``(embeddings, present)`` on it.
        source_embeddings: ``(S, D)`` unit embeddings of the clips ``mixes.sources`` indexes.
        source_classes: ``(S,)`` the class index of each of those clips.
        classifiers: Name → (how vectors enter its space, ``(C, D')`` class vectors there).
    """
    truth = [source_classes[row[row >= 0]].tolist() for row in mixes.sources]
    real = mixes.sources >= 0
    oracle = source_embeddings[np.where(real, mixes.sources, 0)]
    methods = {
        "separator": separated,
        "mix": (mixes.pooled[:, None, :], np.ones((len(mixes), 1), dtype=bool)),
        "oracle": (oracle, real),
    }
    recall = {
        method: {
            name: round(recall_all_in_top_k(into(vectors), present, truth, class_vectors), 4)
            for name, (into, class_vectors) in classifiers.items()
        }
        for method, (vectors, present) in methods.items()
    }
    return {
        "mixes": len(mixes),
        "recall": recall,
        "counting": {
            "separator": round(counting_accuracy(separated[1], mixes.counts), 4),
            "mix": round(counting_accuracy(np.ones((len(mixes), 1), bool), mixes.counts), 4),
        },
        "mean_sources_found": round(float(separated[1].sum(axis=1).mean()), 3),
    }


@dataclass(frozen=True)
class SeparatedMixtures:
    """Held-out mixes of one source count, the separator's slots, and the clean sources.

    Attributes:
        classes: ``(M, K)`` the true class of each source.
        true_shares: ``(M, K)`` each source's share of its mix's loudness.
        mix: ``(M, D_in)`` unit pooled embeddings of the mixes (the unseparated vector).
        slots: ``(M, N, D_in)`` the separator's slot vectors.
        present: ``(M, N)`` True at the slots it reports.
        shares: ``(M, N)`` the slots' shares of the loudness (0 where absent).
        clean: ``(M, K, D_in)`` unit pooled embeddings of the clean sources (the oracle).
    """

    classes: np.ndarray
    true_shares: np.ndarray
    mix: np.ndarray
    slots: np.ndarray
    present: np.ndarray
    shares: np.ndarray
    clean: np.ndarray


def separated_mixtures(
    separator: LoadedSeparator,
    space: SharedSpace,
    clips: pd.DataFrame,
    sources: int,
    mixtures: int,
    seed: int = 0,
    cache_root: Path | None = None,
) -> SeparatedMixtures:
    """The ``sources``-source set of :func:`evaluation_mixtures` of the eval clips, separated.

    What the generator-side figures (the Class Representation Score) draw from: the same held-out
    mixes the separator's own table scores, for the same ``mixtures`` and ``seed``.

    Raises:
        InputError: The separator does not belong to the space.
        DataError: No eval clips.
    """
    check_separator_space(separator, space)
    held_out = _eval_clips(clips)
    members = evaluation_mixtures(held_out, mixtures, 1, seed=seed)[
        f"{sources} source{'s' if sources > 1 else ''}"
    ]
    cache = FeatureCache(cache_root, space.encoders["audio"])
    mixes = encode_mixtures(members, cache, max_sources=sources)
    slots, present, shares = separate_encoded(separator.model, mixes)
    clean = clip_vectors(cache, held_out["path"].tolist())
    labels = held_out["label"].astype(str).to_numpy()
    return SeparatedMixtures(
        classes=labels[mixes.sources],
        true_shares=mixes.shares,
        mix=mixes.pooled,
        slots=slots,
        present=present,
        shares=shares,
        clean=clean[mixes.sources],
    )


def _eval_clips(clips: pd.DataFrame) -> pd.DataFrame:
    """The held-out rows of :func:`separation_clips`, the only ones mixed for figures.

    Raises:
        DataError: There are none.
    """
    held_out = clips[clips["split"] == "eval"].reset_index(drop=True)
    if held_out.empty:
        raise DataError("no eval clips to mix")
    return held_out


def check_separator_space(separator: LoadedSeparator, space: SharedSpace) -> None:
    """Refuse a separator trained in another space, or on another audio encoder's tokens.

    Raises:
        InputError: The spaces or the audio encoders differ.
    """
    if separator.sat2sound_space != space.space_id:
        raise InputError(
            f"separator {separator.model_id} was trained beside {separator.sat2sound_space}, "
            f"not {space.space_id}; give the Sat2Sound checkpoint it was trained with"
        )
    if separator.audio_encoder != space.encoders["audio"].id:
        raise InputError(
            f"separator {separator.model_id} reads {separator.audio_encoder} tokens, the space "
            f"hears through {space.encoders['audio'].id}"
        )


def evaluate_separator(
    separator: LoadedSeparator,
    space: SharedSpace,
    clips: pd.DataFrame,
    cache_root: Path | None = None,
    mixtures: int = 300,
    sweep_mixtures: int = 150,
    seed: int = 0,
    progress: Progress | None = None,
) -> dict[str, object]:
    """Every set of :func:`evaluation_mixtures` of the eval clips, scored (see the module doc).

    Args:
        separator: The separator under test.
        space: Its Sat2Sound space (checked with :func:`check_separator_space`).
        clips: :func:`separation_clips`; only its ``eval`` rows are mixed.
        cache_root: Feature cache of the encoded mixes.
        mixtures: Mixes per source count.
        sweep_mixtures: Mixes per ratio of the loudness sweep.
        seed: Seeds the mixes.
        progress: Hears of each set as it is encoded.

    Raises:
        InputError: The separator does not belong to the space.
        DataError: No eval clips, or eval clips of classes the separator does not know.
    """
    check_separator_space(separator, space)
    held_out = _eval_clips(clips)
    known = {name: i for i, name in enumerate(separator.classes)}
    unknown = sorted(set(held_out["label"]) - set(known))
    if unknown:
        raise DataError(f"eval clips of classes the separator does not know: {', '.join(unknown)}")
    report = progress or (lambda fraction, message: None)
    cache = FeatureCache(cache_root, space.encoders["audio"])
    source_embeddings = clip_vectors(cache, held_out["path"].tolist())
    source_classes = held_out["label"].map(known).to_numpy()
    classifiers: dict[str, tuple[Callable[[np.ndarray], np.ndarray], np.ndarray]] = {
        "prototypes": (lambda vectors: vectors, separator.prototypes.numpy()),
        "text": (
            lambda vectors: lift_to_shared(space, vectors),
            text_class_vectors(space.embed_texts, separator.classes),
        ),
    }
    sets = evaluation_mixtures(held_out, mixtures, sweep_mixtures, seed=seed)
    scored: dict[str, object] = {}
    for i, (name, members) in enumerate(sets.items()):
        report(i / len(sets), f"encoding {name} ({len(members)} mixes)")
        mixes = encode_mixtures(members, cache, max_sources=3)
        embeddings, present, _ = separate_encoded(separator.model, mixes)
        scored[name] = score_set(
            mixes, (embeddings, present), source_embeddings, source_classes, classifiers
        )
    report(1.0, "scored")
    classes = len(separator.classes)
    return {
        "separator": separator.model_id,
        "audio_space": separator.audio_encoder,
        "space": space.space_id,
        "eval_clips": len(held_out),
        "classes": classes,
        "chance": {f"R@{k}*": round(chance_recall(classes, k), 5) for k in (1, 2, 3)},
        "sets": scored,
        "note": (
            "dev figures: mixes of the dev eval clips (unheard in training); R@k* counts a mix "
            "when all k true classes are in the top k; 'prototypes' is nearest-class-mean over "
            "train-clip embeddings in the audio encoder's space, 'text' zero-shot through the "
            "Sat2Sound audio head and the prompt ensemble"
        ),
    }
