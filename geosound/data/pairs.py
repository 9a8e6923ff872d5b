"""The pair manifest: one GeoParquet table of (place image, sound, text) pairs to train on.

Every way geosound gets pairs ends in this one table (ARCHITECTURE "Data contracts"), so
training, evaluation and mapping read one format whatever the data came from:

* real geotagged recordings with a raster to cut chips from, pre-cut chips (the GeoSound /
  SoundingEarth layout) or street-level photos — :func:`manifest_from_pairs_table`;
* images and sounds from unrelated datasets paired through text (Seeing Sound, METHODS §3) —
  :func:`geosound.data.sonify.sonify_tiles`.

Columns (:data:`REQUIRED_COLUMNS`, then :data:`OPTIONAL_COLUMNS`; extra columns are kept):

``id``             unique string
``geometry``       the tile or chip footprint (polygon) or the photo / recording point;
                   the CRS is recorded in the GeoParquet metadata (builders here use EPSG:4326)
``lon``, ``lat``   WGS 84 centre, duplicated out of the geometry so plain-table readers and the
                   metadata encoder need no geometry handling
``image``          a raster path; ``"path#col_off,row_off,width,height"`` for a pixel window
                   of a raster (cut when training, so no chip files are written); or a chip /
                   photo path
``audio``          an audio path, or a JSON recipe (``{"kind": "mix", ...}``) of a sonified
                   mix that :func:`geosound.data.sonify.render_recipe` renders
``image_caption``  what the place would sound like ("" when unknown)
``audio_caption``  what the recording contains ("" when unknown)
``label``          a class name where there is one ("" otherwise)
``split``          one of :data:`SPLITS`
``source``         where the pair came from (dataset or builder)
``licence``        the licence(s) of the image and the audio: they travel with every pair
``month``, ``hour``, ``heading``  optional metadata (null where unknown)

Paths are written absolute by the builders here, so a manifest can be read from any working
directory. Validation raises :class:`~geosound.errors.DataError` naming the file, the column
and the offending rows, because a manifest problem found mid-training (a NaN latitude, a
duplicated id) costs hours.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer
from rasterio.windows import Window

from geosound.atomic import atomic_path
from geosound.errors import DataError, GeosoundError, InputError, OutsideRasterError

__all__ = [
    "MANIFEST_CRS",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "SPLITS",
    "format_image_ref",
    "is_recipe",
    "manifest_from_pairs_table",
    "parse_image_ref",
    "parse_recipe",
    "read_manifest",
    "recipe_to_json",
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
_WINDOW_REF = re.compile(r"^(?P<path>.+)#(?P<col>-?\d+),(?P<row>-?\d+),(?P<w>\d+),(?P<h>\d+)$")

# Column names accepted in a pairs table, first match wins.
_AUDIO_NAMES = ("audio", "audio_path", "audio_file", "recording", "sound")
_LON_NAMES = ("lon", "longitude", "lng")
_LAT_NAMES = ("lat", "latitude")
_CHIP_NAMES = ("chip", "chip_path", "image", "image_path")
_PHOTO_NAMES = ("photo", "photo_path", "streetview", "street_view")
_AUDIO_CAPTION_NAMES = ("audio_caption", "caption", "description", "text")
_TIME_NAMES = ("datetime", "timestamp", "time", "date")


# --------------------------------------------------------------------------- references


def format_image_ref(path: str | os.PathLike[str], window: Window | None = None) -> str:
    """The ``image`` value for a raster path, optionally with a pixel window.

    The window is kept as text (``"path#col_off,row_off,width,height"``) instead of a cut
    chip file so that building a manifest over a large raster writes nothing but the table.
    """
    if window is None:
        return str(path)
    return (
        f"{path}#{int(window.col_off)},{int(window.row_off)},"
        f"{int(window.width)},{int(window.height)}"
    )


def parse_image_ref(value: str) -> tuple[str, Window | None]:
    """Split an ``image`` value into its path and pixel window (None for a whole file).

    Only a trailing ``#int,int,int,int`` counts as a window, so a ``#`` elsewhere in a file
    name is left alone.
    """
    match = _WINDOW_REF.match(str(value))
    if match is None:
        return str(value), None
    window = Window(int(match["col"]), int(match["row"]), int(match["w"]), int(match["h"]))
    return match["path"], window


def read_image_ref(value: str) -> np.ndarray:
    """The RGB pixels (3, H, W) in [0, 1] of an ``image`` value: a file or a window of one.

    Bands and scaling come from :func:`geosound.geo.guess_preset` (13-band uint16 is
    Sentinel-2, 8-bit is a photograph, anything else is stretched per raster), so tiles, chips
    and street-level photos all reach the image encoder the same way.
    """
    from geosound.geo import RasterSource, guess_preset, to_rgb

    path, window = parse_image_ref(value)
    with RasterSource(path, require_crs=False) as source:
        info = source.info()
        preset = guess_preset(info.count, info.dtypes[0])
        pixels = source.read_window(
            window or Window(0, 0, source.width, source.height), preset.bands
        )
        percentiles = source.band_percentiles(preset.bands) if preset.needs_stretch else None
    return to_rgb(pixels, preset, percentiles)


def is_recipe(audio: str) -> bool:
    """Whether an ``audio`` value is a JSON mix recipe rather than a file path."""
    return str(audio).lstrip().startswith("{")


# --------------------------------------------------------------------------- validation


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

    Args:
        frame: The manifest.
        path: The file it is read from or written to, named in errors.

    Raises:
        DataError: Not a GeoDataFrame, no CRS, a required column missing, a duplicated or
            empty id, missing geometry, non-finite or out-of-range lon/lat, an empty image,
            audio, source or licence, a null caption or label, an unknown split, or an
            optional month/hour/heading out of range.
    """
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

    bad = ~frame["split"].astype(str).isin(SPLITS).to_numpy()
    if bad.any():
        shown = ", ".join(sorted(set(frame["split"].astype(str)[bad]))[:3])
        raise DataError(
            f"manifest column 'split' has value(s) {shown} in {_rows(frame, bad)}; "
            f"allowed: {', '.join(SPLITS)}",
            path,
        )

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


