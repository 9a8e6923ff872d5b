"""Do sound queries light up the right land cover? Per-query ROC-AUC on labelled tiles (dev).

A map of "sea waves" is only useful if water tiles score higher than the rest. EuroSAT tiles
carry a land-cover label, so each tile can be mapped on its own (one tile, one similarity
per query) and the label used as ground truth: for each query, the tiles of its *positive*
classes should rank above all other tiles. ROC-AUC measures exactly that — the chance that a
random positive tile outscores a random negative one — whatever the similarity's scale, so
the trained Sat2Sound space and the training-free stand-in
(:class:`~geosound.space.imagenet_bridge.ImageNetTextBridge`) sit in one table.

Which classes are positive for a query (:data:`DEFAULT_QUERY_CLASSES`)
    The rule, fixed before any figure was computed: a class is positive when the dev data
    README's land cover → ESC-50 co-occurrence table (:data:`~geosound.data.LANDCOVER_SOUNDS`)
    lists the query's sound as *likely* there, narrowed further only where the query's own
    words name the place ("in trees"). A query is never scored against a class where that
    table calls its sound likely — that would penalise a map for what the table, and the
    world, say is right.

    * "sea waves" → SeaLake: the only class with ``sea_waves`` likely.
    * "running water" → River: ``pouring_water`` and ``water_drops`` are likely only there
      (``water_drops`` is merely possible at SeaLake, and a lake does not "run").
    * "traffic" → Highway, Industrial, Residential: traffic is ``engine`` / ``car_horn``;
      both are likely on Highway and Residential, ``engine`` is likely on Industrial. Scoring
      Highway alone would count towns and industrial estates, where the table (and any
      street) has traffic, as misses.
    * "birds in trees" → Forest: ``chirping_birds`` is likely on four covers (AnnualCrop,
      Forest, HerbaceousVegetation, PermanentCrop), but "in trees" names woodland. This
      keeps three bird-likely classes among the negatives, so it is a hard query by design;
      "birds chirping" (below) is its place-free counterpart.
    * "birds chirping" → AnnualCrop, Forest, HerbaceousVegetation, PermanentCrop: every
      class with ``chirping_birds`` likely.
    * "cows mooing" → Pasture: the only class with ``cow`` likely.
    * "church bells" → Residential: the only class with ``church_bells`` likely.
    * "crickets chirping" → HerbaceousVegetation, PermanentCrop: ``crickets`` likely there
      (only possible on AnnualCrop).
    * "frogs croaking" → River: ``frog`` likely only there.
    * "sirens" → Industrial: ``siren`` likely only there (possible on Highway, Residential).
    * "dog barking" → Residential: ``dog`` likely only there.

    The queries are short, user-style phrases. They are close to the vocabulary Sat2Sound was
    trained with (its captions are phrases such as "sea waves crashing" and "birds chirping
    in trees", written from the same table), so this is an in-vocabulary check of the
    land-cover → sound association, not of open-vocabulary search.

Held-out tiles
    The shipped model was trained on the dev EuroSAT *train* tiles. :func:`dev_tiles`
    rebuilds the split from a checkpoint's own training config
    (:func:`~geosound.data.splits.split_by_tile_and_clip`, as ``geosound train`` made it), so
    ``split="eval"`` gives the tiles the model never saw. ``split="all"`` includes training
    tiles and must be labelled so wherever it is shown.

Chance
    :func:`shuffled_null` permutes the tile labels (seeded) and recomputes every AUC: its mean
    is ≈ 0.5, and its 95th percentile shows how far from 0.5 chance alone reaches with so few
    positive tiles — with ~5 positives among ~50 tiles that is far. Without ties the
    shuffled AUC's distribution depends only on the numbers of positives and negatives, not on
    the scores, so the same null column serves every method in a table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from geosound.data.devsets import EUROSAT_CLASSES
from geosound.errors import DataError, InputError
from geosound.progress import Progress
from geosound.space import EmbeddingSpace
from geosound.space.prompts import query_vectors

__all__ = [
    "DEFAULT_NULL_PERMUTATIONS",
    "DEFAULT_QUERY_CLASSES",
    "MEAN_ROW",
    "auc_table",
    "dev_tiles",
    "format_query_table",
    "null_aucs",
    "query_auc",
    "read_tile_images",
    "roc_auc",
    "shuffled_null",
    "tile_similarities",
]

Split = Literal["eval", "all"]

DEFAULT_NULL_PERMUTATIONS = 200
MEAN_ROW = "mean over queries"
"""The ``query`` of the summary row that :func:`shuffled_null` appends."""

DEFAULT_QUERY_CLASSES: dict[str, frozenset[str]] = {
    "sea waves": frozenset({"SeaLake"}),
    "running water": frozenset({"River"}),
    "traffic": frozenset({"Highway", "Industrial", "Residential"}),
    "birds in trees": frozenset({"Forest"}),
    "birds chirping": frozenset({"AnnualCrop", "Forest", "HerbaceousVegetation", "PermanentCrop"}),
    "cows mooing": frozenset({"Pasture"}),
    "church bells": frozenset({"Residential"}),
    "crickets chirping": frozenset({"HerbaceousVegetation", "PermanentCrop"}),
    "frogs croaking": frozenset({"River"}),
    "sirens": frozenset({"Industrial"}),
    "dog barking": frozenset({"Residential"}),
}
"""Query → the EuroSAT classes whose tiles should score highest (reasoning: module doc)."""


# --------------------------------------------------------------------------- the statistic


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC-AUC in closed form: the Mann–Whitney U of the positives, over n_pos · n_neg.

    Ranking all scores with mid-ranks makes a tie between a positive and a negative count
    half, the usual convention, and needs no threshold sweep (nor scikit-learn).

    Args:
        scores: (N,) scores; higher means "more positive".
        positive: (N,) booleans.

    Returns:
        The probability that a random positive outscores a random negative (ties half).

    Raises:
        InputError: Lengths differ, or one of the two groups is empty (AUC undefined).
    """
    scores = np.asarray(scores, dtype=float)
    positive = np.asarray(positive, dtype=bool)
    if scores.shape != positive.shape or scores.ndim != 1:
        raise InputError(f"scores {scores.shape} and labels {positive.shape} must be equal 1-D")
    return float(_auc_from_ranks(rankdata(scores), positive[None, :])[0])


