"""Loaders for the small real development data sets (``GEOSOUND_DEV_DATA``).

Each dev folder ships an ``index.csv``; each loader here reads it into a table with
absolute paths and geosound's column names (``label``, ``licence``, ``split``), so that the
rest of the code never parses those files itself. Loaders check what they rely on — the
folder, the index's columns, and that every listed file exists — and raise a
:class:`~geosound.errors.DataError` naming the folder, because a user's machine usually has
no dev data and "KeyError: 'class'" would not tell them why.

The dev data is for development, tests and CI only; a disjoint held-out portion of ESC-50
and EuroSAT is used for acceptance, so figures measured here are dev figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geosound.config import dev_data_dir
from geosound.errors import DataError

__all__ = [
    "AMBIENT_FOLDER",
    "ESC50_FOLDER",
    "EUROSAT_CLASSES",
    "EUROSAT_LICENCE",
    "EUROSAT_MS_FOLDER",
    "EUROSAT_RGB_FOLDER",
    "GEORASTER_FOLDER",
    "LANDCOVER_SOUNDS",
    "SOUNDSCAPE_24H_FOLDER",
    "dev_root",
    "load_ambient",
    "load_esc50",
    "load_eurosat_rgb",
    "load_eurosat_tiles",
    "load_georaster_scenes",
    "load_soundscape_24h",
]

ESC50_FOLDER = "esc50_outdoor_16k"
EUROSAT_MS_FOLDER = "eurosat_ms_geotiff"
EUROSAT_RGB_FOLDER = "eurosat_rgb_jpg_5class"
GEORASTER_FOLDER = "georaster_scenes"
AMBIENT_FOLDER = "ambient_debian_16k"
SOUNDSCAPE_24H_FOLDER = "maad_soundscape_24h_16k"

EUROSAT_LICENCE = "MIT (EuroSAT)"
"""Licence of the EuroSAT tiles, for manifests that pair them with sounds."""

EUROSAT_CLASSES: tuple[str, ...] = (
    "AnnualCrop",
    "Forest",
    "HerbaceousVegetation",
    "Highway",
    "Industrial",
    "Pasture",
    "PermanentCrop",
    "Residential",
    "River",
    "SeaLake",
)

LANDCOVER_SOUNDS: dict[str, dict[str, tuple[str, ...]]] = {
    "AnnualCrop": {
        "likely": ("chirping_birds", "crow", "insects", "wind"),
        "possible": ("crickets", "engine", "rain"),
    },
    "Forest": {
        "likely": ("chirping_birds", "wind", "crow"),
        "possible": ("chainsaw", "crackling_fire", "rain", "insects", "frog"),
    },
    "HerbaceousVegetation": {
        "likely": ("crickets", "insects", "chirping_birds", "wind"),
        "possible": ("crow", "frog", "sheep", "rain"),
    },
    "Highway": {
        "likely": ("engine", "car_horn"),
        "possible": ("siren", "helicopter", "airplane", "wind"),
    },
    "Industrial": {
        "likely": ("engine", "siren"),
        "possible": ("train", "hand_saw", "chainsaw", "car_horn", "helicopter"),
    },
    "Pasture": {
        "likely": ("cow", "sheep"),
        "possible": ("rooster", "hen", "pig", "dog", "chirping_birds", "insects"),
    },
    "PermanentCrop": {
        "likely": ("chirping_birds", "insects", "crickets"),
        "possible": ("rooster", "hen", "dog", "engine"),
    },
    "Residential": {
        "likely": ("dog", "car_horn", "engine", "church_bells"),
        "possible": ("footsteps", "laughing", "cat", "rooster", "siren"),
    },
    "River": {
        "likely": ("water_drops", "pouring_water", "frog"),
        "possible": ("chirping_birds", "crow", "insects", "rain"),
    },
    "SeaLake": {
        "likely": ("sea_waves", "wind"),
        "possible": ("rain", "thunderstorm", "water_drops", "airplane"),
    },
}
"""Plausible ESC-50 sounds per EuroSAT land-cover class, ``"likely"`` and ``"possible"``.