def _arrow_error(path: Path) -> type[Exception]:
    """pyarrow's base exception, importing pyarrow only when Parquet is actually used.

    Imported lazily so that the rest of geosound (sonification, pairing, validation) works
    even where pyarrow is broken; a broken pyarrow (e.g. pyarrow >= 26, which needs
    NumPy 2, beside geosound's numpy<2) then fails here with one clear line.
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
    arrow_error = _arrow_error(path)
    with atomic_path(path) as tmp:
        try:
            table.to_parquet(tmp, index=False)
        except (arrow_error, TypeError, ValueError) as error:
            raise DataError(f"cannot write the manifest: {error}", path) from error
    return path


def read_manifest(path: str | os.PathLike[str]) -> gpd.GeoDataFrame:
    """Read and validate a manifest written by :func:`write_manifest` (or any GeoParquet
    that follows the contract).

    Raises:
        DataError: The file is missing, not GeoParquet, or breaks the contract.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("manifest file not found", path)
    arrow_error = _arrow_error(path)
    try:
        frame = gpd.read_parquet(path)
    except (OSError, ValueError, arrow_error) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"not a readable GeoParquet manifest ({reason})", path) from error
    validate_manifest(frame, path)
    return frame


# --------------------------------------------------------------------------- real pairs


def _pick(columns: Sequence[str], names: Sequence[str], given: str | None) -> str | None:
    """The column to use: the one the caller named, else the first known alias present."""
    if given is not None:
        return given if given in columns else None
    lowered = {c.lower(): c for c in columns}
    return next((lowered[n] for n in names if n in lowered), None)


