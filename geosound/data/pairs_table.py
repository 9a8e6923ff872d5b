"""Ingest a user's table of real geotagged recordings as a pair manifest.

Real pairs — a recording and the place it was made — come as a table (CSV/TSV, Parquet or
GeoParquet), one row per recording, in whatever column names the dataset uses. This module
picks the columns (known aliases, first match wins, or the ones the caller names), turns the
locations into WGS 84, finds the image side (a window of a raster, a pre-cut chip or a
street-level photo), carries the optional metadata along, and returns a manifest that follows
the contract of :mod:`geosound.data.manifest`. Every error names the table and the row (with
its CSV line), because a dataset with one bad row among thousands is the common case.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from affine import Affine
from pyproj import Transformer
from rasterio.windows import Window

from geosound.audio import check_audio
from geosound.data.manifest import (
    MANIFEST_CRS,
    OPTIONAL_COLUMNS,
    arrow_error_type,
    validate_manifest,
)
from geosound.errors import AudioError, DataError, InputError
from geosound.geo.images import format_image_ref

__all__ = ["manifest_from_pairs_table"]

# Column names accepted in a pairs table, first match wins.
_AUDIO_NAMES = ("audio", "audio_path", "audio_file", "recording", "sound")
_LON_NAMES = ("lon", "longitude", "lng")
_LAT_NAMES = ("lat", "latitude")
_CHIP_NAMES = ("chip", "chip_path", "image", "image_path")
_PHOTO_NAMES = ("photo", "photo_path", "streetview", "street_view")
_AUDIO_CAPTION_NAMES = ("audio_caption", "caption", "description", "text")
_TIME_NAMES = ("datetime", "timestamp", "time", "date")
_CSV_SUFFIXES = (".csv", ".tsv", ".txt")
_PARQUET_SUFFIXES = (".parquet", ".geoparquet", ".pq")


@dataclass(frozen=True)
class _Table:
    """A pairs table as read, with what its error messages need to name a row.

    Attributes:
        path: The table file (absolute).
        frame: Its rows, with a fresh 0..n-1 index.
        ids: The row ids: the ``id`` column, else ``<file stem>-<row number>``.
    """

    path: Path
    frame: pd.DataFrame
    ids: list[str]

    @property
    def columns(self) -> list[str]:
        """The table's column names, as written."""
        return list(self.frame.columns)

    @property
    def is_csv(self) -> bool:
        """Whether rows have line numbers worth naming (a text table)."""
        return self.path.suffix.lower() in _CSV_SUFFIXES

    def row(self, i: int) -> str:
        """How an error names a table row: position, CSV line and id."""
        line = f", line {i + 2}" if self.is_csv else ""
        return f"row {i}{line} (id {self.ids[i]})"

    def pick(self, names: Sequence[str], given: str | None = None) -> str | None:
        """The column to use: the one the caller named, else the first known alias present."""
        if given is not None:
            return given if given in self.columns else None
        lowered = {c.lower(): c for c in self.columns}
        return next((lowered[n] for n in names if n in lowered), None)

    def text(self, name: str | None, default: str = "") -> list[str]:
        """A column as strings ("" for nulls), or ``default`` for every row without one."""
        if name is None:
            return [default] * len(self.frame)
        return ["" if pd.isna(v) else str(v) for v in self.frame[name]]


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
    path = Path(table_path).expanduser().resolve()
    if not path.is_file():
        raise DataError("pairs table not found", path)
    if int(chip_size) != chip_size or chip_size < 1:
        raise InputError(f"chip_size must be a positive whole number of pixels; got {chip_size!r}")
    table = _open_table(path)
    audio_name = _audio_column(table, audio_column)
    lon, lat = _locations(table)
    audio = _file_column(table, audio_name)
    _check_recordings(table, audio)
    if imagery is not None:
        image, geometry = _raster_windows(Path(imagery), lon, lat, int(chip_size), table)
    else:
        image_name, image_kind = _image_column(table, image_column, image_kind)
        image = _file_column(table, image_name)
        geometry = shapely.points(lon, lat)
    out = _manifest_columns(table, lon, lat, image, audio, source, licence, split)
    for column, values in _metadata(table).items():
        out[column] = values
    if imagery is None and image_kind == "photo" and "heading" not in out.columns:
        out["heading"] = np.nan
    manifest = gpd.GeoDataFrame(out, geometry=np.asarray(geometry), crs=MANIFEST_CRS)
    validate_manifest(manifest, path)
    return manifest


