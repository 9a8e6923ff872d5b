"""Train/eval splits of tiles and clips that keep evaluation honest.

Tiles and clips are each split train/eval, stratified by class, and Seeing Sound
(:func:`geosound.data.sonify.sonify_tiles`) gives train tiles only train clips and eval
tiles only eval clips, so an evaluation never hears a clip (or sees a tile) that training
used. Takes cut from one Freesound recording (``freesound_id``) stay on one side: otherwise a
near-copy of an eval clip would be trained on. Every class with at least two groups gets at
least one group on each side, so both splits see every class where the data allows it.

:func:`dev_split_tables` gives the dev imagery and sounds that ``geosound train`` sonifies,
each source split on its own with :func:`split_by_tile_and_clip`: the Sentinel-2 tiles and the
ESC-50 clips are split exactly as when they were the only sources, so figures and tools that
rebuild those splits from a checkpoint's seed and fraction stay valid.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geosound.errors import DataError, InputError

__all__ = ["DEV_IMAGERY", "DEV_SOUNDS", "dev_split_tables", "split_by_tile_and_clip"]

DEV_IMAGERY: tuple[str, ...] = ("eurosat_ms", "eurosat_rgb")
"""Dev imagery sources: the 181 Sentinel-2 tiles (true colour) and the 3,000 RGB JPGs."""

DEV_SOUNDS: tuple[str, ...] = ("esc50", "ambient")
"""Dev sound sources: the ESC-50 outdoor clips and the tagged ambience recordings."""


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


def _rgb_tiles(
    root: Path, extent: gpd.GeoDataFrame, classes: Sequence[str] | None
) -> gpd.GeoDataFrame:
    """The EuroSAT RGB JPGs as a tile table (ids ``rgb-<stem>``: the MS stems repeat).

    The JPGs carry no location. Their footprint is the extent of the Sentinel-2 dev tiles
    (EuroSAT covers Europe), ``lon``/``lat`` its centre, and ``located`` is False, so that
    nothing reads a place into them (a model trained with metadata must skip them).
    """
    from geosound.data.devsets import load_eurosat_rgb

    images = load_eurosat_rgb(root, classes=classes)
    box = shapely.box(*extent.total_bounds)
    centre = box.centroid
    table = pd.DataFrame(
        {
            "id": ["rgb-" + Path(path).stem for path in images["path"]],
            "path": images["path"].to_numpy(),
            "label": images["label"].to_numpy(),
            "lon": float(centre.x),
            "lat": float(centre.y),
            "located": False,
        }
    )
    return gpd.GeoDataFrame(table, geometry=[box] * len(table), crs="EPSG:4326")


def dev_split_tables(
    data_dir: Path | None = None,
    imagery: Sequence[str] = DEV_IMAGERY,
    sounds: Sequence[str] = DEV_SOUNDS,
    eval_fraction: float = 0.3,
    seed: int = 0,
    classes: Sequence[str] | None = None,
) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """The dev tiles and clips ``geosound train`` pairs, each with its ``split``.

    Each source is split on its own (:func:`split_by_tile_and_clip`, stratified by class,
    Freesound takes together), then the tables are stacked: the Sentinel-2 and ESC-50 splits
    are those of a run that used them alone, and the RGB JPGs and ambience recordings add
    their own held-out share.

    Args:
        data_dir: The dev data folder (default: ``GEOSOUND_DEV_DATA``).
        imagery: Any of :data:`DEV_IMAGERY`.
        sounds: Any of :data:`DEV_SOUNDS`.
        eval_fraction: Share of each class of each source held out.
        seed: Seeds the splits.
        classes: Only tiles of these EuroSAT classes.

    Returns:
        ``(tiles, clips)``: tiles with ``id``, ``path``, ``label``, ``lon``, ``lat``,
        ``located``, ``source``, ``split`` and ``geometry`` (EPSG:4326); clips with
        ``path``, ``label``, ``licence``, ``freesound_id``, ``caption`` (ambience only),
        ``source`` and ``split``.

    Raises:
        InputError: An unknown source name, or no source of one kind.
        DataError: A dev set is missing or malformed.
    """
    from geosound.config import dev_data_dir
    from geosound.data.concepts import ambient_clips
    from geosound.data.devsets import (
        AMBIENT_FOLDER,
        ESC50_FOLDER,
        EUROSAT_MS_FOLDER,
        EUROSAT_RGB_FOLDER,
        load_ambient,
        load_esc50,
        load_eurosat_tiles,
    )

    for given, known, kind in ((imagery, DEV_IMAGERY, "imagery"), (sounds, DEV_SOUNDS, "sounds")):
        unknown = sorted(set(given) - set(known))
        if unknown or not given:
            raise InputError(
                f"dev {kind} must be some of {', '.join(known)}; got {', '.join(given) or 'none'}"
            )
    root = Path(data_dir or dev_data_dir()).expanduser()
    ms = load_eurosat_tiles(root / EUROSAT_MS_FOLDER, classes=classes)
    tile_tables: dict[str, gpd.GeoDataFrame] = {}
    if "eurosat_ms" in imagery:
        tile_tables["eurosat_ms"] = ms.assign(located=True)
    if "eurosat_rgb" in imagery:
        tile_tables["eurosat_rgb"] = _rgb_tiles(root / EUROSAT_RGB_FOLDER, ms, classes)
    clip_tables: dict[str, pd.DataFrame] = {}
    if "esc50" in sounds:
        clip_tables["esc50"] = load_esc50(root / ESC50_FOLDER)
    if "ambient" in sounds:
        clip_tables["ambient"] = ambient_clips(load_ambient(root / AMBIENT_FOLDER))
    # The clip table only feeds the tile half of each split call (and vice versa) — the two
    # halves use separate generators — so pairing each source with the first of the other
    # kind reproduces the single-source splits exactly.
    first_clips = next(iter(clip_tables.values()))
    first_tiles = next(iter(tile_tables.values()))
    tiles = [
        table.assign(
            source=name,
            split=split_by_tile_and_clip(table, first_clips, eval_fraction, seed)[0].to_numpy(),
        )
        for name, table in tile_tables.items()
    ]
    clips = [
        table.assign(
            source=name,
            split=split_by_tile_and_clip(first_tiles, table, eval_fraction, seed)[1].to_numpy(),
        )
        for name, table in clip_tables.items()
    ]
    tile_table = gpd.GeoDataFrame(pd.concat(tiles, ignore_index=True), crs="EPSG:4326")
    return tile_table, pd.concat(clips, ignore_index=True)
