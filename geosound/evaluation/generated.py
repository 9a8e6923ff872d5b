"""Metrics of generated pictures of places, on images alone (``geosound evaluate-generator``).

SounDiT's paper scores its pictures with a segmenter, a scene classifier, human ratings and
FID on Inception features (METHODS.md §2). None of those models exist here, so every figure
below is what can be measured honestly with what we have, and named for what it is:

* **Land-cover classifier** (:class:`LandcoverClassifier`): the frozen default image encoder
  (EfficientNet-Lite0, 1280-d pooled) and a multinomial logistic-regression head trained on
  the dev *train* tiles; its own accuracy on the dev *eval* tiles is reported beside every
  figure it makes, because a proxy can be no better than the classifier behind it. Saved as
  plain arrays (:meth:`LandcoverClassifier.save`) and reused while the training features are
  the same (:func:`landcover_classifier`).
* **PSS-scene (proxy)** (:func:`pss_scene`): the share of pictures the classifier assigns the
  land cover of the tile their sound was paired with. Chance is ``1 / C``.
* **PSS-element (proxy)** (:func:`pss_element`): the paper compares the proportions of scene
  elements a segmenter finds in the generated and in the real picture; we have no segmenter,
  so the classifier's class-probability vector stands in for "what the picture contains".
  For each class ``c`` among the paired land covers, ``P_c`` is the mean probability vector
  of the pictures generated for sounds of class ``c`` and ``R_c`` that of the real reference
  tiles of class ``c``; the score is the mean over those classes (each class weighs the
  same) of ``1 − JS(P_c, R_c)``, the Jensen–Shannon divergence in bits, so it lies in [0, 1]:
  1 when the generated pictures of a class look, to the classifier, as the real tiles of that
  class do on average, 0 when the two profiles share no class at all.
* **FD-EffNet** (:func:`frechet_distance`): the Fréchet distance between Gaussian fits of the
  image encoder's pooled features of two image sets, ``‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½)``.
  It is FID's formula in another network's feature space, so its values are not FIDs and are
  never called that. Its estimate is biased upwards for small sets (the covariance of a few
  hundred images in 1280 dimensions), so only sets of equal size are compared.
* **Diversity** (:func:`diversity`): the mean pairwise Euclidean distance between the pooled
  features of the pictures drawn for the same sound (different seeds), averaged over sounds.
  0 means every seed gives the same picture.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geosound.atomic import atomic_path
from geosound.errors import DataError, InputError

__all__ = [
    "CLASSIFIER_FORMAT",
    "LandcoverClassifier",
    "Reference",
    "SetScores",
    "class_profiles",
    "diversity",
    "fit_landcover_classifier",
    "frechet_distance",
    "gaussian_fit",
    "js_divergence",
    "landcover_classifier",
    "pss_element",
    "pss_scene",
    "score_set",
]

CLASSIFIER_FORMAT = "geosound-landcover-classifier-1"

Labels = Sequence[str] | np.ndarray
"""Class names, one per item."""


# --------------------------------------------------------------------------- the classifier


@dataclass(frozen=True)
class LandcoverClassifier:
    """A linear land-cover head on frozen image features, as plain arrays.

    Attributes:
        classes: Class names, the order of the probability columns.
        encoder_id: The image encoder whose pooled features it reads.
        mean: ``(D,)`` feature means of the training tiles (standardisation).
        scale: ``(D,)`` feature standard deviations of the training tiles.
        coef: ``(C, D)`` weights of the standardised features.
        intercept: ``(C,)`` biases.
        fingerprint: Hash of what it was trained on (features, labels, classes, seed).
        train_tiles: Tiles it was trained on.
        eval_tiles: Held-out tiles its accuracy was measured on.
        eval_accuracy: Its top-1 accuracy on those tiles (dev figure).
    """

    classes: tuple[str, ...]
    encoder_id: str
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    fingerprint: str
    train_tiles: int = 0
    eval_tiles: int = 0
    eval_accuracy: float = float("nan")

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """``(n, C)`` class probabilities of pooled features ``(n, D)`` (softmax of the logits).

        Raises:
            InputError: Features of another width than the classifier's.
        """
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.mean.shape[0]:
            raise InputError(
                f"features of shape {x.shape} for a classifier of width {self.mean.shape[0]}"
            )
        logits = ((x - self.mean) / self.scale) @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return np.asarray(exp / exp.sum(axis=1, keepdims=True))

    def predict(self, features: np.ndarray) -> np.ndarray:
        """The most probable class of each row of ``features``."""
        return np.asarray(self.classes)[np.argmax(self.probabilities(features), axis=1)]

    def save(self, path: str | os.PathLike[str]) -> Path:
        """One ``.npz`` of arrays and a JSON head (no pickle), written atomically."""
        head = {
            "classes": list(self.classes),
            "encoder_id": self.encoder_id,
            "fingerprint": self.fingerprint,
            "train_tiles": self.train_tiles,
            "eval_tiles": self.eval_tiles,
            "eval_accuracy": self.eval_accuracy,
        }
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(
                handle,
                format=np.array(CLASSIFIER_FORMAT),
                head=np.array(json.dumps(head)),
                mean=self.mean,
                scale=self.scale,
                coef=self.coef,
                intercept=self.intercept,
            )
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LandcoverClassifier:
        """Read a classifier written by :meth:`save`.

        Raises:
            DataError: Missing, unreadable or foreign file.
        """
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["format"]) != CLASSIFIER_FORMAT:
                    raise DataError(f"not a {CLASSIFIER_FORMAT} file", path)
                head = json.loads(str(data["head"]))
                arrays = {k: data[k].astype(np.float64) for k in ("mean", "scale", "coef")}
                # The head is read here, inside the try: a file with the right format tag but
                # a head without these keys (or not a JSON object) is as foreign as any other.
                return cls(
                    classes=tuple(str(name) for name in head["classes"]),
                    encoder_id=str(head["encoder_id"]),
                    intercept=data["intercept"].astype(np.float64),
                    fingerprint=str(head["fingerprint"]),
                    train_tiles=int(head["train_tiles"]),
                    eval_tiles=int(head["eval_tiles"]),
                    eval_accuracy=float(head["eval_accuracy"]),
                    **arrays,
                )
        except (OSError, KeyError, TypeError, ValueError) as error:
            raise DataError(f"not a land-cover classifier ({error!r})", path) from None


def _fingerprint(
    features: np.ndarray, labels: Labels, classes: Sequence[str], encoder_id: str, seed: int
) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([list(classes), encoder_id, seed, [str(x) for x in labels]]).encode())
    digest.update(np.ascontiguousarray(features, dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


def fit_landcover_classifier(
    features: np.ndarray,
    labels: Labels,
    classes: Sequence[str],
    encoder_id: str,
    seed: int = 0,
) -> LandcoverClassifier:
    """Train the linear head on pooled features of labelled real tiles.

    Standardised features and scikit-learn's defaults (L2, C = 1, multinomial), like the
    linear probes of :func:`geosound.evaluation.zero_shot.linear_probe`: the point is a
    plain, reproducible read-out of the frozen features, not a tuned classifier.

    Raises:
        InputError: Fewer than two classes, or a label outside ``classes``.
    """
    from sklearn.linear_model import LogisticRegression

    y = np.asarray([str(x) for x in labels])
    unknown = sorted(set(y.tolist()) - set(classes))
    if unknown:
        raise InputError(f"labels not among the classes: {', '.join(unknown)}")
    if len(set(y.tolist())) < 2 or len(set(y.tolist())) != len(classes):
        raise InputError(
            f"the classifier needs training tiles of every class ({', '.join(classes)}); "
            f"got {', '.join(sorted(set(y.tolist()))) or 'none'}"
        )
    x = np.asarray(features, dtype=np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0  # a constant feature carries nothing; keep it finite
    index = {name: i for i, name in enumerate(classes)}
    head = LogisticRegression(max_iter=2000, random_state=seed)
    head.fit((x - mean) / scale, np.array([index[v] for v in y]))
    coef, intercept = head.coef_.astype(np.float64), head.intercept_.astype(np.float64)
    if len(classes) == 2:  # scikit-learn keeps one logit for two classes: softmax([0, z])
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    return LandcoverClassifier(
        classes=tuple(classes),
        encoder_id=encoder_id,
        mean=mean,
        scale=scale,
        coef=coef,
        intercept=intercept,
        fingerprint=_fingerprint(x, y, classes, encoder_id, seed),
        train_tiles=len(y),
    )


def landcover_classifier(
    train_features: np.ndarray,
    train_labels: Labels,
    eval_features: np.ndarray,
    eval_labels: Labels,
    classes: Sequence[str],
    encoder_id: str,
    cache: Path | None = None,
    seed: int = 0,
) -> tuple[LandcoverClassifier, bool]:
    """The classifier of these training tiles, read from ``cache`` or trained (and saved).

    A cached classifier is reused only when its fingerprint (training features, labels,
    classes, encoder, seed) matches, so a changed data bundle or encoder retrains it. Only
    its weights are reused: its accuracy is measured again on the eval tiles given here, so
    the figure printed always belongs to this run's eval tiles, whatever set the cached file
    was measured on.

    Returns:
        The classifier, with its accuracy on the eval tiles, and whether it came from the cache.
    """
    fingerprint = _fingerprint(
        np.asarray(train_features, np.float64),
        [str(x) for x in train_labels],
        classes,
        encoder_id,
        seed,
    )
    if cache is not None and cache.is_file():
        try:
            cached = LandcoverClassifier.load(cache)
        except DataError:
            cached = None  # a damaged or foreign file is replaced, never trusted
        if cached is not None and cached.fingerprint == fingerprint:
            return _measured(cached, eval_features, eval_labels), True
    classifier = fit_landcover_classifier(train_features, train_labels, classes, encoder_id, seed)
    classifier = _measured(classifier, eval_features, eval_labels)
    if cache is not None:
        classifier.save(cache)
    return classifier, False


def _measured(
    classifier: LandcoverClassifier, eval_features: np.ndarray, eval_labels: Labels
) -> LandcoverClassifier:
    """The classifier with its top-1 accuracy on these eval tiles (NaN for none)."""
    truth = np.asarray([str(x) for x in eval_labels])
    predicted = classifier.predict(eval_features) if len(truth) else truth
    accuracy = float(np.mean(predicted == truth)) if len(truth) else float("nan")
    return dataclasses.replace(classifier, eval_tiles=len(truth), eval_accuracy=accuracy)


# --------------------------------------------------------------------------- PSS (proxies)


def _class_index(labels: Labels, classes: Sequence[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({str(x) for x in labels} - set(index))
    if unknown:
        raise InputError(f"labels not among the classifier's classes: {', '.join(unknown)}")
    return np.array([index[str(x)] for x in labels], dtype=np.int64)


def pss_scene(probabilities: np.ndarray, labels: Labels, classes: Sequence[str]) -> float:
    """PSS-scene (proxy): share of pictures whose most probable class is their paired label.

    Raises:
        InputError: No pictures, shapes that differ, or a label outside ``classes``.
    """
    probabilities = np.asarray(probabilities)
    if len(probabilities) == 0 or len(probabilities) != len(labels):
        raise InputError(f"{len(probabilities)} pictures but {len(labels)} labels")
    target = _class_index(labels, classes)
    return float(np.mean(np.argmax(probabilities, axis=1) == target))


def class_profiles(
    probabilities: np.ndarray, labels: Labels, classes: Sequence[str]
) -> dict[str, np.ndarray]:
    """Mean probability vector of the items of each class present in ``labels``."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    target = _class_index(labels, classes)
    return {
        classes[c]: probabilities[target == c].mean(axis=0) for c in sorted(set(target.tolist()))
    }


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon divergence of two probability vectors, in bits (in [0, 1])."""
    p = np.asarray(p, np.float64) / max(float(np.sum(p)), 1e-300)
    q = np.asarray(q, np.float64) / max(float(np.sum(q)), 1e-300)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        nonzero = a > 0
        return float(np.sum(a[nonzero] * np.log2(a[nonzero] / m[nonzero])))

    return float(np.clip(0.5 * kl(p) + 0.5 * kl(q), 0.0, 1.0))


def pss_element(
    probabilities: np.ndarray,
    labels: Labels,
    reference_probabilities: np.ndarray,
    reference_labels: Labels,
    classes: Sequence[str],
) -> float:
    """PSS-element (proxy): mean over paired classes of ``1 − JS(P_c, R_c)`` (module docstring).

    Args:
        probabilities: ``(n, C)`` classifier probabilities of the generated pictures.
        labels: Paired land cover of each picture.
        reference_probabilities: ``(m, C)`` probabilities of real reference tiles.
        reference_labels: Land cover of each reference tile.
        classes: The classifier's classes (column order).

    Raises:
        InputError: A paired class has no reference tile.
    """
    generated = class_profiles(probabilities, labels, classes)
    real = class_profiles(reference_probabilities, reference_labels, classes)
    missing = sorted(set(generated) - set(real))
    if missing:
        raise InputError(f"no real reference tiles of {', '.join(missing)}")
    return float(np.mean([1.0 - js_divergence(generated[c], real[c]) for c in generated]))


# --------------------------------------------------------------------------- FD-EffNet, diversity


def gaussian_fit(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and covariance ``(D, D)`` (unbiased) of ``(n, D)`` features, n ≥ 2.

    Raises:
        InputError: Fewer than two rows.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise InputError(f"a Gaussian fit needs at least two feature rows; got {x.shape}")
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def frechet_distance(first: np.ndarray, second: np.ndarray) -> float:
    """FD-EffNet: Fréchet distance of Gaussian fits of two feature sets (module docstring).

    ``Tr((Σ₁Σ₂)^½)`` is the sum of the square roots of the eigenvalues of ``Σ₁Σ₂``. With
    ``Σ₁ = X̃ᵀX̃ / (n − 1)`` (``X̃`` the centred rows of the smaller set) those are, apart
    from zeros, the eigenvalues of the symmetric ``n × n`` matrix ``X̃ Σ₂ X̃ᵀ / (n − 1)``, so
    with fewer images than dimensions the trace comes from one small ``eigvalsh`` instead of
    ``scipy.linalg.sqrtm`` of a singular 1280 × 1280 product: the same value (the tests check
    it against ``sqrtm``) in a fraction of a second rather than half a minute, without
    complex round-off. With more images than dimensions the symmetric ``D × D`` form
    ``Σ₂^½ Σ₁ Σ₂^½`` is used instead.

    Args:
        first: ``(n, D)`` features of one set (n ≥ 2).
        second: ``(m, D)`` features of the other (m ≥ 2).

    Raises:
        InputError: Fewer than two rows in a set, or widths that differ.
    """
    x1, x2 = np.asarray(first, np.float64), np.asarray(second, np.float64)
    mu1, sigma1 = gaussian_fit(x1)
    mu2, sigma2 = gaussian_fit(x2)
    if mu1.shape != mu2.shape:
        raise InputError(f"feature widths differ: {mu1.shape[0]} and {mu2.shape[0]}")
    trace_sqrt = _trace_sqrt_product(x1, sigma1, x2, sigma2)
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt
    return float(max(value, 0.0))


def _trace_sqrt_product(
    x1: np.ndarray, sigma1: np.ndarray, x2: np.ndarray, sigma2: np.ndarray
) -> float:
    """``Tr((Σ₁Σ₂)^½)`` from the eigenvalues of a symmetric matrix of the smaller size."""
    small, other = (x1, sigma2) if len(x1) <= len(x2) else (x2, sigma1)
    if len(small) <= small.shape[1]:
        centred = small - small.mean(axis=0)
        matrix = centred @ other @ centred.T / (len(small) - 1)
    else:
        values, vectors = np.linalg.eigh(sigma2)
        root = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
        matrix = root @ sigma1 @ root
    eigenvalues = np.linalg.eigvalsh((matrix + matrix.T) / 2.0)
    # Round-off leaves the zero eigenvalues at ±1e-16 of the largest; their square roots
    # (1e-8 each) would add up, so they are zeroed as numpy's matrix_rank would count them.
    tolerance = max(float(eigenvalues.max()), 0.0) * len(eigenvalues) * np.finfo(float).eps
    return float(np.sqrt(eigenvalues[eigenvalues > tolerance]).sum())


def diversity(features: np.ndarray, groups: Sequence[object] | np.ndarray) -> float:
    """Mean over groups (sounds) of the mean pairwise Euclidean feature distance in the group.

    Groups of one picture say nothing about diversity and are left out.

    Raises:
        InputError: Lengths differ, or no group has two pictures.
    """
    from scipy.spatial.distance import pdist

    x = np.asarray(features, dtype=np.float64)
    keys = np.asarray([str(g) for g in groups])
    if len(keys) != len(x):
        raise InputError(f"{len(x)} feature rows but {len(keys)} group labels")
    values = [float(pdist(x[keys == key]).mean()) for key in dict.fromkeys(keys.tolist())
              if int(np.sum(keys == key)) > 1]  # fmt: skip
    if not values:
        raise InputError("diversity needs at least two pictures of one sound")
    return float(np.mean(values))


# --------------------------------------------------------------------------- one image set


@dataclass(frozen=True)
class Reference:
    """The real tiles every picture set is compared with: features, labels, probabilities.

    Attributes:
        features: ``(m, D)`` pooled features.
        labels: Land cover of each tile.
        probabilities: ``(m, C)`` classifier probabilities.
    """

    features: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray

    @classmethod
    def of(cls, features: np.ndarray, labels: Labels, classifier: LandcoverClassifier) -> Reference:
        """Classify the reference tiles once."""
        return cls(
            np.asarray(features),
            np.asarray([str(x) for x in labels]),
            classifier.probabilities(features),
        )


@dataclass(frozen=True)
class SetScores:
    """The four figures of one set of pictures (see the module docstring).

    Attributes:
        pss_scene: PSS-scene (proxy).
        pss_element: PSS-element (proxy).
        fd_effnet: FD-EffNet to the reference tiles.
        diversity: Mean pairwise feature distance per sound (NaN with one picture per sound).
        images: Pictures scored.
        sounds: Sounds (groups) they were drawn for.
    """

    pss_scene: float
    pss_element: float
    fd_effnet: float
    diversity: float
    images: int
    sounds: int

    def as_dict(self) -> dict[str, float | int | None]:
        """Rounded builtins for JSON; NaN becomes None."""
        return {k: _rounded(v) for k, v in self.__dict__.items()}


def _rounded(value: float | int) -> float | int | None:
    if isinstance(value, int):
        return value
    return None if not np.isfinite(value) else round(float(value), 4)


def score_set(
    features: np.ndarray,
    labels: Labels,
    groups: Sequence[object] | np.ndarray,
    classifier: LandcoverClassifier,
    reference: Reference,
) -> SetScores:
    """Score pictures ``features (n, D)`` paired with land covers ``labels``, drawn per group.

    ``groups`` names the sound each picture was drawn for (diversity is measured within one).
    """
    probabilities = classifier.probabilities(features)
    keys = [str(g) for g in groups]
    many = len(keys) > len(set(keys))
    return SetScores(
        pss_scene=pss_scene(probabilities, labels, classifier.classes),
        pss_element=pss_element(
            probabilities, labels, reference.probabilities, reference.labels, classifier.classes
        ),
        fd_effnet=frechet_distance(features, reference.features),
        diversity=diversity(features, keys) if many else float("nan"),
        images=len(keys),
        sounds=len(set(keys)),
    )