def _open_table(path: Path) -> _Table:
    """Read the table and give every row an id; an empty table is an error."""
    frame = _read_table(path).reset_index(drop=True)
    if len(frame) == 0:
        raise DataError("the pairs table has no rows", path)
    ids = (
        [str(v) for v in frame["id"]]
        if "id" in frame.columns
        else [f"{path.stem}-{i:06d}" for i in range(len(frame))]
    )
    return _Table(path, frame, ids)


def _read_table(path: Path) -> pd.DataFrame:
    """Read a CSV/TSV or (Geo)Parquet pairs table; errors name the file."""
    suffix = path.suffix.lower()
    arrow_error = arrow_error_type(path) if suffix in _PARQUET_SUFFIXES else OSError
    try:
        if suffix in _CSV_SUFFIXES:
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        if suffix in _PARQUET_SUFFIXES:
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


def _audio_column(table: _Table, given: str | None) -> str:
    """The audio path column: the one named, else the first known alias."""
    name = table.pick(_AUDIO_NAMES, given)
    if name is None:
        wanted = given or " / ".join(_AUDIO_NAMES)
        raise DataError(
            f"the pairs table has no audio column ({wanted}); columns: {', '.join(table.columns)}",
            table.path,
        )
    return name


_ImageKind = Literal["chip", "photo"]


def _image_column(
    table: _Table, given: str | None, kind: _ImageKind | None
) -> tuple[str, _ImageKind]:
    """The chip or photo path column and its kind (from the column's name unless given)."""
    name = table.pick(_CHIP_NAMES, given) or (None if given else table.pick(_PHOTO_NAMES))
    if name is None:
        raise DataError(
            "the pairs table gives no image: pass imagery= (a raster to cut chips from) or "
            "add a chip or photo path column (chip / image / photo); columns: "
            f"{', '.join(table.columns)}",
            table.path,
        )
    if kind is None:
        return name, "photo" if name.lower() in _PHOTO_NAMES else "chip"
    return name, kind


def _file_column(table: _Table, name: str) -> list[str]:
    """A column of file paths, made absolute; every row must name a file that exists.

    Relative paths resolve against the table's folder, so a dataset folder can be moved as a
    whole; all missing files are counted at once, so one run lists what to fix.
    """
    empty = table.frame[name].isna().to_numpy()
    if empty.any():
        first = int(np.flatnonzero(empty)[0])
        raise DataError(f"column {name!r} is empty in {table.row(first)}", table.path)
    base = table.path.parent
    paths = []
    for value in table.frame[name]:
        candidate = Path(str(value)).expanduser()
        paths.append(str(candidate if candidate.is_absolute() else (base / candidate).resolve()))
    absent = [i for i, p in enumerate(paths) if not Path(p).is_file()]
    if absent:
        shown = "; ".join(f"{table.row(i)}: {paths[i]}" for i in absent[:3])
        more = f" and {len(absent) - 3} more" if len(absent) > 3 else ""
        raise DataError(
            f"{len(absent)} file(s) in column {name!r} do not exist: {shown}{more}", table.path
        )
    return paths


def _check_recordings(table: _Table, audio: list[str]) -> None:
    """Decode every recording once (block by block), so a truncated one is named now.

    A pair is trained on much later; a half-copied FLAC found then fails a long run, or
    (worse) trains as a shorter clip. Silence is not refused here, only broken files.
    """
    for i, path in enumerate(audio):
        try:
            check_audio(path)
        except AudioError as error:
            raise DataError(f"{table.row(i)}: recording {error}", table.path) from None


def _manifest_columns(
    table: _Table,
    lon: np.ndarray,
    lat: np.ndarray,
    image: list[str],
    audio: list[str],
    source: str | None,
    licence: str | None,
    split: str,
) -> pd.DataFrame:
    """The manifest's plain columns; the table's own values win over the defaults given."""
    licence_name = table.pick(("licence", "license"))
    return pd.DataFrame(
        {
            "id": table.ids,
            "lon": lon,
            "lat": lat,
            "image": image,
            "audio": audio,
            "image_caption": table.text(table.pick(("image_caption",))),
            "audio_caption": table.text(table.pick(_AUDIO_CAPTION_NAMES)),
            "label": table.text(table.pick(("label", "class"))),
            "split": table.text(table.pick(("split",)), split),
            "source": table.text(table.pick(("source",)), source or table.path.stem),
            "licence": [
                v or (licence or "unknown") for v in table.text(licence_name, licence or "unknown")
            ],
        }
    )


