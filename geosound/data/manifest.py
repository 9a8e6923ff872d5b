"""The pair manifest: one GeoParquet table of (place image, sound, text) pairs to train on.

Every way geosound gets pairs ends in this one table (ARCHITECTURE "Data contracts"), so
training, evaluation and mapping read one format whatever the data came from:

* real geotagged recordings with a raster to cut chips from, pre-cut chips (the GeoSound /
  SoundingEarth layout) or street-level photos —
  :func:`geosound.data.pairs_table.manifest_from_pairs_table`;
* images and sounds from unrelated datasets paired through text (Seeing Sound, METHODS §3) —
  :func:`geosound.data.sonify.sonify_tiles`.

Columns (:data:`REQUIRED_COLUMNS`, then :data:`OPTIONAL_COLUMNS`; extra columns are kept):

``id``             unique string
``geometry``       the tile or chip footprint (polygon) or the photo / recording point;
                   the CRS is recorded in the GeoParquet metadata (builders here use EPSG:4326)
``lon``, ``lat``   WGS 84 centre, duplicated out of the geometry so plain-table readers and the
                   metadata encoder need no geometry handling
``image``          a raster path; ``"path#col_off,row_off,width,height"`` for a pixel window
                   of a raster (cut when training, so no chip files are written; see
                   :mod:`geosound.geo.images`); or a chip / photo path
``audio``          an audio path, or a JSON recipe (``{"kind": "mix", ...}``) of a sonified
                   mix that :meth:`geosound.data.recipe.MixRecipe.render` renders
``image_caption``  what the place would sound like ("" when unknown)
``audio_caption``  what the recording contains ("" when unknown)
``label``          a class name where there is one ("" otherwise)
``split``          one of :data:`SPLITS`
``source``         where the pair came from (dataset or builder)
``licence``        the licence(s) of the image and the audio: they travel with every pair
``month``, ``hour``, ``heading``  optional metadata (null where unknown)

Paths are written absolute by the builders, so a manifest can be read from any working
directory. Validation raises :class:`~geosound.errors.DataError` naming the file, the column
and the offending rows, because a manifest problem found mid-training (a NaN latitude, a
duplicated id) costs hours.
"""

from __future__ import annotations

import os
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from geosound.atomic import atomic_path
from geosound.errors import DataError, GeosoundError

__all__ = [
    "MANIFEST_CRS",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "SPLITS",
    "arrow_error_type",
    "read_manifest",
    "validate_manifest",
    "write_manifest",
]

REQUIRED_COLUMNS: tuple[str, ...] = (
    "id",
    "geometry",
    "lon",
    "lat",
    "image",
    "audio",
    "image_caption",
    "audio_caption",
    "label",
    "split",
    "source",
    "licence",
)
OPTIONAL_COLUMNS: tuple[str, ...] = ("month", "hour", "heading")
SPLITS: tuple[str, ...] = ("train", "val", "eval", "test")
MANIFEST_CRS = "EPSG:4326"

_TEXT_COLUMNS = ("image_caption", "audio_caption", "label")
_NONEMPTY_COLUMNS = ("id", "image", "audio", "source", "licence")


def _rows(frame: pd.DataFrame, bad: np.ndarray, limit: int = 3) -> str:
    """'rows 3, 7 (ids a, b) and 5 more' — enough to find them, short enough for one line."""
    positions = np.flatnonzero(bad)
    shown = positions[:limit]
    ids = [str(frame["id"].iloc[i]) for i in shown] if "id" in frame.columns else []
    text = f"row{'s' if len(positions) > 1 else ''} {', '.join(str(int(i)) for i in shown)}"
    if ids:
        text += f" (id{'s' if len(ids) > 1 else ''} {', '.join(ids)})"
    if len(positions) > limit:
        text += f" and {len(positions) - limit} more"
    return text


def validate_manifest(frame: gpd.GeoDataFrame, path: str | os.PathLike[str] | None = None) -> None:
    """Check a manifest against the contract; raise a DataError naming what is wrong.

    The checks run in a fixed order (table shape, text columns, geometry and coordinates,
    split, optional metadata) and stop at the first failure.

    Args:
        frame: The manifest.
        path: The file it is read from or written to, named in errors.

    Raises:
        DataError: Not a GeoDataFrame, no CRS, a required column missing, a duplicated or
            empty id, missing geometry, non-finite or out-of-range lon/lat, an empty image,
            audio, source or licence, a null caption or label, an unknown split, or an
            optional month/hour/heading out of range.
    """
    _check_shape(frame, path)
    _check_text(frame, path)
    _check_places(frame, path)
    _check_split(frame, path)
    _check_metadata(frame, path)


def _check_shape(frame: gpd.GeoDataFrame, path: str | os.PathLike[str] | None) -> None:
    """A GeoDataFrame with every required column and a CRS on its ``geometry`` column."""
    if not isinstance(frame, gpd.GeoDataFrame):
        raise DataError(f"a manifest must be a GeoDataFrame, got {type(frame).__name__}", path)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"manifest lacks required column(s): {', '.join(missing)}", path)
    if frame.crs is None:
        raise DataError("manifest geometry has no CRS; set one (e.g. EPSG:4326)", path)
    if frame.geometry.name != "geometry":
        raise DataError(
            f"manifest's active geometry column is {frame.geometry.name!r}, not 'geometry'", path
        )


