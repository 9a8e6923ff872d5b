"""Zero-shot evaluation as the field reports it: classes, plausible retrieval, ceilings.

Retrieval recall on sonified pairs (:mod:`geosound.evaluation.sat2sound_eval`) asks whether a
tile finds *its own* mix, which the pairing procedure half decides. The measures here ask
what a user of the space relies on, and the ones CLIP-style papers report:

* **Zero-shot land cover from sound prompts** — each class becomes one text vector, the prompt
  ensemble of its plausible sounds (:func:`geosound.space.prompts.ensemble_vectors`), and a
  tile is assigned the nearest class: top-1, per-class accuracy and the confusion matrix.
* **Image→audio precision@k** — for each tile, the share of its k nearest unseen clips whose
  class the dev data README's table calls likely *or possible* for the tile's land cover
  (:func:`plausible`). Several clips are right for a tile, so precision, not recall of one
  partner, is the measure.
* **Audio→text zero-shot** — each unseen clip against one prompt ensemble per sound class
  (its caption under the same templates): top-1.

Every figure sits beside what frames it (:class:`Method` rows):

* chance — closed form (1/C, the majority class, the expected share of plausible clips);
* a supervised *ceiling* of the frozen features — a logistic-regression probe trained on the
  training split's labels (for image→audio, the ranking that knows each tile's true land cover
  and uses the mean frozen audio feature of its likely sounds, BASELINES.md);
* the untrained linear map (:class:`LinearMapMethod`): frozen encoders joined by closed-form
  ridge maps fitted on the training pairs — what a trained space must beat;
* each Sat2Sound checkpoint (:class:`Sat2SoundMethod`), e.g. the previous shipped model.

All figures are dev figures on the training run's eval split (tiles and clips the model never
trained on); numbers of items are printed with them, because they are small.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from geosound.data.devsets import LANDCOVER_SOUNDS
from geosound.errors import InputError
from geosound.models import Sat2Sound

Labels = Sequence[str] | np.ndarray
"""Class names, one per item."""

__all__ = [
    "Classification",
    "Encoded",
    "LinearMapMethod",
    "Method",
    "Sat2SoundMethod",
    "classification",
    "linear_probe",
    "nearest",
    "oracle_landcover_ranking",
    "plausible",
    "precision_at_k",
    "precision_chance",
]


# --------------------------------------------------------------------------- classification


@dataclass(frozen=True)
class Classification:
    """A confusion matrix and what follows from it.

    Attributes:
        classes: Class names, the order of the matrix's rows (true) and columns (predicted).
        confusion: (C, C) counts; ``confusion[i, j]`` items of class i predicted as j.
    """

    classes: tuple[str, ...]
    confusion: np.ndarray

    @property
    def n(self) -> int:
        """Items classified."""
        return int(self.confusion.sum())

    @property
    def top1(self) -> float:
        """Share of items whose predicted class is the true one."""
        return float(np.trace(self.confusion) / max(self.n, 1))

    @property
    def per_class(self) -> dict[str, float]:
        """Accuracy (recall) of each class present; classes with no item are left out."""
        support = self.confusion.sum(axis=1)
        return {
            name: float(self.confusion[i, i] / support[i])
            for i, name in enumerate(self.classes)
            if support[i] > 0
        }

    @property
    def balanced(self) -> float:
        """Mean of the per-class accuracies: not carried by the largest class."""
        values = list(self.per_class.values())
        return float(np.mean(values)) if values else float("nan")

    @property
    def majority(self) -> float:
        """Top-1 of always answering the most frequent true class."""
        return float(self.confusion.sum(axis=1).max() / max(self.n, 1))


def classification(true: Labels, predicted: Labels, classes: Sequence[str]) -> Classification:
    """Count a confusion matrix over ``classes`` (rows true, columns predicted).

    Raises:
        InputError: Lengths differ, or a label is not one of ``classes``.
    """
    if len(true) != len(predicted):
        raise InputError(f"{len(true)} true labels but {len(predicted)} predictions")
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({str(x) for x in (*true, *predicted)} - set(index))
    if unknown:
        raise InputError(f"labels not among the classes: {', '.join(unknown)}")
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for t, p in zip(true, predicted, strict=True):
        confusion[index[str(t)], index[str(p)]] += 1
    return Classification(tuple(classes), confusion)


def nearest(vectors: np.ndarray, class_vectors: np.ndarray) -> np.ndarray:
    """Index of the most cosine-similar class vector for each row of ``vectors``."""
    return np.argmax(_unit(vectors) @ _unit(class_vectors).T, axis=1)


def linear_probe(
    train_x: np.ndarray, train_y: Labels, test_x: np.ndarray, seed: int = 0
) -> np.ndarray:
    """Labels a logistic-regression probe on frozen features predicts for ``test_x``.

    Standardised features and scikit-learn's defaults (L2, C = 1), as BASELINES.md measured
    its ceilings: the point is what a linear read-out of the frozen features can reach with
    the labels, not a tuned classifier.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(set(map(str, train_y))) < 2:
        raise InputError("a linear probe needs training items of at least two classes")
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    probe.fit(np.asarray(train_x, dtype=np.float64), np.asarray(train_y, dtype=str))
    return np.asarray(probe.predict(np.asarray(test_x, dtype=np.float64)), dtype=str)