def _read_table(path: Path) -> pd.DataFrame:
    """Read a CSV/TSV or (Geo)Parquet pairs table; errors name the file."""
    suffix = path.suffix.lower()
    arrow_error = _arrow_error(path) if suffix in (".parquet", ".geoparquet", ".pq") else OSError
    try:
        if suffix in (".csv", ".tsv", ".txt"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        if suffix in (".parquet", ".geoparquet", ".pq"):
            try:
                return gpd.read_parquet(path)
            except ValueError:  # a plain Parquet table (no geo metadata): lon/lat columns
                return pd.read_parquet(path)
    except (OSError, ValueError, pd.errors.ParserError, arrow_error) as error:
        raise DataError(f"cannot read the pairs table: {error}", path) from error
    raise DataError(
        f"unsupported pairs table type {suffix or '(no suffix)'}; use .csv, .tsv or .parquet",
        path,
    )


def _resolve(value: Any, base: Path) -> str:
    """An absolute path string; relative paths are relative to the table's folder."""
    candidate = Path(str(value)).expanduser()
    return str(candidate if candidate.is_absolute() else (base / candidate).resolve())


def _row_label(i: int, ids: Sequence[str], is_csv: bool) -> str:
    """How an error names a table row: position, CSV line and id."""
    line = f", line {i + 2}" if is_csv else ""
    return f"row {i}{line} (id {ids[i]})"


def _check_files(
    paths: Sequence[str], column: str, ids: Sequence[str], table: Path, is_csv: bool
) -> None:
    absent = [i for i, p in enumerate(paths) if not Path(p).is_file()]
    if absent:
        shown = "; ".join(f"{_row_label(i, ids, is_csv)}: {paths[i]}" for i in absent[:3])
        more = f" and {len(absent) - 3} more" if len(absent) > 3 else ""
        raise DataError(
            f"{len(absent)} file(s) in column {column!r} do not exist: {shown}{more}", table
        )


def _text_column(frame: pd.DataFrame, name: str | None, default: str = "") -> list[str]:
    if name is None:
        return [default] * len(frame)
    return ["" if pd.isna(v) else str(v) for v in frame[name]]


def manifest_from_pairs_table(
    table_path: str | os.PathLike[str],
    imagery: str | os.PathLike[str] | None = None,
    chip_size: int = 64,
    *,
    audio_column: str | None = None,
    image_column: str | None = None,
    image_kind: Literal["chip", "photo"] | None = None,
    source: str | None = None,
    licence: str | None = None,
    split: str = "train",
) -> gpd.GeoDataFrame:
    """Build a manifest from a table of REAL geotagged recordings, so real pairs train directly.

    The table (CSV/TSV, Parquet or GeoParquet) has one row per recording: an audio path and
    its location (``lon``/``lat`` columns, or point geometry in a GeoParquet, any CRS), and
    optionally ``id``, ``caption`` (→ ``audio_caption``), ``image_caption``, ``label``,
    ``split``, ``licence``, ``month``, ``hour``, ``heading`` or a ``datetime`` column (month
    and hour are derived from it when absent). The image side is one of:

    * ``imagery``: a georeferenced raster; each recording gets a ``chip_size`` window centred
      on it (``image = "raster#col_off,row_off,width,height"``, from
      :func:`geosound.geo.chip_windows`; cut later, when training) and the window's lon/lat
      footprint as geometry;
    * a column of pre-cut chip paths (``chip``/``image``; the GeoSound and SoundingEarth
      layout), geometry = the recording point;
    * a column of street-level photo paths (``photo``; or ``image_kind="photo"``), geometry =
      the photo point, with the optional ``heading``.

    ``imagery`` takes precedence over image columns. Relative paths in the table resolve
    against the table's folder (so a dataset folder can be moved as a whole).

    Args:
        table_path: The pairs table.
        imagery: A raster to cut chips from (relative to the working directory).
        chip_size: Chip edge in pixels for ``imagery``.
        audio_column: The audio path column (default: the first of ``audio``,
            ``audio_path``, ``audio_file``, ``recording``, ``sound``).
        image_column: The chip/photo path column (default: ``chip``, ``chip_path``,
            ``image``, ``image_path``, else ``photo``, ``photo_path``, ``streetview``).
        image_kind: ``"chip"`` or ``"photo"``; default from the column's name.
        source: The ``source`` value when the table has no ``source`` column (default: the
            table's file name without suffix).
        licence: The ``licence`` value when the table has no ``licence``/``license`` column
            (default ``"unknown"`` — never guessed).
        split: The ``split`` value when the table has no ``split`` column. A random split of
            nearby recordings leaks location; for evaluation, split by region upstream.

    Returns:
        A validated manifest GeoDataFrame in EPSG:4326.

    Raises:
        DataError: The table cannot be read, lacks the audio or location columns, names
            files that do not exist, or gives no image source.
        OutsideRasterError: A recording lies outside ``imagery``; the message names the
            table row and the raster.
        RasterError: ``imagery`` cannot be opened or has no CRS.
    """
    table = Path(table_path).expanduser().resolve()
    if not table.is_file():
        raise DataError("pairs table not found", table)
    if int(chip_size) != chip_size or chip_size < 1:
        raise InputError(f"chip_size must be a positive whole number of pixels; got {chip_size!r}")
    frame = _read_table(table).reset_index(drop=True)
    is_csv = table.suffix.lower() in (".csv", ".tsv", ".txt")
    base = table.parent
    columns = list(frame.columns)
    if len(frame) == 0:
        raise DataError("the pairs table has no rows", table)

    audio_name = _pick(columns, _AUDIO_NAMES, audio_column)
    if audio_name is None:
        wanted = audio_column or " / ".join(_AUDIO_NAMES)
        raise DataError(
            f"the pairs table has no audio column ({wanted}); columns: {', '.join(columns)}",
            table,
        )

    ids = (
        [str(v) for v in frame["id"]]
        if "id" in frame.columns
        else [f"{table.stem}-{i:06d}" for i in range(len(frame))]
    )
    lon, lat = _locations(frame, columns, table, ids, is_csv)

    audio_missing = frame[audio_name].isna().to_numpy()
    if audio_missing.any():
        first = int(np.flatnonzero(audio_missing)[0])
        raise DataError(
            f"column {audio_name!r} is empty in {_row_label(first, ids, is_csv)}", table
        )
    audio = [_resolve(v, base) for v in frame[audio_name]]
    _check_files(audio, audio_name, ids, table, is_csv)

    if imagery is not None:
        image, geometry = _raster_windows(Path(imagery), lon, lat, int(chip_size), table, ids)
    else:
        image_name = _pick(columns, _CHIP_NAMES, image_column) or (
            None if image_column else _pick(columns, _PHOTO_NAMES, None)
        )
        if image_name is None:
            raise DataError(
                "the pairs table gives no image: pass imagery= (a raster to cut chips from) or "
                "add a chip or photo path column (chip / image / photo); columns: "
                f"{', '.join(columns)}",
                table,
            )
        if image_kind is None:
            image_kind = "photo" if image_name.lower() in _PHOTO_NAMES else "chip"
        empty = frame[image_name].isna().to_numpy()
        if empty.any():
            first = int(np.flatnonzero(empty)[0])
            raise DataError(
                f"column {image_name!r} is empty in {_row_label(first, ids, is_csv)}", table
            )
        image = [_resolve(v, base) for v in frame[image_name]]
        _check_files(image, image_name, ids, table, is_csv)
        geometry = shapely.points(lon, lat)

    licence_name = _pick(columns, ("licence", "license"), None)
    out = pd.DataFrame(
        {
            "id": ids,
            "lon": lon,
            "lat": lat,
            "image": image,
            "audio": audio,
            "image_caption": _text_column(frame, _pick(columns, ("image_caption",), None)),
            "audio_caption": _text_column(frame, _pick(columns, _AUDIO_CAPTION_NAMES, None)),
            "label": _text_column(frame, _pick(columns, ("label", "class"), None)),
            "split": _text_column(frame, _pick(columns, ("split",), None), split),
            "source": _text_column(frame, _pick(columns, ("source",), None), source or table.stem),
            "licence": [
                v or (licence or "unknown")
                for v in _text_column(frame, licence_name, licence or "unknown")
            ],
        }
    )
    for column, values in _metadata(frame, columns, table).items():
        out[column] = values
    if imagery is None and image_kind == "photo" and "heading" not in out.columns:
        out["heading"] = np.nan
    manifest = gpd.GeoDataFrame(out, geometry=np.asarray(geometry), crs=MANIFEST_CRS)
    validate_manifest(manifest, table)
    return manifest


def _locations(
    frame: pd.DataFrame, columns: Sequence[str], table: Path, ids: Sequence[str], is_csv: bool
) -> tuple[np.ndarray, np.ndarray]:
    """WGS 84 lon/lat per row, from point geometry (any CRS) or lon/lat columns."""
    if isinstance(frame, gpd.GeoDataFrame) and frame.geometry.name in frame.columns:
        geometry = frame.geometry
        if geometry.crs is None:
            raise DataError("the pairs table's geometry has no CRS", table)
        not_points = ~(geometry.geom_type == "Point").to_numpy()
        if not_points.any():
            first = int(np.flatnonzero(not_points)[0])
            raise DataError(
                f"the pairs table's geometry must be points (recording locations); "
                f"{_row_label(first, ids, is_csv)} is a {geometry.iloc[first].geom_type}",
                table,
            )
        wgs84 = geometry.to_crs(MANIFEST_CRS)
        lon, lat = wgs84.x.to_numpy(float), wgs84.y.to_numpy(float)
    else:
        lon_name = _pick(columns, _LON_NAMES, None)
        lat_name = _pick(columns, _LAT_NAMES, None)
        if lon_name is None or lat_name is None:
            raise DataError(
                "the pairs table needs lon and lat columns (or point geometry in a "
                f"GeoParquet); columns: {', '.join(columns)}",
                table,
            )
        lon = pd.to_numeric(frame[lon_name], errors="coerce").to_numpy(float)
        lat = pd.to_numeric(frame[lat_name], errors="coerce").to_numpy(float)
    bad = ~np.isfinite(lon) | ~np.isfinite(lat) | (np.abs(lon) > 180) | (np.abs(lat) > 90)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{_row_label(first, ids, is_csv)} has no valid lon/lat "
            f"({lon[first]!r}, {lat[first]!r})",
            table,
        )
    return lon, lat


