"""Evaluation: retrieval metrics and baselines, reported as dev figures."""

from geosound.evaluation.retrieval import (
    DEFAULT_KS,
    RetrievalReport,
    chance_levels,
    ranks_of_partners,
    retrieval_report,
)

__all__ = [
    "DEFAULT_KS",
    "RetrievalReport",
    "chance_levels",
    "ranks_of_partners",
    "retrieval_report",
]