Copied from the dev data README to seed the concept tables of sonification (pairing images
with sounds through text, METHODS.md §3) and the image→audio baselines. It is a starting
point written by hand, not ground truth: nobody recorded these places. Keys are the EuroSAT
class names; values are ESC-50 class names, all present in the dev subset.
"""


def dev_root(folder: str, root: Path | None = None) -> Path:
    """Resolve a dev set's folder and check that it exists.

    Args:
        folder: The folder name inside the dev data directory (e.g. ``"esc50_outdoor_16k"``).
        root: An explicit folder to use instead of ``dev_data_dir() / folder``.

    Returns:
        The absolute folder path.

    Raises:
        DataError: The folder does not exist; the message names it and the setting to fix.
    """
    path = (dev_data_dir() / folder) if root is None else Path(root).expanduser()
    path = path.resolve()
    if not path.is_dir():
        raise DataError(
            f"dev data set {folder!r} not found (set GEOSOUND_DEV_DATA to the folder holding "
            f"{folder}/, or pass root=)",
            path,
        )
    return path


def _read_index(root: Path, folder: str, required: Sequence[str]) -> pd.DataFrame:
    """Read ``root/index.csv`` and check that it has the columns a loader relies on."""
    index = root / "index.csv"
    if not index.is_file():
        raise DataError(f"dev data set {folder!r} has no index.csv", index)
    try:
        frame = pd.read_csv(index)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read index.csv of dev data set {folder!r}: {exc}", index) from exc
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise DataError(
            f"index.csv of dev data set {folder!r} lacks column(s): {', '.join(missing)}",
            index,
        )
    return frame


def _absolute_paths(root: Path, folder: str, filenames: pd.Series) -> list[str]:
    """Turn index-relative file names into absolute paths, checking that each exists.

    Checking up front costs one ``stat`` per file and turns a half-copied dev folder into
    one clear error instead of a decode failure deep inside a batch.
    """
    paths = [str(root / name) for name in filenames.astype(str)]
    absent = [p for p in paths if not Path(p).is_file()]
    if absent:
        shown = ", ".join(Path(p).relative_to(root).as_posix() for p in absent[:3])
        more = f" and {len(absent) - 3} more" if len(absent) > 3 else ""
        raise DataError(
            f"{len(absent)} file(s) listed in index.csv of {folder!r} are missing: {shown}{more}",
            root,
        )
    return paths


def _select_classes(
    frame: pd.DataFrame, column: str, classes: Iterable[str] | None, folder: str, root: Path
) -> pd.DataFrame:
    """Keep rows whose ``column`` is in ``classes``; unknown class names are an error.

    A misspelt class would otherwise return an empty table and fail much later.
    """
    if classes is None:
        return frame
    wanted = [classes] if isinstance(classes, str) else list(classes)
    known = set(frame[column].astype(str))
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise DataError(
            f"unknown class(es) {', '.join(map(repr, unknown))} in {folder!r}; "
            f"known: {', '.join(sorted(known))}",
            root,
        )
    return frame[frame[column].isin(wanted)]


def load_eurosat_tiles(
    root: Path | None = None, classes: Iterable[str] | None = None
) -> gpd.GeoDataFrame:
    """The EuroSAT multispectral dev tiles, one row per GeoTIFF, with lon/lat footprints.

    Footprints come from the index's lon/lat bounds, i.e. the WGS 84 envelope of each UTM
    tile (what ``rasterio.warp.transform_bounds`` gives), so no raster is opened here: the
    table is cheap enough to build for every map or manifest.

    Args:
        root: The ``eurosat_ms_geotiff`` folder; defaults to the dev data directory's.
        classes: Keep only these EuroSAT classes (e.g. ``["Forest", "River"]``).

    Returns:
        A GeoDataFrame in EPSG:4326 with columns ``id`` (file stem), ``path`` (absolute),
        ``label``, ``crs`` (the tile's own CRS, e.g. ``"EPSG:32632"``), ``lon``, ``lat``
        (centre), ``split`` (the source's ``orig_split``) and ``geometry`` (footprint).

    Raises:
        DataError: The folder or index is missing or malformed, a listed file is missing,
            or a class name is unknown.
    """
    folder = EUROSAT_MS_FOLDER
    root = dev_root(folder, root)
    frame = _read_index(
        root,
        folder,
        (
            "filename",
            "eurosat_class",
            "orig_split",
            "crs",
            "center_lon",
            "center_lat",
            "lon_min",
            "lat_min",
            "lon_max",
            "lat_max",
        ),
    )
    frame = _select_classes(frame, "eurosat_class", classes, folder, root)
    geometry = shapely.box(
        frame["lon_min"].to_numpy(float),
        frame["lat_min"].to_numpy(float),
        frame["lon_max"].to_numpy(float),
        frame["lat_max"].to_numpy(float),
    )
    table = pd.DataFrame(
        {
            "id": [Path(name).stem for name in frame["filename"].astype(str)],
            "path": _absolute_paths(root, folder, frame["filename"]),
            "label": frame["eurosat_class"].astype(str).to_numpy(),
            "crs": frame["crs"].astype(str).to_numpy(),
            "lon": frame["center_lon"].to_numpy(float),
            "lat": frame["center_lat"].to_numpy(float),
            "split": frame["orig_split"].astype(str).to_numpy(),
        }
    )
    return gpd.GeoDataFrame(table, geometry=np.asarray(geometry), crs="EPSG:4326")


def load_esc50(root: Path | None = None, classes: Iterable[str] | None = None) -> pd.DataFrame:
    """The ESC-50 outdoor dev clips (16 kHz mono FLAC), one row per clip.

    Args:
        root: The ``esc50_outdoor_16k`` folder; defaults to the dev data directory's.
        classes: Keep only these ESC-50 classes (e.g. ``["rain", "wind"]``).

    Returns:
        A DataFrame with ``path`` (absolute), ``label`` (ESC-50 class), ``fold`` (the
        upstream cross-validation fold: split by fold, never by clip, because takes of one
        Freesound source share a fold), ``target`` (upstream 0–49 class number),
        ``freesound_id``, ``licence`` and ``esc10`` (ESC-10 clips are CC BY, the rest
        CC BY-NC).

    Raises:
        DataError: The folder or index is missing or malformed, a listed file is missing,
            or a class name is unknown.
    """
    folder = ESC50_FOLDER
    root = dev_root(folder, root)
    frame = _read_index(
        root, folder, ("filename", "class", "fold", "target", "freesound_id", "license")
    )
    frame = _select_classes(frame, "class", classes, folder, root)
    table = pd.DataFrame(
        {
            "path": _absolute_paths(root, folder, frame["filename"]),
            "label": frame["class"].astype(str).to_numpy(),
            "fold": frame["fold"].astype(int).to_numpy(),
            "target": frame["target"].astype(int).to_numpy(),
            "freesound_id": frame["freesound_id"].astype(int).to_numpy(),
            "licence": frame["license"].astype(str).to_numpy(),
        }
    )
    if "esc10" in frame.columns:
        table["esc10"] = frame["esc10"].astype(str).str.lower().eq("true").to_numpy()
    return table


def load_eurosat_rgb(
    root: Path | None = None, classes: Iterable[str] | None = None
) -> pd.DataFrame:
    """The EuroSAT RGB dev JPGs (5 classes × 600), one row per image; not georeferenced.

    Args:
        root: The ``eurosat_rgb_jpg_5class`` folder; defaults to the dev data directory's.
        classes: Keep only these EuroSAT classes.

    Returns:
        A DataFrame with ``path`` (absolute) and ``label`` (EuroSAT class).

    Raises:
        DataError: The folder or index is missing or malformed, a listed file is missing,
            or a class name is unknown.
    """
    folder = EUROSAT_RGB_FOLDER
    root = dev_root(folder, root)
    frame = _read_index(root, folder, ("filename", "eurosat_class"))
    frame = _select_classes(frame, "eurosat_class", classes, folder, root)
    return pd.DataFrame(
        {
            "path": _absolute_paths(root, folder, frame["filename"]),
            "label": frame["eurosat_class"].astype(str).to_numpy(),
        }
    )


def load_ambient(root: Path | None = None) -> pd.DataFrame:
    """The Debian game-data ambience recordings (weak labels), one row per file.

    Args:
        root: The ``ambient_debian_16k`` folder; defaults to the dev data directory's.

    Returns:
        A DataFrame with ``path`` (absolute), ``tags`` (tuple of the index's ``key=value``
        items, e.g. ``("tileset=autumn", "sound=rain")`` — weak labels, kept raw because
        their vocabulary differs per game), ``licence`` (per file: these differ, and GPL /
        share-alike terms carry over to mixes), ``duration_s`` and ``source_package``.

    Raises:
        DataError: The folder or index is missing or malformed, or a listed file is missing.
    """
    folder = AMBIENT_FOLDER
    root = dev_root(folder, root)
    frame = _read_index(root, folder, ("filename", "tags", "license", "duration_s"))
    tags = [
        tuple(item.strip() for item in str(raw).split(";") if item.strip())
        if isinstance(raw, str)
        else ()
        for raw in frame["tags"]
    ]
    table = pd.DataFrame(
        {
            "path": _absolute_paths(root, folder, frame["filename"]),
            "tags": pd.Series(tags, dtype=object).to_numpy(),
            "licence": frame["license"].astype(str).to_numpy(),
            "duration_s": frame["duration_s"].astype(float).to_numpy(),
        }
    )
    if "source_package" in frame.columns:
        table["source_package"] = frame["source_package"].astype(str).to_numpy()
    return table


def load_soundscape_24h(root: Path | None = None) -> pd.DataFrame:
    """The 24-hour single-recorder soundscape (one 10-s clip every 15 min), sorted by time.

    Args:
        root: The ``maad_soundscape_24h_16k`` folder; defaults to the dev data directory's.

    Returns:
        A DataFrame with ``path`` (absolute), ``timestamp`` (naive ``datetime64``, parsed
        from the index's ``datetime_from_filename``; the recorder's time zone is not
        recorded, so none is invented), ``recorder_id``, ``duration_s`` and ``licence``.

    Raises:
        DataError: The folder or index is missing or malformed, a listed file is missing,
            or a timestamp cannot be parsed.
    """
    folder = SOUNDSCAPE_24H_FOLDER
    root = dev_root(folder, root)
    frame = _read_index(root, folder, ("filename", "datetime_from_filename"))
    try:
        timestamps = pd.to_datetime(frame["datetime_from_filename"], format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"index.csv of {folder!r} has an unparsable datetime_from_filename: {exc}",
            root / "index.csv",
        ) from exc
    table = pd.DataFrame(
        {
            "path": _absolute_paths(root, folder, frame["filename"]),
            "timestamp": timestamps.to_numpy(),
        }
    )
    for source, target, kind in (
        ("recorder_id", "recorder_id", str),
        ("duration_s", "duration_s", float),
        ("license", "licence", str),
    ):
        if source in frame.columns:
            table[target] = frame[source].astype(kind).to_numpy()
    return table.sort_values("timestamp", kind="stable").reset_index(drop=True)


def load_georaster_scenes(root: Path | None = None) -> gpd.GeoDataFrame:
    """The eight varied real rasters used to test raster handling, one row per file.

    Args:
        root: The ``georaster_scenes`` folder; defaults to the dev data directory's.

    Returns:
        A GeoDataFrame in EPSG:4326 with ``id`` (file stem), ``path`` (absolute), ``crs``
        (the raster's own CRS), ``bands``, ``dtype``, ``width``, ``height``, ``res`` (in
        CRS units), ``descriptions`` (tuple per band, None where unset) and ``geometry``
        (the lon/lat footprint from the index bounds).

    Raises:
        DataError: The folder or index is missing or malformed, or a listed file is missing.
    """
    folder = GEORASTER_FOLDER
    root = dev_root(folder, root)
    frame = _read_index(
        root,
        folder,
        (
            "filename",
            "crs",
            "bands",
            "dtype",
            "width",
            "height",
            "res",
            "lon_min",
            "lat_min",
            "lon_max",
            "lat_max",
        ),
    )
    raw_descriptions = (
        frame["descriptions"] if "descriptions" in frame.columns else [None] * len(frame)
    )
    descriptions = [
        tuple(None if part in {"", "None"} else part for part in str(raw).split("|"))
        if isinstance(raw, str)
        else (None,) * int(bands)
        for raw, bands in zip(raw_descriptions, frame["bands"], strict=True)
    ]
    table = pd.DataFrame(
        {
            "id": [Path(name).stem for name in frame["filename"].astype(str)],
            "path": _absolute_paths(root, folder, frame["filename"]),
            "crs": frame["crs"].astype(str).to_numpy(),
            "bands": frame["bands"].astype(int).to_numpy(),
            "dtype": frame["dtype"].astype(str).to_numpy(),
            "width": frame["width"].astype(int).to_numpy(),
            "height": frame["height"].astype(int).to_numpy(),
            "res": frame["res"].astype(float).to_numpy(),
            "descriptions": pd.Series(descriptions, dtype=object).to_numpy(),
        }
    )
    geometry = shapely.box(
        frame["lon_min"].to_numpy(float),
        frame["lat_min"].to_numpy(float),
        frame["lon_max"].to_numpy(float),
        frame["lat_max"].to_numpy(float),
    )
    return gpd.GeoDataFrame(table, geometry=np.asarray(geometry), crs="EPSG:4326")
