"""Train/eval splits of tiles and clips that keep evaluation honest.

Tiles and clips are each split train/eval, stratified by class, and Seeing Sound
(:func:`geosound.data.sonify.sonify_tiles`) gives train tiles only train clips and eval
tiles only eval clips, so an evaluation never hears a clip (or sees a tile) that training
used. Takes cut from one Freesound recording (``freesound_id``) stay on one side: otherwise a
near-copy of an eval clip would be trained on. Every class with at least two groups gets at
least one group on each side, so both splits see every class where the data allows it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from geosound.errors import DataError, InputError

__all__ = ["split_by_tile_and_clip"]


def _stratified_split(
    labels: Sequence[str], groups: Sequence[object], fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """True for eval rows: per label, whole groups go to eval until ~``fraction`` of the rows.

    Every label with at least two groups gets at least one group on each side, so both
    splits see every class where the data allows it; a label with one group stays in train.
    """
    labels_arr = np.asarray([str(label) for label in labels])
    groups_arr = np.asarray([str(group) for group in groups])
    is_eval = np.zeros(len(labels_arr), dtype=bool)
    if fraction <= 0:
        return is_eval
    for label in sorted(set(labels_arr)):
        rows = np.flatnonzero(labels_arr == label)
        unique = list(dict.fromkeys(groups_arr[rows]))
        if len(unique) < 2:
            continue
        order = rng.permutation(len(unique))
        target = min(max(round(fraction * len(rows)), 1), len(rows) - 1)
        taken, groups_taken = 0, 0
        for position in order:
            if groups_taken == len(unique) - 1:  # train keeps at least one group
                break
            members = rows[groups_arr[rows] == unique[position]]
            # Take a group when it brings the eval count closer to the target (always the
            # first), so groups of different sizes still land near the wanted fraction.
            if taken == 0 or abs(taken + len(members) - target) < abs(taken - target):
                is_eval[members] = True
                taken += len(members)
                groups_taken += 1
    return is_eval


def split_by_tile_and_clip(
    tiles: pd.DataFrame, clips: pd.DataFrame, eval_fraction: float = 0.3, seed: int = 0
) -> tuple[pd.Series, pd.Series]:
    """Assign tiles and clips to ``"train"`` / ``"eval"``, each stratified by class.

    Tiles and clips are split independently, and
    :func:`~geosound.data.sonify.sonify_tiles` pairs train tiles only with train clips and
    eval tiles only with eval clips, so no tile and no clip is on both sides and an eval pair
    is new in both modalities. Clips that share a ``freesound_id`` (takes cut from one
    recording) go to the same side; otherwise a near-copy of an eval clip would be trained on.

    Args:
        tiles: Needs ``label``.
        clips: Needs ``label``; ``freesound_id`` is used for grouping when present.
        eval_fraction: Share of each class for eval, in ``[0, 1)``.
        seed: Seeds the shuffles.

    Returns:
        ``(tile_split, clip_split)``: string Series aligned with ``tiles.index`` and
        ``clips.index``.

    Raises:
        InputError: ``eval_fraction`` outside ``[0, 1)`` or a negative or fractional seed.
        DataError: A table has no ``label`` column.
    """
    if not 0.0 <= float(eval_fraction) < 1.0:
        raise InputError(f"eval_fraction must be in [0, 1); got {eval_fraction!r}")
    if int(seed) != seed or seed < 0:
        raise InputError(f"seed must be a whole number >= 0; got {seed!r}")
    for name, frame in (("tiles", tiles), ("clips", clips)):
        if "label" not in frame.columns:
            raise DataError(f"the {name} table has no 'label' column")
    tile_groups = range(len(tiles))
    clip_groups = (
        clips["freesound_id"].astype(str).to_numpy()
        if "freesound_id" in clips.columns
        else range(len(clips))
    )
    tile_eval = _stratified_split(
        tiles["label"].tolist(), list(tile_groups), eval_fraction, np.random.default_rng([seed, 0])
    )
    clip_eval = _stratified_split(
        clips["label"].tolist(), list(clip_groups), eval_fraction, np.random.default_rng([seed, 1])
    )
    return (
        pd.Series(np.where(tile_eval, "eval", "train"), index=tiles.index, name="split"),
        pd.Series(np.where(clip_eval, "eval", "train"), index=clips.index, name="split"),
    )
