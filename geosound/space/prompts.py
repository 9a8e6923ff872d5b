"""Prompt ensembles: one text vector per class from several phrasings, as zero-shot CLIP does.

A single phrase is a noisy probe of a text encoder: "sea waves" and "a recording of sea
waves" land in slightly different places, and which one a class happens to get decides
more of a zero-shot score than the model does. CLIP's zero-shot practice (Radford et al.
2021, §3.1.4) therefore embeds every class under several templates and averages the unit
vectors; the mean direction is steadier than any one prompt. Here a class is described by
*several sounds* too (a land cover's plausible sounds, with weights), so the ensemble runs
over sounds × templates: every (sound, template) prompt is embedded once, normalised, and
the class vector is the weighted mean, renormalised.

Used by the zero-shot evaluation (:mod:`geosound.evaluation.zero_shot`) for class vectors,
and by every text query a user types (:func:`query_vectors`: map layers, the demo, bank
search, the query and scene evaluations), each query its own one-phrase ensemble.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from geosound.data.concepts import CONCEPT_PHRASES, Concept
from geosound.errors import InputError

__all__ = [
    "SOUND_TEMPLATES",
    "ensemble_vectors",
    "landcover_sound_prompts",
    "prompt_ensemble",
    "query_vectors",
]

SOUND_TEMPLATES: tuple[str, ...] = ("{}", "the sound of {}", "a recording of {}")
"""Phrasings each sound is put through. Fixed before any figure was computed (the two the
issue names, plus the bare phrase, which is how captions are written); not tuned."""

WeightedPhrases = Sequence[tuple[str, float]]
"""A class's sounds as (phrase, weight) pairs, e.g. ``[("birds chirping in trees", 3.0)]``."""


def prompt_ensemble(
    phrases: WeightedPhrases, templates: Sequence[str] = SOUND_TEMPLATES
) -> tuple[list[str], np.ndarray]:
    """Every (phrase, template) prompt of one class and its weight (the phrase's, shared).

    Returns:
        ``(prompts, weights)``: the prompt texts, and a weight per prompt that sums to 1.

    Raises:
        InputError: No phrase, no template, a template without ``{}``, or weights that are
            negative or all zero.
    """
    if not phrases or not templates:
        raise InputError("a prompt ensemble needs at least one phrase and one template")
    for template in templates:
        if "{}" not in template:
            raise InputError(f"prompt template {template!r} has no '{{}}' for the phrase")
    weights = np.asarray([float(weight) for _, weight in phrases], dtype=np.float64)
    if np.any(weights < 0) or not weights.sum() > 0:
        raise InputError(f"phrase weights must be >= 0 and not all 0; got {weights.tolist()}")
    prompts = [template.format(phrase) for phrase, _ in phrases for template in templates]
    per_prompt = np.repeat(weights / weights.sum(), len(templates)) / len(templates)
    return prompts, per_prompt


def ensemble_vectors(
    embed_texts: Callable[[list[str]], np.ndarray],
    classes: Mapping[str, WeightedPhrases],
    templates: Sequence[str] = SOUND_TEMPLATES,
) -> np.ndarray:
    """(C, D) unit class vectors: the weighted mean of each class's unit prompt vectors.

    Args:
        embed_texts: Texts → (N, D) vectors, e.g. a space's ``embed_texts``; they need not be
            normalised.
        classes: Class name → its (phrase, weight) pairs, in the order of the result's rows.
        templates: Phrasings, each with one ``{}``.

    Returns:
        float64 unit vectors, one row per class, in ``classes`` order.
    """
    ensembles = [prompt_ensemble(classes[name], templates) for name in classes]
    prompts = [prompt for texts, _ in ensembles for prompt in texts]
    unique = list(dict.fromkeys(prompts))  # classes often share a sound: embed it once
    vectors = _unit(np.asarray(embed_texts(unique), dtype=np.float64))
    row = {prompt: i for i, prompt in enumerate(unique)}
    return _unit(np.stack([w @ vectors[[row[p] for p in texts]] for texts, w in ensembles]))


def query_vectors(
    embed_texts: Callable[[list[str]], np.ndarray],
    queries: Sequence[str],
    templates: Sequence[str] = SOUND_TEMPLATES,
) -> np.ndarray:
    """(Q, D) float32 unit vectors of text queries, each the ensemble of its phrasings.

    "traffic" is embedded as "traffic", "the sound of traffic" and "a recording of traffic",
    and the three unit vectors averaged: the same practice as the class vectors, for the words
    a user types into ``geosound map -t``. Repeated queries get the same vector.
    """
    classes = {query: [(query, 1.0)] for query in queries}
    vectors = ensemble_vectors(embed_texts, classes, templates)
    row = {query: i for i, query in enumerate(classes)}
    return vectors[[row[query] for query in queries]].astype(np.float32)


def landcover_sound_prompts(
    table: Mapping[str, Sequence[Concept]] | None = None,
) -> dict[str, list[tuple[str, float]]]:
    """Each land cover's sounding concepts as (phrase, weight): what zero-shot asks for.

    The phrases and weights are those Seeing Sound draws a tile's sounds from
    (:data:`~geosound.data.concepts.CONCEPT_PHRASES`: the dev data README's table, "likely"
    sounds weighing three times "possible" ones), so a class vector describes the same
    soundscape the pairs gave the class, not words chosen to score well.

    Args:
        table: Land cover → :class:`~geosound.data.concepts.Concept` items (default: the
            concept table).
    """
    source = CONCEPT_PHRASES if table is None else table
    return {
        landcover: [(c.phrase, c.weight) for c in concepts]
        for landcover, concepts in source.items()
    }


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)