def _auc_from_ranks(ranks: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """AUC for each row of ``positive`` (R, N) given the mid-ranks (N,) of one score vector.

    Ranks do not depend on labels, so permutation nulls reuse one ranking.
    """
    n_pos = positive.sum(axis=1)
    n_neg = positive.shape[1] - n_pos
    if np.any(n_pos == 0) or np.any(n_neg == 0):
        raise InputError("ROC-AUC needs at least one positive and one negative")
    u = (positive * ranks[None, :]).sum(axis=1) - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


# --------------------------------------------------------------------------- tiles


def dev_tiles(
    data_dir: Path | None = None,
    split: Split = "eval",
    train_config: Mapping[str, Any] | None = None,  # a checkpoint's JSON
) -> pd.DataFrame:
    """The dev EuroSAT tiles of a split, rebuilt exactly as ``geosound train`` split them.

    Args:
        data_dir: Folder holding ``eurosat_ms_geotiff/`` and ``esc50_outdoor_16k/`` (default:
            the dev data). The clip index is read because the split function takes both
            tables; the tile split depends on the tiles, the fraction and the seed only.
        split: ``"eval"`` (held out from training) or ``"all"`` (includes training tiles).
        train_config: The checkpoint's ``info["train_config"]`` (needs ``eval_fraction`` and
            ``seed``); required for ``"eval"``, because only it says which tiles were trained
            on.

    Returns:
        The tiles (:func:`~geosound.data.load_eurosat_tiles` columns) with a ``train_split``
        column, in index order.

    Raises:
        InputError: Unknown split, or ``"eval"`` without the two settings.
        DataError: The dev data is missing.
    """
    from geosound.config import dev_data_dir
    from geosound.data.devsets import (
        ESC50_FOLDER,
        EUROSAT_MS_FOLDER,
        load_esc50,
        load_eurosat_tiles,
    )
    from geosound.data.splits import split_by_tile_and_clip

    if split not in ("eval", "all"):
        raise InputError(f"split must be 'eval' or 'all'; got {split!r}")
    config = dict(train_config or {})
    known = "eval_fraction" in config and "seed" in config
    if split == "eval" and not known:
        raise InputError(
            "the checkpoint records no train_config with eval_fraction and seed, so its "
            "held-out tiles are unknown; use split 'all' (includes training tiles)"
        )
    root = Path(data_dir or dev_data_dir()).expanduser()
    tiles = load_eurosat_tiles(root / EUROSAT_MS_FOLDER)
    if known:
        clips = load_esc50(root / ESC50_FOLDER)
        tile_split, _ = split_by_tile_and_clip(
            tiles, clips, float(config["eval_fraction"]), int(config["seed"])
        )
        tiles = tiles.assign(train_split=tile_split.to_numpy())
    else:
        tiles = tiles.assign(train_split="unknown")
    if split == "eval":
        tiles = tiles[tiles["train_split"] == "eval"]
    return tiles.reset_index(drop=True)


def read_tile_images(paths: Sequence[str], progress: Progress | None = None) -> list[np.ndarray]:
    """RGB pixels (3, H, W) in [0, 1] of each tile, through the band preset every tile uses.

    :func:`~geosound.geo.images.read_image_ref` picks bands and scaling (13-band uint16 →
    Sentinel-2 true colour), so the tiles reach the encoder exactly as in training.
    """
    from geosound.geo.images import read_image_ref

    images = []
    for i, path in enumerate(paths):
        images.append(read_image_ref(str(path)))
        if progress is not None and (i + 1) % 16 == 0:
            progress((i + 1) / len(paths), f"read {i + 1}/{len(paths)} tiles")
    return images


def tile_similarities(
    space: EmbeddingSpace,
    images: Sequence[np.ndarray],
    queries: Sequence[str],
    batch_size: int = 64,
) -> np.ndarray:
    """(N tiles, Q queries) cosine similarities: each tile mapped on its own.

    Tiles are batched by shape, so a folder of mixed sizes still works without resizing.
    """
    if not images:
        raise InputError("no tiles to evaluate")
    text = query_vectors(space.embed_texts, list(queries)).astype(np.float64)
    embedded: list[np.ndarray | None] = [None] * len(images)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
        by_shape.setdefault(tuple(image.shape), []).append(i)
    for members in by_shape.values():
        for start in range(0, len(members), batch_size):
            chunk = members[start : start + batch_size]
            vectors = space.embed_rgb(np.stack([images[i] for i in chunk]).astype(np.float32))
            for i, vector in zip(chunk, np.asarray(vectors, dtype=np.float64), strict=True):
                embedded[i] = vector
    tiles = np.stack([v for v in embedded if v is not None])
    return _unit(tiles) @ _unit(text).T


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


# --------------------------------------------------------------------------- tables


def _positive_matrix(
    labels: np.ndarray, queries: Sequence[str], query_classes: Mapping[str, frozenset[str]]
) -> np.ndarray:
    """(Q, N) booleans: tile n is of one of query q's positive classes."""
    return np.stack([np.isin(labels, sorted(query_classes[q])) for q in queries])


def _check_classes(query_classes: Mapping[str, frozenset[str]]) -> None:
    """A misspelt class would silently give zero positives; name it instead."""
    for query, classes in query_classes.items():
        unknown = sorted(set(classes) - set(EUROSAT_CLASSES))
        if unknown or not classes:
            raise InputError(
                f"query {query!r}: positive classes must be EuroSAT classes; "
                f"unknown {unknown or '(none given)'}"
            )


def auc_table(
    similarities: np.ndarray,
    labels: Sequence[str],
    query_classes: Mapping[str, frozenset[str]] = DEFAULT_QUERY_CLASSES,
) -> pd.DataFrame:
    """Per-query ROC-AUC and mean similarities from a precomputed similarity matrix.

    Args:
        similarities: (N tiles, Q) with columns in ``query_classes`` order.
        labels: Land-cover class of each tile.
        query_classes: Query → positive classes.

    Returns:
        One row per query: ``query``, ``positives`` (comma-joined), ``n_pos``, ``n_neg``,
        ``roc_auc``, ``mean_sim_pos``, ``mean_sim_neg``.

    Raises:
        InputError: Shapes disagree, a class is unknown, or a query has no positive or no
            negative tile in this set.
    """
    _check_classes(query_classes)
    queries = list(query_classes)
    similarities = np.asarray(similarities, dtype=float)
    labels_arr = np.asarray([str(label) for label in labels])
    if similarities.shape != (len(labels_arr), len(queries)):
        raise InputError(
            f"similarities {similarities.shape} must be (tiles {len(labels_arr)}, "
            f"queries {len(queries)})"
        )
    positive = _positive_matrix(labels_arr, queries, query_classes)
    rows = []
    for q, query in enumerate(queries):
        scores, pos = similarities[:, q], positive[q]
        if not pos.any() or pos.all():
            raise InputError(
                f"query {query!r}: this tile set has {int(pos.sum())} positive and "
                f"{int((~pos).sum())} negative tiles; ROC-AUC needs both"
            )
        rows.append(
            {
                "query": query,
                "positives": ", ".join(sorted(query_classes[query])),
                "n_pos": int(pos.sum()),
                "n_neg": int((~pos).sum()),
                "roc_auc": float(_auc_from_ranks(rankdata(scores), pos[None, :])[0]),
                "mean_sim_pos": float(scores[pos].mean()),
                "mean_sim_neg": float(scores[~pos].mean()),
            }
        )
    return pd.DataFrame(rows)


def query_auc(
    space: EmbeddingSpace,
    tiles_gdf: pd.DataFrame,
    query_classes: Mapping[str, frozenset[str]] = DEFAULT_QUERY_CLASSES,
    images: Sequence[np.ndarray] | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Map every tile against every query with ``space`` and score the land-cover ranking.

    Args:
        space: A :class:`~geosound.space.shared.SharedSpace`, the ImageNet bridge, or
            anything with ``embed_rgb`` and ``embed_texts``.
        tiles_gdf: Tiles with ``path`` and ``label`` (e.g. from :func:`dev_tiles`).
        query_classes: Query → positive EuroSAT classes.
        images: The tiles' RGB pixels when already read (to score several spaces on one
            read); read from ``path`` otherwise.
        progress: ``callback(fraction, message)``.

    Returns:
        The :func:`auc_table` frame.
    """
    for column in ("path", "label"):
        if column not in tiles_gdf.columns:
            raise DataError(f"the tile table has no {column!r} column")
    if images is None:
        images = read_tile_images(list(tiles_gdf["path"].astype(str)), progress)
    if progress is not None:
        progress(0.5, "embedding tiles and queries")
    similarities = tile_similarities(space, images, list(query_classes))
    if progress is not None:
        progress(1.0, "scored")
    return auc_table(similarities, tiles_gdf["label"].astype(str).tolist(), query_classes)


def null_aucs(
    similarities: np.ndarray,
    labels: Sequence[str],
    query_classes: Mapping[str, frozenset[str]] = DEFAULT_QUERY_CLASSES,
    permutations: int = DEFAULT_NULL_PERMUTATIONS,
    seed: int = 0,
) -> np.ndarray:
    """(permutations, Q) AUCs with the tile labels shuffled (class counts kept, seeded).

    One permutation of the labels is shared by all queries, so the row means are draws of
    the *mean* AUC under the null, correlations between queries included.
    """
    if permutations < 1:
        raise InputError(f"permutations must be >= 1; got {permutations!r}")
    auc_table(similarities, labels, query_classes)  # same checks as the observed table
    labels_arr = np.asarray([str(label) for label in labels])
    similarities = np.asarray(similarities, dtype=float)
    rng = np.random.default_rng(seed)
    shuffled = np.stack([labels_arr[rng.permutation(len(labels_arr))] for _ in range(permutations)])
    return np.stack(
        [
            _auc_from_ranks(rankdata(similarities[:, q]), np.isin(shuffled, sorted(classes)))
            for q, classes in enumerate(query_classes.values())
        ],
        axis=1,
    )


def shuffled_null(
    similarities: np.ndarray,
    labels: Sequence[str],
    query_classes: Mapping[str, frozenset[str]] = DEFAULT_QUERY_CLASSES,
    permutations: int = DEFAULT_NULL_PERMUTATIONS,
    seed: int = 0,
) -> pd.DataFrame:
    """The AUC each query gets when the tile labels are shuffled: what chance looks like here.

    The labels are permuted across tiles (class counts kept), ``permutations`` times, from
    ``numpy.random.default_rng(seed)``; the scores stay as the space gave them. The mean is
    ≈ 0.5 for any space; the spread is the honest error bar of a figure on so few tiles.

    Args:
        similarities: (N tiles, Q) as for :func:`auc_table`.
        labels: Land-cover class of each tile.
        query_classes: Query → positive classes.
        permutations: Number of shuffles.
        seed: Seeds the shuffles.

    Returns:
        One row per query, then a last row :data:`MEAN_ROW` for the mean AUC over queries:
        ``query``, ``null_mean``, ``null_q95`` (95th percentile of the shuffled AUCs),
        ``p_value`` (share of shuffles at or above the observed AUC, +1 corrected so that it
        is never 0; one test per row, not corrected for the number of queries) and
        ``permutations``.
    """
    observed = auc_table(similarities, labels, query_classes)["roc_auc"].to_numpy()
    aucs = null_aucs(similarities, labels, query_classes, permutations, seed)
    columns = [*query_classes, MEAN_ROW]
    draws = np.column_stack([aucs, aucs.mean(axis=1)])
    observed = np.append(observed, observed.mean())
    return pd.DataFrame(
        {
            "query": columns,
            "null_mean": draws.mean(axis=0),
            "null_q95": np.quantile(draws, 0.95, axis=0),
            "p_value": (1 + (draws >= observed[None, :] - 1e-12).sum(axis=0)) / (1 + len(draws)),
            "permutations": len(draws),
        }
    )


def _p_cell(p: float, floor: float) -> str:
    """A permutation p-value; at the floor no shuffle reached the AUC, so it is an upper bound."""
    return f"≤{p:.3f}" if p <= floor + 1e-12 else f"{p:.3f}"


def format_query_table(
    methods: Mapping[str, pd.DataFrame],
    null: pd.DataFrame | None,
    title: str,
    markdown: bool = True,
) -> str:
    """One table: a row per query, an AUC column per method, then the null; a mean row last.

    Args:
        methods: Method name → its :func:`auc_table` frame (same queries, same tiles). The
            first method's mean similarities on positives / negatives are shown too (each
            space has its own similarity scale, so only AUCs compare across methods).
        null: :func:`shuffled_null` of the first method's similarities, or None.
        title: Printed above the table; say "dev" and which tiles.
        markdown: Markdown (for docs) or aligned plain text (for terminals).
    """
    names = list(methods)
    first = methods[names[0]]
    queries = list(first["query"])
    table = pd.DataFrame(
        {
            "query": queries,
            "positive classes": first["positives"],
            "n+": first["n_pos"].astype(str),
            "n−": first["n_neg"].astype(str),
        }
    )
    for name in names:
        frame = methods[name]
        if list(frame["query"]) != queries:
            raise InputError("every method must be scored on the same queries")
        table[f"AUC {name}"] = frame["roc_auc"].map("{:.3f}".format)
    mean_row: dict[str, str] = {column: "" for column in table.columns}
    mean_row["query"] = f"**{MEAN_ROW}**" if markdown else MEAN_ROW
    for name in names:
        mean_row[f"AUC {name}"] = f"{methods[name]['roc_auc'].mean():.3f}"
    if null is not None:
        null = null.set_index("query")
        if list(null.index) != [*queries, MEAN_ROW]:
            raise InputError("the null must be computed on the same queries")
        null_column, p_column = "AUC shuffled null (q95)", f"p ({names[0]})"
        cells = [
            f"{m:.3f} ({q:.3f})" for m, q in zip(null["null_mean"], null["null_q95"], strict=True)
        ]
        table[null_column] = cells[:-1]
        floor = 1.0 / (1 + null["permutations"].iloc[0])  # no shuffle reached the AUC
        p_cells = [_p_cell(p, floor) for p in null["p_value"]]
        table[p_column] = p_cells[:-1]
        mean_row[null_column] = cells[-1]
        mean_row[p_column] = p_cells[-1]
    table[f"sim +/− ({names[0]})"] = [
        f"{p:+.3f} / {n:+.3f}"
        for p, n in zip(first["mean_sim_pos"], first["mean_sim_neg"], strict=True)
    ]
    mean_row[f"sim +/− ({names[0]})"] = ""
    table = pd.concat([table, pd.DataFrame([mean_row])], ignore_index=True)
    if not markdown:
        return f"{title}\n\n{table.to_string(index=False)}"
    lines = [
        title,
        "",
        "| " + " | ".join(table.columns) + " |",
        "|" + "---|" * len(table.columns),
    ]
    lines += [
        "| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)
    ]
    return "\n".join(lines)