def _locations(table: _Table) -> tuple[np.ndarray, np.ndarray]:
    """WGS 84 lon/lat per row, from point geometry (any CRS) or lon/lat columns."""
    frame = table.frame
    if isinstance(frame, gpd.GeoDataFrame) and frame.geometry.name in frame.columns:
        lon, lat = _point_locations(table, frame.geometry)
    else:
        lon_name, lat_name = table.pick(_LON_NAMES), table.pick(_LAT_NAMES)
        if lon_name is None or lat_name is None:
            raise DataError(
                "the pairs table needs lon and lat columns (or point geometry in a "
                f"GeoParquet); columns: {', '.join(table.columns)}",
                table.path,
            )
        lon = pd.to_numeric(frame[lon_name], errors="coerce").to_numpy(float)
        lat = pd.to_numeric(frame[lat_name], errors="coerce").to_numpy(float)
    bad = ~np.isfinite(lon) | ~np.isfinite(lat) | (np.abs(lon) > 180) | (np.abs(lat) > 90)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{table.row(first)} has no valid lon/lat ({lon[first]!r}, {lat[first]!r})",
            table.path,
        )
    return lon, lat


def _point_locations(table: _Table, geometry: gpd.GeoSeries) -> tuple[np.ndarray, np.ndarray]:
    """Lon/lat of a GeoParquet's point geometry; other geometry types are an error."""
    if geometry.crs is None:
        raise DataError("the pairs table's geometry has no CRS", table.path)
    not_points = ~(geometry.geom_type == "Point").to_numpy()
    if not_points.any():
        first = int(np.flatnonzero(not_points)[0])
        raise DataError(
            f"the pairs table's geometry must be points (recording locations); "
            f"{table.row(first)} is a {geometry.iloc[first].geom_type}",
            table.path,
        )
    wgs84 = geometry.to_crs(MANIFEST_CRS)
    return wgs84.x.to_numpy(float), wgs84.y.to_numpy(float)


def _raster_windows(
    raster: Path, lon: np.ndarray, lat: np.ndarray, size: int, table: _Table
) -> tuple[list[str], np.ndarray]:
    """One chip window per recording and its lon/lat footprint; outside points named by row."""
    from geosound.geo import RasterSource, chip_windows

    raster = raster.expanduser().resolve()
    points = np.column_stack([lon, lat])
    names = [
        f"pairs table {table.path.name} {table.row(i)} at lon {lon[i]:.6g}, lat {lat[i]:.6g}"
        for i in range(len(points))
    ]
    with RasterSource(raster) as source:
        windows = chip_windows(source, points, size, "EPSG:4326", names=names)
        to_wgs84 = Transformer.from_crs(source.crs.to_wkt(), MANIFEST_CRS, always_xy=True)
        footprints = [_footprint(window, source.transform, to_wgs84) for window in windows]
    image = [format_image_ref(raster, window) for window in windows]
    return image, np.asarray(footprints, dtype=object)


def _footprint(window: Window, transform: Affine, to_wgs84: Transformer) -> shapely.Polygon:
    """A window's lon/lat outline.

    The four pixel corners go through the affine (exact for rotated rasters too), then to
    lon/lat; a chip is small enough that straight edges between them suffice.
    """
    col0, row0 = window.col_off, window.row_off
    col1, row1 = col0 + window.width, row0 + window.height
    corners = [transform @ xy for xy in ((col0, row0), (col1, row0))]
    corners += [transform @ xy for xy in ((col1, row1), (col0, row1))]
    xs, ys = zip(*corners, strict=True)
    lons, lats = to_wgs84.transform(xs, ys)
    return shapely.Polygon(zip(lons, lats, strict=True))


def _metadata(table: _Table) -> dict[str, np.ndarray | pd.api.extensions.ExtensionArray]:
    """Optional month / hour / heading, taken as given or derived from a datetime column."""
    frame = table.frame
    out: dict[str, np.ndarray | pd.api.extensions.ExtensionArray] = {}
    for column in OPTIONAL_COLUMNS:
        name = table.pick((column,))
        if name is not None:
            out[column] = pd.to_numeric(frame[name], errors="coerce").to_numpy(float)
    time_name = table.pick(_TIME_NAMES)
    if time_name is not None and ("month" not in out or "hour" not in out):
        try:
            stamps = pd.to_datetime(frame[time_name], errors="coerce", format="mixed")
        except (ValueError, TypeError) as error:
            message = f"cannot parse column {time_name!r} as dates: {error}"
            raise DataError(message, table.path) from error
        out.setdefault("month", stamps.dt.month.to_numpy(float))
        out.setdefault("hour", (stamps.dt.hour + stamps.dt.minute / 60.0).to_numpy(float))
    if "month" in out:
        month = np.asarray(out["month"])
        known = np.isfinite(month)
        if np.all(np.round(month[known]) == month[known]):  # whole months: a nullable int
            whole = pd.array(np.where(known, month, 0).astype(int), dtype="Int64")
            whole[~known] = pd.NA
            out["month"] = whole
    return out
