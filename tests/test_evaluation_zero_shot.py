"""Zero-shot evaluation maths on inputs worked out by hand, and the prompt ensemble."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from geosound.data.recipe import MixRecipe
from geosound.errors import InputError
from geosound.evaluation.suite import _manifest_sides
from geosound.evaluation.zero_shot import (
    Encoded,
    LinearMapMethod,
    classification,
    linear_probe,
    nearest,
    oracle_landcover_ranking,
    plausible,
    precision_at_k,
    precision_chance,
)
from geosound.space.prompts import (
    SOUND_TEMPLATES,
    ensemble_vectors,
    landcover_sound_prompts,
    prompt_ensemble,
    query_vectors,
)


def test_confusion_matrix_and_accuracies_by_hand():
    true = ["a", "a", "a", "b", "b", "c"]
    predicted = ["a", "b", "a", "b", "c", "c"]
    scored = classification(true, predicted, ["a", "b", "c"])
    assert scored.confusion.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert scored.n == 6
    assert scored.top1 == pytest.approx(4 / 6)
    assert scored.per_class == pytest.approx({"a": 2 / 3, "b": 1 / 2, "c": 1.0})
    assert scored.balanced == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert scored.majority == pytest.approx(3 / 6)


def test_classes_without_items_are_left_out_of_per_class():
    scored = classification(["a", "a"], ["a", "c"], ["a", "b", "c"])
    assert scored.per_class == {"a": 0.5}
    assert scored.balanced == 0.5


def test_unknown_labels_and_length_mismatch_are_refused():
    with pytest.raises(InputError, match="not among the classes: z"):
        classification(["a"], ["z"], ["a", "b"])
    with pytest.raises(InputError, match="2 true labels but 1"):
        classification(["a", "b"], ["a"], ["a", "b"])


def test_nearest_is_by_cosine_not_by_length():
    classes = np.array([[1.0, 0.0], [0.0, 1.0]])
    # A long vector near class 0 and a short one near class 1.
    vectors = np.array([[10.0, 1.0], [0.01, 0.1]])
    assert nearest(vectors, classes).tolist() == [0, 1]


def test_linear_probe_separates_separable_classes():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-3, 1, (20, 4)), rng.normal(3, 1, (20, 4))])
    y = ["left"] * 20 + ["right"] * 20
    test = np.array([[-3.0] * 4, [3.0] * 4])
    assert linear_probe(x, y, test).tolist() == ["left", "right"]
    with pytest.raises(InputError, match="two classes"):
        linear_probe(x, ["one"] * 40, test)


def test_plausible_uses_likely_and_possible_sounds():
    relevant = plausible(["SeaLake", "Highway"], ["sea_waves", "rain", "engine", "cow"])
    # SeaLake: sea_waves likely, rain possible; Highway: engine likely.
    assert relevant.tolist() == [[True, True, False, False], [False, False, True, False]]
    with pytest.raises(InputError, match="Moon"):
        plausible(["Moon"], ["rain"])


def test_precision_at_k_by_hand_and_chance():
    similarity = np.array([[0.9, 0.8, 0.1, 0.5], [0.1, 0.2, 0.3, 0.4]])
    relevant = np.array([[True, False, True, True], [False, False, False, True]])
    # Query 0 top-2: items 0 (yes), 1 (no) → 0.5; query 1 top-2: items 3 (yes), 2 (no) → 0.5.
    assert precision_at_k(similarity, relevant, k=2) == pytest.approx(0.5)
    # k larger than the gallery is the share of relevant items.
    assert precision_at_k(similarity, relevant, k=10) == pytest.approx((3 / 4 + 1 / 4) / 2)
    assert precision_chance(relevant) == pytest.approx((3 / 4 + 1 / 4) / 2)
    # A constant score ranks in gallery order, not at random.
    assert precision_at_k(np.zeros((1, 3)), np.array([[False, True, True]]), k=1) == 0.0


def test_precision_chance_is_what_random_rankings_average():
    rng = np.random.default_rng(1)
    relevant = rng.random((5, 40)) < 0.3
    draws = [precision_at_k(rng.random((5, 40)), relevant, k=10) for _ in range(2000)]
    assert np.mean(draws) == pytest.approx(precision_chance(relevant), abs=0.01)


def test_oracle_ranks_the_likely_sounds_of_the_true_cover_first():
    rng = np.random.default_rng(2)
    centres = {"sea_waves": 5.0, "engine": -5.0, "cow": 0.0}
    labels = ["sea_waves", "engine", "cow"] * 6
    train = np.stack([rng.normal(centres[c], 0.3, 8) * np.eye(8)[labels.index(c)] for c in labels])
    gallery_labels = ["engine", "sea_waves", "cow"]
    gallery = np.stack([train[labels.index(c)] for c in gallery_labels])
    scores = oracle_landcover_ranking(["SeaLake", "Highway"], train, labels, gallery)
    assert gallery_labels[int(np.argmax(scores[0]))] == "sea_waves"
    assert gallery_labels[int(np.argmax(scores[1]))] == "engine"


def test_linear_map_recovers_a_linear_relation():
    rng = np.random.default_rng(4)
    image = rng.normal(size=(300, 6))
    mixing = rng.normal(size=(6, 5))
    audio = image @ mixing
    text = rng.normal(size=(300, 3))
    method = LinearMapMethod(image, audio, text, ridge=1e-4)

    def encoded(x: np.ndarray) -> Encoded:
        return Encoded(x, x[:, None, :], np.ones((len(x), 1), bool), np.array(["x"] * len(x)))

    mapped = method.images(encoded(image[:20]))
    target = method.audio(encoded(audio[:20]))
    cosines = np.sum(mapped * target, axis=1) / (
        np.linalg.norm(mapped, axis=1) * np.linalg.norm(target, axis=1)
    )
    assert cosines.min() > 0.99


def test_prompt_ensemble_weights_and_templates():
    prompts, weights = prompt_ensemble([("waves", 3.0), ("wind", 1.0)], ("{}", "the sound of {}"))
    assert prompts == ["waves", "the sound of waves", "wind", "the sound of wind"]
    assert weights.tolist() == pytest.approx([0.375, 0.375, 0.125, 0.125])
    with pytest.raises(InputError, match="no '\\{\\}'"):
        prompt_ensemble([("waves", 1.0)], ("the sound of",))
    with pytest.raises(InputError, match="not all 0"):
        prompt_ensemble([("waves", 0.0)])


def test_ensemble_vectors_average_unit_prompts_and_embed_each_once():
    table = {"a": np.array([1.0, 0.0]), "the sound of a": np.array([0.0, 5.0]),
             "b": np.array([0.0, 1.0]), "the sound of b": np.array([0.0, 2.0])}  # fmt: skip
    calls: list[list[str]] = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return np.stack([table[t] for t in texts])

    classes = {"A": [("a", 1.0)], "B": [("b", 1.0)], "AB": [("a", 1.0), ("b", 1.0)]}
    vectors = ensemble_vectors(embed, classes, ("{}", "the sound of {}"))
    # A: mean of unit (1, 0) and unit (0, 1) → the diagonal, whatever the raw lengths.
    assert vectors[0] == pytest.approx(np.array([1.0, 1.0]) / np.sqrt(2))
    assert vectors[1] == pytest.approx([0.0, 1.0])
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0, 1.0, 1.0])
    assert len(calls) == 1 and len(calls[0]) == 4  # "AB" reuses A's and B's prompts


def test_query_vectors_are_per_query_ensembles_in_query_order():
    table = {"rain": np.array([3.0, 0.0]), "the sound of rain": np.array([0.0, 1.0]),
             "wind": np.array([0.0, 2.0]), "the sound of wind": np.array([0.0, 7.0])}  # fmt: skip

    def embed(texts: list[str]) -> np.ndarray:
        return np.stack([table[t] for t in texts])

    vectors = query_vectors(embed, ["wind", "rain", "wind"], ("{}", "the sound of {}"))
    assert vectors.dtype == np.float32 and vectors.shape == (3, 2)
    assert vectors[0] == pytest.approx([0.0, 1.0])
    assert vectors[1] == pytest.approx(np.array([1.0, 1.0]) / np.sqrt(2))  # not (3, 1)/|…|
    assert vectors[2] == pytest.approx(vectors[0])


def test_landcover_prompts_follow_the_concept_table():
    prompts = landcover_sound_prompts()
    assert set(prompts) >= {"SeaLake", "Forest", "Highway"}
    sea = dict(prompts["SeaLake"])
    assert sea["waves breaking on the shore"] == 3.0  # likely sound
    assert sea["rain falling on the ground"] == 1.0  # possible sound
    assert "{}" in SOUND_TEMPLATES


def test_manifest_sides_mark_training_tiles_and_heard_clips():
    source = {"path": "/x/esc/a.flac", "class": "rain", "caption": "rain", "concept": "rain",
              "licence": "l", "target_lufs": -23.0, "offset": 0.0}  # fmt: skip
    recipe = MixRecipe(16000, 5.0, (source,)).to_json()
    manifest = pd.DataFrame(
        {
            "image": ["/d/ms/t1.tif", "/d/ms/t1.tif", "/d/ms/t2.tif"],
            "audio": ["/x/esc/b.flac", recipe, "/x/esc/c.flac"],
            "split": ["eval", "train", "eval"],
        }
    )
    tiles, heard = _manifest_sides(manifest)
    # t1 is in a training pair (and an eval one): it was trained on.
    assert tiles == {"ms/t1.tif": "train", "ms/t2.tif": "eval"}
    # Only what training pairs contain was heard; a recipe's sources are read from its JSON.
    assert heard == {"esc/a.flac"}