def _check_text(frame: gpd.GeoDataFrame, path: str | os.PathLike[str] | None) -> None:
    """Non-empty ids, paths, source and licence; captions and label present; unique ids."""
    for column in _NONEMPTY_COLUMNS:
        values = frame[column]
        bad = values.isna().to_numpy() | (values.astype(str).str.strip() == "").to_numpy()
        if bad.any():
            raise DataError(f"manifest column {column!r} is empty in {_rows(frame, bad)}", path)
    for column in _TEXT_COLUMNS:
        bad = frame[column].isna().to_numpy()
        if bad.any():
            raise DataError(
                f"manifest column {column!r} is null in {_rows(frame, bad)} (use '' if unknown)",
                path,
            )
    duplicated = frame["id"].astype(str).duplicated(keep=False).to_numpy()
    if duplicated.any():
        raise DataError(f"manifest ids are not unique: {_rows(frame, duplicated)}", path)


def _check_places(frame: gpd.GeoDataFrame, path: str | os.PathLike[str] | None) -> None:
    """Every row has a geometry and a finite lon/lat inside the WGS 84 ranges."""
    geometry = frame.geometry
    bad = (geometry.isna() | geometry.is_empty).to_numpy()
    if bad.any():
        raise DataError(f"manifest geometry is missing or empty in {_rows(frame, bad)}", path)
    for column, low, high in (("lon", -180.0, 180.0), ("lat", -90.0, 90.0)):
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values) | (values < low) | (values > high)
        if bad.any():
            raise DataError(
                f"manifest column {column!r} is missing or outside [{low:g}, {high:g}] in "
                f"{_rows(frame, bad)}",
                path,
            )


def _check_split(frame: gpd.GeoDataFrame, path: str | os.PathLike[str] | None) -> None:
    """Every ``split`` value is one of :data:`SPLITS`."""
    bad = ~frame["split"].astype(str).isin(SPLITS).to_numpy()
    if bad.any():
        shown = ", ".join(sorted(set(frame["split"].astype(str)[bad]))[:3])
        raise DataError(
            f"manifest column 'split' has value(s) {shown} in {_rows(frame, bad)}; "
            f"allowed: {', '.join(SPLITS)}",
            path,
        )


def _check_metadata(frame: gpd.GeoDataFrame, path: str | os.PathLike[str] | None) -> None:
    """Optional month (whole, 1..12), hour [0, 24) and heading [0, 360), null where unknown."""
    for column, low, high, whole in (
        ("month", 1, 12, True),
        ("hour", 0, 24, False),
        ("heading", 0, 360, False),
    ):
        if column not in frame.columns:
            continue
        raw = frame[column]
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
        present = raw.notna().to_numpy()
        in_range = (values >= low) & ((values <= high) if whole else (values < high))
        if whole:
            in_range &= np.isfinite(values) & (np.round(values) == values)
        bad = present & ~in_range
        if bad.any():
            interval = f"{low}..{high}" if whole else f"[{low}, {high})"
            raise DataError(
                f"manifest column {column!r} is outside {interval} in {_rows(frame, bad)}", path
            )


# --------------------------------------------------------------------------- read / write


def arrow_error_type(path: Path) -> type[Exception]:
    """The base exception type of pyarrow, importing it only when Parquet is actually used.

    Imported lazily so that the rest of geosound (sonification, pairing, validation) works
    even where pyarrow is broken; a broken pyarrow (e.g. pyarrow >= 26, which needs
    NumPy 2, beside geosound's numpy<2) then fails here with one clear line.

    Args:
        path: The file about to be read or written, named in the error.

    Returns:
        ``pyarrow.ArrowException``, for ``except`` clauses around Parquet IO.

    Raises:
        GeosoundError: pyarrow cannot be imported.
    """
    try:
        import pyarrow
    except ImportError as error:
        raise GeosoundError(
            f"GeoParquet needs a working pyarrow, and importing it failed ({error}); with "
            "numpy<2 install pyarrow<26",
            path,
        ) from error
    return pyarrow.ArrowException


def write_manifest(gdf: gpd.GeoDataFrame, path: str | os.PathLike[str]) -> Path:
    """Validate and write a manifest as GeoParquet, atomically.

    Validation happens before anything touches the disk, so a bad table never replaces a
    good manifest; the atomic write means a reader never sees a half-written one.

    Args:
        gdf: The manifest (see the module docstring for the columns).
        path: Destination ``.parquet`` file; its folder is created if missing.

    Returns:
        The destination path.

    Raises:
        DataError: The table breaks the contract (named with ``path``).
    """
    path = Path(path)
    validate_manifest(gdf, path)
    ordered = [c for c in REQUIRED_COLUMNS + OPTIONAL_COLUMNS if c in gdf.columns]
    extra = [c for c in gdf.columns if c not in ordered]
    table = gdf[ordered + extra].reset_index(drop=True)
    arrow_error = arrow_error_type(path)
    with atomic_path(path) as tmp:
        try:
            table.to_parquet(tmp, index=False)
        except (arrow_error, TypeError, ValueError) as error:
            raise DataError(f"cannot write the manifest: {error}", path) from error
    return path


def read_manifest(path: str | os.PathLike[str]) -> gpd.GeoDataFrame:
    """Read and validate a manifest: one from :func:`write_manifest`, or any valid GeoParquet.

    Validating on read means a broken manifest fails here, naming the file and the rows,
    rather than hours into training.

    Args:
        path: The ``.parquet`` file.

    Returns:
        The manifest, as written.

    Raises:
        DataError: The file is missing, not GeoParquet, or breaks the contract.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("manifest file not found", path)
    arrow_error = arrow_error_type(path)
    try:
        frame = gpd.read_parquet(path)
    except (OSError, ValueError, arrow_error) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"not a readable GeoParquet manifest ({reason})", path) from error
    validate_manifest(frame, path)
    return frame