def _raster_windows(
    raster: Path,
    lon: np.ndarray,
    lat: np.ndarray,
    size: int,
    table: Path,
    ids: Sequence[str],
) -> tuple[list[str], np.ndarray]:
    """One chip window per recording and its lon/lat footprint; outside points named by row."""
    from geosound.geo import RasterSource, chip_windows, points_to_raster_xy

    raster = raster.expanduser().resolve()
    is_csv = table.suffix.lower() in (".csv", ".tsv", ".txt")
    points = np.column_stack([lon, lat])
    with RasterSource(raster) as source:
        xs, ys = points_to_raster_xy(source, points, "EPSG:4326")
        cols, rows = ~source.transform @ (xs, ys)
        cols, rows = np.asarray(cols, dtype=float), np.asarray(rows, dtype=float)
        inside = (
            np.isfinite(cols)
            & np.isfinite(rows)
            & (cols >= 0)
            & (cols < source.width)
            & (rows >= 0)
            & (rows < source.height)
        )
        if not inside.all():
            outside = np.flatnonzero(~inside)
            first = int(outside[0])
            more = f" ({len(outside) - 1} more rows too)" if len(outside) > 1 else ""
            bounds = tuple(round(v, 3) for v in source.bounds)
            raise OutsideRasterError(
                f"pairs table {table.name} {_row_label(first, ids, is_csv)} at lon "
                f"{lon[first]:.6g}, lat {lat[first]:.6g} lies outside the raster "
                f"(bounds {bounds} in {source.crs}){more}",
                raster,
            )
        windows = chip_windows(source, points, size, "EPSG:4326")
        to_wgs84 = Transformer.from_crs(source.crs.to_wkt(), MANIFEST_CRS, always_xy=True)
        footprints = []
        for window in windows:
            # The four pixel corners through the affine (exact for rotated rasters too), then
            # to lon/lat; a chip is small enough that straight edges between them suffice.
            col0, row0 = window.col_off, window.row_off
            col1, row1 = col0 + window.width, row0 + window.height
            corners = [source.transform @ xy for xy in ((col0, row0), (col1, row0))]
            corners += [source.transform @ xy for xy in ((col1, row1), (col0, row1))]
            lons, lats = to_wgs84.transform(*zip(*corners, strict=True))
            footprints.append(shapely.Polygon(zip(lons, lats, strict=True)))
    image = [format_image_ref(raster, window) for window in windows]
    return image, np.asarray(footprints, dtype=object)


