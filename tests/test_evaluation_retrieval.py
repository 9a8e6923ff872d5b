"""Retrieval metrics against hand-computed cases and a Monte-Carlo chance level."""

from __future__ import annotations

import numpy as np
import pytest

from geosound.evaluation import chance_levels, ranks_of_partners, retrieval_report


def test_ranks_of_partners_counts_ties_against_the_partner():
    similarity = np.array([[0.9, 0.1, 0.2], [0.5, 0.5, 0.1], [0.3, 0.8, 0.2]])
    assert ranks_of_partners(similarity).tolist() == [1, 1, 3]
    similarity[1, 0] = 0.6
    assert ranks_of_partners(similarity).tolist() == [1, 2, 3]


def test_perfect_and_reversed_retrieval():
    x = np.eye(20)
    labels = [i % 4 for i in range(20)]
    perfect = retrieval_report(x, x, labels, labels, "a→b")
    assert perfect.recall[1] == 1.0 and perfect.median_rank == 1.0 and perfect.class_recall[1] == 1
    worst = retrieval_report(x, -x, labels, labels, "a→b")
    assert worst.recall[10] == 0.0 and worst.median_rank == 20.0
    assert worst.recall_at_10pct == 0.0


def test_class_recall_counts_any_item_of_the_class():
    queries = np.array([[1.0, 0.0], [0.0, 1.0]])
    gallery = np.array([[0.0, 1.0], [1.0, 0.0]])  # partners swapped
    report = retrieval_report(queries, gallery, ["a", "a"], ["a", "a"], "x")
    assert report.recall[1] == 0.0 and report.class_recall[1] == 1.0


def test_chance_levels_match_random_rankings():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=40).tolist()
    chance = chance_levels(labels, labels)
    simulated = [
        retrieval_report(rng.normal(size=(40, 8)), rng.normal(size=(40, 8)), labels, labels, "r")
        for _ in range(400)
    ]
    for k in (1, 5, 10):
        assert np.mean([s.recall[k] for s in simulated]) == pytest.approx(
            chance.recall[k], abs=0.02
        )
        mean_class = np.mean([s.class_recall[k] for s in simulated])
        assert mean_class == pytest.approx(chance.class_recall[k], abs=0.03)
    assert chance.median_rank == 20.5