# --------------------------------------------------------------------------- plausible retrieval


def plausible(
    tile_labels: Labels,
    clip_labels: Labels,
    table: Mapping[str, Mapping[str, Sequence[str]]] = LANDCOVER_SOUNDS,
) -> np.ndarray:
    """(tiles, clips) booleans: the clip's class is likely or possible for the tile's cover.

    Raises:
        InputError: A tile's land cover is not in ``table``.
    """
    sets = {}
    for label in set(map(str, tile_labels)):
        if label not in table:
            raise InputError(f"land cover {label!r} has no row in the sound table")
        sets[label] = {*table[label].get("likely", ()), *table[label].get("possible", ())}
    clips = np.asarray([str(c) for c in clip_labels])
    return np.stack([np.isin(clips, sorted(sets[str(t)])) for t in tile_labels])


def precision_at_k(similarity: np.ndarray, relevant: np.ndarray, k: int = 10) -> float:
    """Mean over queries of the share of relevant items among the k most similar.

    Ties are broken by gallery order (stable sort), so a constant score ranks as the gallery
    is listed rather than by luck.
    """
    similarity, relevant = np.asarray(similarity), np.asarray(relevant, dtype=bool)
    if similarity.shape != relevant.shape or similarity.ndim != 2:
        raise InputError(f"similarity {similarity.shape} and relevance {relevant.shape} differ")
    k = min(int(k), similarity.shape[1])
    if k < 1:
        raise InputError("precision@k needs k >= 1 and a non-empty gallery")
    top = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    return float(np.take_along_axis(relevant, top, axis=1).mean())


def precision_chance(relevant: np.ndarray) -> float:
    """Expected precision@k of a random ranking: each query's share of relevant items."""
    return float(np.asarray(relevant, dtype=bool).mean(axis=1).mean())


def oracle_landcover_ranking(
    tile_labels: Labels,
    train_audio: np.ndarray,
    train_clip_labels: Labels,
    gallery_audio: np.ndarray,
    table: Mapping[str, Mapping[str, Sequence[str]]] = LANDCOVER_SOUNDS,
) -> np.ndarray:
    """(tiles, gallery) scores of perfect land-cover knowledge with frozen audio features.

    Each tile's target is the mean (standardised) frozen feature of the *training* clips of
    its cover's likely sounds; gallery clips are ranked by cosine to it (BASELINES.md: 0.57
    precision@10). It knows the true label, so it is a ceiling for what an image side could
    tell a frozen audio side, not a method.
    """
    mean, std = train_audio.mean(0), train_audio.std(0) + 1e-6
    train = (train_audio - mean) / std
    gallery = (gallery_audio - mean) / std
    clips = np.asarray([str(c) for c in train_clip_labels])
    targets = {}
    for label in sorted(set(map(str, tile_labels))):
        members = np.isin(clips, list(table[label].get("likely", ())))
        targets[label] = train[members].mean(0) if members.any() else train.mean(0)
    target = np.stack([targets[str(t)] for t in tile_labels])
    return _unit(target) @ _unit(gallery).T


# --------------------------------------------------------------------------- methods