def _metadata(frame: pd.DataFrame, columns: Sequence[str], table: Path) -> dict[str, Any]:
    """Optional month / hour / heading, taken as given or derived from a datetime column."""
    out: dict[str, Any] = {}
    for column in OPTIONAL_COLUMNS:
        name = _pick(columns, (column,), None)
        if name is not None:
            out[column] = pd.to_numeric(frame[name], errors="coerce").to_numpy(float)
    time_name = _pick(columns, _TIME_NAMES, None)
    if time_name is not None and ("month" not in out or "hour" not in out):
        try:
            stamps = pd.to_datetime(frame[time_name], errors="coerce", format="mixed")
        except (ValueError, TypeError) as error:
            message = f"cannot parse column {time_name!r} as dates: {error}"
            raise DataError(message, table) from error
        out.setdefault("month", stamps.dt.month.to_numpy(float))
        out.setdefault("hour", (stamps.dt.hour + stamps.dt.minute / 60.0).to_numpy(float))
    if "month" in out:
        month = out["month"]
        known = np.isfinite(month)
        if np.all(np.round(month[known]) == month[known]):  # whole months: a nullable int
            out["month"] = pd.array(np.where(known, month, 0).astype(int), dtype="Int64")
            out["month"][~known] = pd.NA
    return out


def _json_default(value: Any) -> Any:
    """JSON for numpy scalars in recipes."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def recipe_to_json(recipe: dict[str, Any]) -> str:
    """A recipe as compact, canonical JSON (sorted keys), so equal recipes give equal text."""
    return json.dumps(recipe, sort_keys=True, separators=(",", ":"), default=_json_default)


def parse_recipe(audio: str | dict[str, Any]) -> dict[str, Any]:
    """The recipe dict of an ``audio`` value (a dict passes through).

    Raises:
        InputError: The value is a path or not valid recipe JSON.
    """
    if isinstance(audio, dict):
        return audio
    if not is_recipe(audio):
        raise InputError(f"not a mix recipe but a path: {str(audio)[:80]!r}")
    try:
        recipe = json.loads(audio)
    except json.JSONDecodeError as error:
        raise InputError(f"the mix recipe is not valid JSON: {error}") from error
    if not isinstance(recipe, dict):
        raise InputError("a mix recipe must be a JSON object")
    return recipe