@dataclass(frozen=True)
class Encoded:
    """Frozen-encoder outputs of N items of one modality, with their labels.

    Attributes:
        pooled: (N, D) the encoder's pooled vectors (what probes and linear maps read).
        tokens: (N, T, D) token outputs, padded; ``mask`` (N, T) marks the real ones.
        labels: (N,) class of each item.
    """

    pooled: np.ndarray
    tokens: np.ndarray
    mask: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, keep: np.ndarray) -> Encoded:
        """The items where ``keep`` is True."""
        return Encoded(self.pooled[keep], self.tokens[keep], self.mask[keep], self.labels[keep])


class Method(Protocol):
    """Frozen features in, vectors of one comparable space out (for images, audio and text)."""

    name: str

    def images(self, items: Encoded) -> np.ndarray:
        """(N, D) vectors of encoded tiles."""
        ...

    def audio(self, items: Encoded) -> np.ndarray:
        """(N, D) vectors of encoded clips."""
        ...

    def texts(self, items: Encoded) -> np.ndarray:
        """(N, D) vectors of encoded prompts."""
        ...


class Sat2SoundMethod:
    """A trained checkpoint's heads applied to the frozen features it was trained on."""

    def __init__(self, name: str, model: Sat2Sound) -> None:
        self.name = name
        self.model = model.eval()

    def _run(self, encode: Callable[..., object], items: Encoded) -> np.ndarray:
        with torch.inference_mode():
            out = encode(torch.from_numpy(items.tokens), torch.from_numpy(items.mask))
        return out.embedding.numpy()  # type: ignore[attr-defined]

    def images(self, items: Encoded) -> np.ndarray:
        """Image head (with the codebook, if the model has one)."""
        return self._run(self.model.encode_image, items)

    def audio(self, items: Encoded) -> np.ndarray:
        """Audio head."""
        return self._run(self.model.encode_audio, items)

    def texts(self, items: Encoded) -> np.ndarray:
        """Text head."""
        return self._run(self.model.encode_text, items)


class LinearMapMethod:
    """Untrained encoders joined by closed-form ridge maps into the audio feature space.

    Fitted on the training pairs only: image features → the pair's audio features (the map of
    :func:`~geosound.evaluation.sat2sound_eval.linear_map_baseline`), and text features of the
    pair's audio caption → the same audio features, so prompts land in that space too. Audio
    is its own standardised feature. Nothing is learned by gradient descent.

    Args:
        image: (N, Di) pooled image features of the training pairs.
        audio: (N, Da) pooled audio features of the same pairs.
        text: (N, Dt) pooled text features of the pairs' audio captions.
        ridge: λ of ``(XᵀX + λ N I)⁻¹ XᵀY`` on standardised features.
    """

    name = "linear map (untrained encoders)"

    def __init__(
        self, image: np.ndarray, audio: np.ndarray, text: np.ndarray, ridge: float = 1.0
    ) -> None:
        self._audio = _Standard(audio)
        target = self._audio(audio)
        self._image = _RidgeMap(image, target, ridge)
        self._text = _RidgeMap(text, target, ridge)

    def images(self, items: Encoded) -> np.ndarray:
        """Image features mapped into the audio space."""
        return self._image(_mean_tokens(items))

    def audio(self, items: Encoded) -> np.ndarray:
        """Standardised audio features."""
        return self._audio(_mean_tokens(items))

    def texts(self, items: Encoded) -> np.ndarray:
        """Text features mapped into the audio space."""
        return self._text(_mean_tokens(items))


def _mean_tokens(items: Encoded) -> np.ndarray:
    """Masked token mean, the pooling the maps were fitted on (as the pair features give it)."""
    weights = items.mask[..., None].astype(np.float64)
    return (items.tokens * weights).sum(1) / np.maximum(weights.sum(1), 1.0)


class _Standard:
    """Standardise with the training set's mean and spread."""

    def __init__(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        self.mean, self.std = x.mean(0), x.std(0) + 1e-6

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.mean) / self.std


class _RidgeMap:
    """``W = (XᵀX + λ N I)⁻¹ XᵀY`` on standardised X, applied to new rows."""

    def __init__(self, x: np.ndarray, y: np.ndarray, ridge: float) -> None:
        self.standard = _Standard(x)
        xs = self.standard(x)
        self.weights = np.linalg.solve(
            xs.T @ xs + ridge * len(xs) * np.eye(xs.shape[1]), xs.T @ np.asarray(y, np.float64)
        )

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.standard(x) @ self.weights


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)
